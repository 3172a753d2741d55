"""Cheap spectral tracking at every step: warm-started subspace iteration with Rayleigh-Ritz.

``TopKTracker(matrices, k)`` is a stateful recorder for ``lrjax.dynamics.run``. For each matrix ``W: (m, n)``
(``matrices(params) -> (L, m, n)`` or a list of matrices) it keeps Ritz vectors ``Q: (n, k)`` of
``A = W^T W`` and, per update,

1. a power step with column scaling, ``Y = A Q diag(lam)^-1 + sqrt(eps) Q`` with ``lam_j = ||W q_j||^2``:
   the span of ``A Q`` (``A + c I`` has A's eigenvectors), but with columns of comparable size;
2. orthonormalisation without Householder QR: shifted CholeskyQR3 (``Y <- Y chol(Y^T Y + s I)^-T``, then
   twice unshifted), stable for ``cond(Y)`` up to ``~1/eps``;
3. Rayleigh-Ritz: ``eigh((W Q)^T (W Q)) = V diag(lam) V^T``, ``Q <- Q V``, ``top = sqrt(lam)``, descending;
4. the bulk, ``B = W (I - Q Q^T)``: ``bulk_rms = ||B||_F / sqrt(n - k)`` and
   ``bulk_spread = std(sigma^2) / mean(sigma^2)`` over the remaining ``n - k`` singular values,
   from ``||B||_F^2`` and ``||B^T B - s2 (I - Q Q^T)||_F^2`` (zero iff they are all equal: the structure the
   invariant-subspace theorem predicts, so ``[top, bulk_rms * ones]`` is then the full spectrum).

The ``Q_l`` are kept stacked, ``(L, max n_l, k)`` zero-padded, so that apart from the ``W``-products every
operation is one batched call for all ``L`` matrices; every factorisation in 2-3 is ``k x k``: per step 3
Cholesky, 3 triangular solves and 1 ``eigh``, whatever ``L`` and ``n`` (a Householder QR of each ``n x k``
block was ``2 L`` more calls, each a sequence of kernel launches on a GPU, where these small operations cost
latency rather than flops). Cost per matrix: three ``W``-products with ``(n, k)``
blocks (``O(m n k)``) and, for 4, one ``n x n`` Gram (``m n^2``; ``moments=False`` skips it); a full SVD of
a 1000 x 1000 matrix costs ~800 GD steps on an H100. Accuracy: the Ritz values converge like
``(sigma_{k+1} / sigma_k)^{2 t}``; with a gap they match ``jnp.linalg.svd`` to ~1e-6 relative in float32
and ~1e-12 in float64 after warm-up; zero and rank-deficient matrices stay finite (tests/test_analysis.py).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp


def _gram(a, b):
    """``a^T b`` without materialising a transpose (batched over leading axes)."""
    return jnp.einsum("...ij,...ik->...jk", a, b)


def _stack_padded(blocks: list, rows: int) -> jax.Array:
    """``[(r_l, k)] -> (L, rows, k)``, each block zero-padded below to ``rows`` (a no-op for equal shapes)."""
    return jnp.stack([b if b.shape[0] == rows else jnp.pad(b, ((0, rows - b.shape[0]), (0, 0))) for b in blocks])


def _unpad(stacked: jax.Array, rows: list) -> list:
    """``(L, max r_l, k) -> [(r_l, k)]``: the inverse of ``_stack_padded``."""
    return [stacked[i, :r] for i, r in enumerate(rows)]


def orthonormalize(y: jax.Array) -> jax.Array:
    """Orthonormal bases of ``span(Y_l)`` for ``Y: (..., n, k)``: shifted CholeskyQR3 (Fukaya et al. 2020).

    ``Y <- Y R^-1`` with ``R = chol(Y^T Y + s I)``, ``s = 11 (n k + k (k + 1)) eps tr(Y^T Y)`` (the shift keeps the
    Cholesky defined for ``cond(Y)`` up to ``~1/eps``), then twice more unshifted (CholeskyQR2), which restores
    orthogonality to ``~eps``. Batched matrix products plus three batched ``k x k`` Cholesky and triangular
    solves: on a GPU, no Householder QR launch sequence per matrix. Zero rows stay zero (padding).
    """
    n, k = y.shape[-2:]
    eye = jnp.eye(k, dtype=y.dtype)
    for shift in (True, False, False):
        gram = _gram(y, y)
        if shift:
            trace = jnp.trace(gram, axis1=-2, axis2=-1)[..., None, None]
            gram = gram + 11 * (n * k + k * (k + 1)) * jnp.finfo(y.dtype).eps * trace * eye
        y = y @ _inverse_cholesky_transpose(gram)
    return y


def _inverse_cholesky_transpose(g):
    """``L^-T`` for ``g = L L^T``, batched over leading axes (``Y L^-T`` has orthonormal columns)."""
    eye = jnp.broadcast_to(jnp.eye(g.shape[-1], dtype=g.dtype), g.shape)
    return jax.scipy.linalg.solve_triangular(jnp.linalg.cholesky(g), eye, lower=True, trans="T")


def rayleigh_ritz(q: jax.Array, wq: jax.Array):
    """Ritz pairs of ``W_l^T W_l`` on ``span(Q_l)``, given orthonormal ``Q: (L, n, k)`` and ``WQ: (L, m, k)``.

    Returns ``(Q, WQ, lam)``: Ritz vectors, ``W_l`` times them, Ritz values ``lam: (L, k)`` descending;
    one batched ``k x k`` ``eigh``.
    """
    lam, v = jnp.linalg.eigh(_gram(wq, wq))
    v = v[..., ::-1]
    return q @ v, wq @ v, lam[..., ::-1]


def _scaled_power_step(q, wq, wtwq):
    """``W^T W Q diag(lam)^-1 + sqrt(eps) Q`` with ``lam_j = ||W q_j||^2`` (Rayleigh quotients), batched: spans
    ``W^T W Q`` but each column keeps a unit component along its ``q_j``, so the block stays well conditioned
    as the iteration converges (``W q_j = 0`` gives ``sqrt(eps) q_j``, never a zero column)."""
    eps = jnp.finfo(q.dtype).eps
    lam = jnp.sum(wq * wq, axis=-2, keepdims=True)
    lam = jnp.maximum(lam, jnp.maximum(eps * jnp.max(lam, axis=-1, keepdims=True), jnp.finfo(q.dtype).tiny))
    return wtwq / lam + jnp.sqrt(eps) * q


@dataclasses.dataclass(frozen=True)
class TopKTracker:
    """Stateful recorder: ``init(params) -> state``, ``update(state, params) -> (state, values)``.

    ``matrices(params)`` returns an ``(L, m, n)`` array or a list of ``L`` matrices ``W_l: (m_l, n_l)`` (a list
    avoids copying the factors into one stack; shapes may differ). State: the Ritz vectors stacked as
    ``Q: (L, max n_l, k)``, zero below row ``n_l``, so that every step after the ``W``-products is one batched
    call per operation whatever ``L``. Values: ``top (L, k)``, and with ``moments`` ``bulk_rms``,
    ``bulk_spread (L,)``.
    """

    matrices: Callable
    k: int
    iters: int = 1
    moments: bool = True
    seed: int = 0

    def __post_init__(self):
        if self.k < 1 or self.iters < 1:
            raise ValueError(f"TopKTracker needs k >= 1 and iters >= 1, got k={self.k}, iters={self.iters}")

    def _list(self, params) -> list:
        ws = self.matrices(params)
        return list(ws) if isinstance(ws, (list, tuple)) else [ws[i] for i in range(ws.shape[0])]

    def init(self, params) -> jax.Array:
        ws = self._list(params)
        for w in ws:
            if w.ndim != 2 or self.k + self.moments > w.shape[-1]:
                raise ValueError(f"TopKTracker(k={self.k}, moments={self.moments}) needs 2-D matrices with at least "
                                 f"k{' + 1' if self.moments else ''} columns (a bulk to summarise); got shape {w.shape}")
        keys = jax.random.split(jax.random.key(self.seed), len(ws))
        return _stack_padded([jnp.linalg.qr(jax.random.normal(key, (w.shape[1], self.k), w.dtype))[0]
                              for key, w in zip(keys, ws)], max(w.shape[1] for w in ws))

    def update(self, q, params):
        ws = self._list(params)
        m, n = [w.shape[0] for w in ws], [w.shape[1] for w in ws]

        def times_w(q):  # (L, n, k) -> W_l Q_l: (L, m, k)
            return _stack_padded([w @ ql for w, ql in zip(ws, _unpad(q, n))], max(m))

        wq = times_w(q)
        for _ in range(self.iters):
            wtwq = _stack_padded([_gram(w, z) for w, z in zip(ws, _unpad(wq, m))], max(n))
            q = orthonormalize(_scaled_power_step(q, wq, wtwq))
            wq = times_w(q)
        q, wq, lam = rayleigh_ritz(q, wq)
        values = {"top": jnp.sqrt(jnp.clip(lam, 0.0))}
        if self.moments:
            values["bulk_rms"], values["bulk_spread"] = bulk_moments(ws, _unpad(q, n), _unpad(wq, m))
        return q, values


def bulk_moments(ws: list, qs: list, wqs: list):
    """``bulk_rms, bulk_spread: (L,)`` of ``B_l = W_l (I - Q_l Q_l^T)`` given ``W_l Q_l`` (see the module doc)."""
    rms, spread = [], []
    for w, q, wq in zip(ws, qs, wqs):
        n, k = q.shape
        bulk = w - wq @ q.T
        s2 = jnp.sum(bulk * bulk) / (n - k)
        rms.append(jnp.sqrt(s2))
        spread.append(jnp.sqrt(_centred_norm2(bulk, q, s2) / (n - k)) / jnp.maximum(s2, jnp.finfo(w.dtype).tiny))
    return jnp.stack(rms), jnp.stack(spread)


def _centred_norm2(bulk, q, s2, split_from: int = 512):
    """``||B^T B - s2 (I - Q Q^T)||_F^2 = sum over the bulk of (sigma_i^2 - s2)^2``: that matrix has eigenvalues
    ``sigma_i^2 - s2`` on the bulk subspace and 0 on ``span(Q)``, and squaring it avoids the cancellation of
    ``E[sigma^4] - E[sigma^2]^2`` (~sqrt(eps)). It is symmetric: from ``n = split_from`` columns on, its three
    distinct ``n/2`` blocks are computed (3/4 of the Gram's ``m n^2`` flops; small ``n`` is latency-bound)."""
    n = bulk.shape[1]
    cuts = [0, n // 2, n] if n >= split_from else [0, n]
    parts = [(bulk[:, a:b], q[a:b]) for a, b in zip(cuts, cuts[1:])]
    total = 0.0
    for i, (bi, qi) in enumerate(parts):
        for j, (bj, qj) in enumerate(parts[i:], start=i):
            c = _gram(bi, bj) + s2 * (qi @ qj.T)
            if i == j:
                c = c - s2 * jnp.eye(c.shape[0], dtype=c.dtype)
            total = total + (1 if i == j else 2) * jnp.sum(c * c)
    return total


def deep_factors(theta) -> list:
    """A deep theta's factors ``[F_1, ..., F_L]``, for ``TopKTracker(deep_factors, k)``."""
    return list(theta["factors"])


class SVDTracker:
    """A stateful recorder (``lrjax.dynamics``): the top ``k`` singular values of ``W(t) = p.materialize(theta)``
    and ``|cos|`` of the angle between each singular vector and ``W(0)``'s of the same index (full SVD: for
    small ``W``). ``update`` returns ``{"sv": (k,), "cos_u": (k,), "cos_v": (k,)}``."""

    def __init__(self, p, k: int):
        self.p, self.k = p, k

    def _svd(self, theta):
        u, s, vt = jnp.linalg.svd(self.p.materialize(theta), full_matrices=False)
        return u[:, :self.k], s[:self.k], vt[:self.k].T

    def init(self, theta):
        u, _, v = self._svd(theta)
        return {"u": u, "v": v}

    def update(self, ref, theta):
        u, s, v = self._svd(theta)
        return ref, {"sv": s, "cos_u": jnp.abs(jnp.sum(u * ref["u"], 0)), "cos_v": jnp.abs(jnp.sum(v * ref["v"], 0))}
