"""Cheap spectral tracking at every step: warm-started subspace iteration with Rayleigh-Ritz.

``TopKTracker(matrices, k)`` is a stateful recorder for ``lrjax.dynamics.run``. For each matrix ``W``
(``matrices(params) -> (L, m, n)`` or a list of matrices) it keeps an orthonormal ``Q: (n, k)`` and, per update,

1. ``Q <- qr(W^T (W Q))`` (``iters`` times; one power step per training step, warm-started);
2. Rayleigh-Ritz: eigen-decomposition of the ``k x k`` matrix ``(W Q)^T (W Q)`` gives the top-``k``
   singular values ``top: (L, k)`` and rotates ``Q`` onto the Ritz vectors;
3. the bulk, ``B = W (I - Q Q^T)``: ``bulk_rms = ||B||_F / sqrt(n - k)`` and
   ``bulk_spread = std(sigma^2) / mean(sigma^2)`` over the remaining ``n - k`` singular values,
   from ``||B||_F^2`` and ``||B^T B - s2 (I - Q Q^T)||_F^2`` (zero iff they are all equal: the structure the
   invariant-subspace theorem predicts, so ``[top, bulk_rms * ones]`` is then the full spectrum).

Cost per matrix: ``O(m n k)`` for 1-2 and one ``n x n`` Gram (``m n^2``) for 3 (``moments=False`` skips
it); a full SVD of a 1000 x 1000 matrix costs ~800 GD steps on an H100. Accuracy: the Ritz values
converge like ``(sigma_{k+1} / sigma_k)^{2 t}``; with a gap they match ``jnp.linalg.svd`` to ~1e-6
relative in float32 and ~1e-12 in float64 after warm-up (tests/test_analysis.py).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class TopKTracker:
    """Stateful recorder: ``init(params) -> [Q_l (n_l, k)]``, ``update(Qs, params) -> (Qs, values)``.

    ``matrices(params)`` returns an ``(L, m, n)`` array or a list of ``L`` matrices (a list avoids copying
    the factors into one stack). Values: ``top (L, k)``, and with ``moments`` ``bulk_rms``, ``bulk_spread (L,)``.
    """

    matrices: Callable
    k: int
    iters: int = 1
    moments: bool = True
    seed: int = 0

    def _list(self, params) -> list:
        ws = self.matrices(params)
        return list(ws) if isinstance(ws, (list, tuple)) else [ws[i] for i in range(ws.shape[0])]

    def init(self, params):
        ws = self._list(params)
        keys = jax.random.split(jax.random.key(self.seed), len(ws))
        return [jnp.linalg.qr(jax.random.normal(key, (w.shape[-1], self.k), w.dtype))[0] for key, w in zip(keys, ws)]

    def update(self, qs, params):
        new_qs, top, rms, spread = [], [], [], []
        for w, q in zip(self._list(params), qs):
            for _ in range(self.iters):
                q = jnp.linalg.qr(jnp.einsum("ij,ik->jk", w, w @ q))[0]   # W^T (W Q), no transpose copy
            b = w @ q                                                    # (m, k)
            evals, evecs = jnp.linalg.eigh(b.T @ b)
            evals, evecs = evals[::-1], evecs[:, ::-1]
            q = q @ evecs
            new_qs.append(q)
            top.append(jnp.sqrt(jnp.clip(evals, 0.0)))
            if self.moments:
                n = w.shape[-1]
                bulk = w - (w @ q) @ q.T
                s2 = jnp.sum(bulk * bulk) / (n - self.k)
                # centred on the bulk subspace: B^T B - s2 (I - Q Q^T) has eigenvalues sigma_i^2 - s2 there and
                # 0 on span(Q); squaring it avoids the cancellation of E[sigma^4] - E[sigma^2]^2 (~sqrt(eps))
                centred = jnp.einsum("ij,ik->jk", bulk, bulk) - s2 * (jnp.eye(n, dtype=w.dtype) - q @ q.T)
                var = jnp.sum(centred * centred) / (n - self.k)
                rms.append(jnp.sqrt(s2))
                spread.append(jnp.sqrt(var) / jnp.maximum(s2, jnp.finfo(w.dtype).tiny))
        values = {"top": jnp.stack(top)}
        if self.moments:
            values["bulk_rms"], values["bulk_spread"] = jnp.stack(rms), jnp.stack(spread)
        return new_qs, values


def deep_factors(theta) -> list:
    """A deep theta's factors ``[F_1, ..., F_L]``, for ``TopKTracker(deep_factors, k)``."""
    return list(theta["factors"])
