"""Deep matrix completion from observed entries only: the original, compressed and spectral methods of
``lrjax.studies.matrix_recovery`` without any ``(m, n)`` matrix (Yaras et al. ICML 2024; Kwon et al. AISTATS 2024).

Choices (the compressed and spectral methods never form ``m x n``):

- The original network's init is a *signed partial permutation* per factor, ``F_l(0) = eps_l Q_l``
  (``SignedMap``: orthonormal rows or columns, so ``W_l W_l^T = eps^2 I`` as the invariant-subspace
  theorem needs), drawn uniformly; ``Q_l v`` costs ``O(size)``. ``lrjax.param.deep(init="permutation")``
  is the same draw as dense matrices (the dense path, for tests and the original method).
- Compression from one gradient: ``G = dL/dF_1(0) = (1/mn) R (F_2 ... F_L)^T`` with ``R`` the sparse
  residual on Omega, applied as an operator. ``v1`` = top-``r`` left singular vectors of ``G``;
  ``v2`` = top-``r`` left singular vectors of ``F_1(0) G^T = eps Q_1 G^T``, which are ``Q_1`` times ``G``'s
  top right singular vectors, so one truncated SVD of ``G`` gives both. ``V = orth([v1, v2])`` and the
  factors ``[V, eps_l I_{2r} ..., V^T W(0) / prod eps]`` as in ``lrjax.analysis.compress``.
- Truncated SVDs (``top_singular``) by randomized block subspace iteration (Halko et al. 2011) with
  ``oversample`` extra columns and ``iters`` power steps, re-orthonormalised each step: the dynamics only
  depend on the subspace (GD is equivariant to orthogonal changes of basis of the inner width), so the
  trajectory matches the exact SVD's to round-off once the subspace has converged.
- Spectral init: top-``w`` SVD of the surrogate ``S = P_Omega(Phi) / p`` the same way.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from lrjax import param
from lrjax.param import OUTER, TRAINABLE
from lrjax.param.permutation import random_signed_map
from lrjax.studies import matrix_recovery, recipe
from lrjax.tasks import sparse_completion
from lrjax.tasks.sparse_completion import SparseCompletion


def original_maps(key, depth: int, shape: tuple[int, int], width: int | None = None, dtype=jnp.float64):
    """The ``Q_l`` of the original network's init: the factor shapes of ``param.deep(depth, width)``, one
    key each (``jax.random.split(key, depth)``, as ``Deep.init``)."""
    shapes = param.deep(depth, width=width).factor_shapes(shape)
    return [random_signed_map(k, s, dtype) for k, s in zip(jax.random.split(key, depth), shapes)]


# ---- truncated SVD of an operator ------------------------------------------------------------------------

def top_singular(matvec, rmatvec, shape: tuple[int, int], k: int, key, *, iters: int = 30, oversample: int = 10,
                 dtype=jnp.float64):
    """Top-``k`` ``(U (a, k), s (k,), V (b, k))`` of an ``(a, b)`` operator given as ``matvec(X: (b, l))`` and
    ``rmatvec(Y: (a, l))``: randomized subspace iteration (module docstring). With ``k + oversample >=
    min(a, b)`` the subspace is the whole range and the result is exact."""
    a, b = shape
    cols = min(k + oversample, a, b)
    q = jnp.linalg.qr(matvec(jax.random.normal(key, (b, cols), dtype)))[0]

    def power(_, q):
        z = jnp.linalg.qr(rmatvec(q))[0]
        return jnp.linalg.qr(matvec(z))[0]

    q = jax.lax.fori_loop(0, iters, power, q)
    u_small, s, vt = jnp.linalg.svd(rmatvec(q).T, full_matrices=False)  # Q^T A = U_s S V^T
    return (q @ u_small)[:, :k], s[:k], vt[:k].T


def entries_operator(rows, cols, values, shape):
    """The sparse ``(m, n)`` matrix with ``values`` at ``(rows, cols)`` (rows sorted) as ``(X -> S X,
    Y -> S^T Y)``, ``O(nnz l)`` for ``l`` columns."""
    m, n = shape

    def mv(x):  # (n, l) -> (m, l)
        return jax.ops.segment_sum(values[:, None] * x[cols], rows, num_segments=m, indices_are_sorted=True)

    def rmv(y):  # (m, l) -> (n, l)
        return jax.ops.segment_sum(values[:, None] * y[rows], cols, num_segments=n)
    return mv, rmv


def compressed_factors(data, shape, maps, scales, rank: int, key, width: int | None = None, **svd):
    """Compressed factors ``[V (m, w), eps_l I_w ..., V^T W(0) / prod eps (w, n)]`` (module docstring) of
    the original network ``F_l(0) = scales[l] maps[l]``, from one gradient of the sparse loss."""
    width = 2 * rank if width is None else width
    m, n = shape
    tail = maps[1]
    for q in maps[2:]:
        tail = tail.then(q)  # Q_2 ... Q_L: (w, n)
    whole = maps[0].then(tail)  # Q_1 ... Q_L: (m, n)
    obs = data["observed"]
    pred0 = math.prod(scales) * whole.signs[obs["rows"]] * (whole.cols[obs["rows"]] == obs["cols"])
    r_mv, r_rmv = entries_operator(obs["rows"], obs["cols"], pred0 - obs["values"], shape)
    c = math.prod(scales[1:]) * data["loss_weight"]
    u, _, v = top_singular(lambda x: c * r_mv(tail.rmatvec(x)),  # G x = c R T^T x, x: (w, l)
                           lambda y: c * tail.matvec(r_rmv(y)),  # G^T y = c T R^T y, y: (m, l)
                           (m, maps[0].n_cols), rank, key, **svd)
    both = jnp.concatenate([u, maps[0].matvec(v)], axis=1)
    basis = jnp.linalg.svd(both, full_matrices=False)[0][:, :width]
    inner = [eps * jnp.eye(width, dtype=basis.dtype) for eps in scales]
    last = whole.rmatvec(basis).T  # V^T Q_1 ... Q_L = V^T W(0) / prod eps
    return [basis] + inner + [last]


def spectral_factors(data, shape, depth: int, eps: float, width: int, key, **svd):
    """Kwon et al.'s spectral init: ``[eps U_w, eps I_w ..., eps V_w^T]`` from the top-``w`` SVD of
    ``S = P_Omega(Phi) / p`` (``p = |Omega| / (m n)``), applied through the observed entries only."""
    m, n = shape
    obs = data["observed"]
    p = obs["values"].shape[0] / (m * n)
    s_mv, s_rmv = entries_operator(obs["rows"], obs["cols"], obs["values"] / p, shape)
    u, _, v = top_singular(s_mv, s_rmv, shape, width, key, **svd)
    eye = jnp.eye(width, dtype=u.dtype)
    return [eps * u] + [eps * eye] * (depth - 2) + [eps * v.T]


@dataclasses.dataclass(frozen=True)
class SparseMethod:
    """A method's label, theta ``{"factors": [F_1, ..., F_L]}`` and the outer factors' rate scale (the
    first and last factors have role ``outer``, trained at ``outer_lr_scale * eta``)."""

    label: str
    theta: dict
    outer_lr_scale: float = 1.0

    def roles(self) -> dict:
        n = len(self.theta["factors"])
        return {"factors": [OUTER] + [TRAINABLE] * (n - 2) + [OUTER]}

    @property
    def num_params(self) -> int:
        return sum(math.prod(f.shape[-2:]) for f in self.theta["factors"])


METHODS = ("original", "compressed", "spectral", "two_factor")


def make_method(name: str, task: SparseCompletion, data, *, depth: int, eps: float, rank: int, gamma: float,
                seed: int, dtype=jnp.float64, **svd) -> SparseMethod:
    """``original`` (dense ``(d, d)`` signed-permutation factors, ``Deep(init="permutation")``'s draw),
    ``compressed`` (width ``2 rank``, outer factors at ``gamma * eta``), ``spectral`` (width ``2 rank``) or
    ``two_factor`` (the rank-``rank`` baseline ``W = F_1 F_2``, ``param.deep(2, rank, scale=eps)``'s init).
    The original's init is drawn from ``jax.random.key(seed + 1)``, the SVD sketches from
    ``jax.random.key(seed + 2)``; ``svd``: options of ``top_singular``. ``seed`` and ``eps`` may be traced
    (a vmapped sweep over them, ``experiments/completion_sweep.py``)."""
    key, svd_key = jax.random.key(seed + 1), jax.random.key(seed + 2)
    if name == "two_factor":  # eps * (unit-scale draw): param.deep's own init, with eps allowed to be traced
        unit = param.deep(2, width=rank).init(key, task.shape, dtype)
        return SparseMethod(f"two_factor r={rank}", {"factors": [eps * f for f in unit["factors"]]})
    if name == "spectral":
        return SparseMethod(f"spectral w={2 * rank}",
                            {"factors": spectral_factors(data, task.shape, depth, eps, 2 * rank, svd_key, **svd)})
    maps = original_maps(key, depth, task.shape, dtype=dtype)
    if name == "original":
        return SparseMethod("original", {"factors": [eps * q.dense() for q in maps]})
    if name == "compressed":
        factors = compressed_factors(data, task.shape, maps, (eps,) * depth, rank, svd_key, **svd)
        return SparseMethod(f"compressed w={2 * rank} gamma={gamma:g}", {"factors": factors}, gamma)
    raise ValueError(f"unknown method {name!r}; use {', '.join(METHODS)}")


def fit(method: SparseMethod, data, eta: float, steps: int, evaluation: str = "gather",
        **options) -> recipe.Training:
    """Plain GD on ``sparse_completion.losses(evaluation)``'s loss with its recovery error as the evaluation
    (``matrix_recovery.gradient_descent``'s ``options``: tol, chunk_size, record_every, checkpoint, ...)."""
    loss, recovery_error = sparse_completion.losses(evaluation)
    return matrix_recovery.gradient_descent(method.label, method.theta, method.roles(), method.outer_lr_scale, loss,
                                            recovery_error, data, eta, steps, num_params=method.num_params, **options)


def default_eta(shape, observed: int) -> float:
    """The paper's ``eta = 5e3`` at ``d = 1000``, ``p = 0.2`` (cjyaras/law-of-parsimony 5aa831a
    ``fig_compare_iteration_time.ipynb`` cell 1: ``step_size``, ``d``, ``percent_observed``), scaled by
    ``(d / 1000)^(4/3) (0.2 / p)``."""
    d = math.sqrt(math.prod(shape))
    return 5e3 * (d / 1000) ** (4 / 3) * (0.2 / (observed / math.prod(shape)))


ERROR_LEVELS = {"1e-8": 1e-8, "1e-10": 1e-10}


def time_to_errors(fit, levels: dict) -> dict:
    """``steps_to_error_<name>`` (first recorded step with recovery error ``<= level``, ``None`` if never) and
    ``time_to_error_<name>_s`` (that many steps at the measured ``ms_per_step``, compile excluded)."""
    out = {}
    for name, level in levels.items():
        step = int(fit.steps_to(level))
        out[f"steps_to_error_{name}"] = step if step >= 0 else None
        out[f"time_to_error_{name}_s"] = step * fit.ms_per_step / 1e3 if step >= 0 else None
    return out
