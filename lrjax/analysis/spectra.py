"""Spectra of weight matrices: singular values, principal angles, rank measures, trajectory PCA, the
spectra of weight updates during training (``UpdateSpectra``).

All functions are pure, jit-able and batched over leading axes where they take matrices.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


def singular_values(w: jax.Array) -> jax.Array:
    """Singular values of ``w: (..., m, n)``, descending, shape ``(..., min(m, n))``."""
    return jnp.linalg.svd(w, compute_uv=False)


def factor_spectra(theta) -> jax.Array:
    """Singular values of each factor of a deep theta, ``(L, k)`` (factors of equal ``min`` shape)."""
    return jnp.stack([singular_values(f) for f in theta["factors"]])


def orthonormal_basis(a: jax.Array, k: int | None = None) -> jax.Array:
    """An orthonormal basis ``(n, k)`` of the span of the columns of ``a: (n, p)`` (top-k left singular vectors)."""
    u, _, _ = jnp.linalg.svd(a, full_matrices=False)
    return u if k is None else u[:, :k]


def orthogonal_complement(q: jax.Array) -> jax.Array:
    """``(n, n - k)`` orthonormal basis of the complement of the orthonormal ``q: (n, k)``."""
    n, k = q.shape
    u, _, _ = jnp.linalg.svd(q, full_matrices=True)
    return u[:, k:]


def principal_angles(a: jax.Array, b: jax.Array) -> jax.Array:
    """Principal angles (radians, ascending) between the spans of orthonormal ``a: (n, k)``, ``b: (n, l)``."""
    cos = jnp.linalg.svd(a.T @ b, compute_uv=False)
    return jnp.arccos(jnp.clip(cos, 0.0, 1.0))


def subspace_alignment(a: jax.Array, b: jax.Array) -> jax.Array:
    """Cosine of the smallest principal angle: top singular value of ``a^T b`` (the Deep LoRA check)."""
    return jnp.linalg.svd(a.T @ b, compute_uv=False)[0]


def sin_largest_angle(a: jax.Array, b: jax.Array) -> jax.Array:
    """``sin`` of the largest principal angle from span(b) to span(a): ``||(I - a a^T) b||_2``."""
    return jnp.linalg.norm(b - a @ (a.T @ b), ord=2)


def numerical_rank(s: jax.Array, rtol: float | None = None, shape: tuple[int, int] | None = None) -> jax.Array:
    """Number of singular values ``> rtol * s_max`` (default ``rtol = max(shape) * eps(dtype)``)."""
    if rtol is None:
        n = max(shape) if shape is not None else s.shape[-1]
        rtol = n * jnp.finfo(s.dtype).eps
    return jnp.sum(s > rtol * s[..., :1], axis=-1)


def effective_rank(s: jax.Array) -> jax.Array:
    """Roy & Vetterli (2007): ``exp(H(p))`` with ``p = s / sum(s)``, between 1 and ``len(s)``."""
    p = s / jnp.sum(s, axis=-1, keepdims=True)
    h = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1)
    return jnp.exp(h)


class UpdateSpectra:
    """A stateful recorder: the singular values of every weight's update ``W(t) - W(0)``.

    ``weights(params) -> {name: W}``; an N-d weight (a conv kernel) is matricized to
    ``(prod(shape[:-1]), shape[-1])``. State: the initial weights. Values: ``{name: (min(m, n),)}``.
    """

    def __init__(self, weights: Callable):
        self.weights = weights

    def init(self, params) -> dict:
        return dict(self.weights(params))

    def update(self, w0: dict, params):
        w = self.weights(params)
        return w0, {k: singular_values((w[k] - w0[k]).reshape(-1, w[k].shape[-1])) for k in w}


def stable_rank(w: jax.Array) -> jax.Array:
    """``||W||_F^2 / ||W||_2^2`` for ``w: (..., m, n)``."""
    s = singular_values(w)
    return jnp.sum(s ** 2, axis=-1) / s[..., 0] ** 2


def trajectory_pca(x: np.ndarray, k: int = 2):
    """PCA of a trajectory ``x: (T, D)`` (one flattened parameter vector per step).

    Returns ``(mean (D,), components (k, D), explained_variance_ratio (k,))``; project another
    trajectory ``y`` on the same axes with ``(y - mean) @ components.T``.
    """
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    var = s ** 2
    return mean, vt[:k], var[:k] / var.sum()


def path_distance(points: np.ndarray, path: np.ndarray) -> float:
    """Largest distance from ``points (n, 2)`` to the polyline ``path (m, 2)`` (how far a trajectory
    strays from the reference path, whatever its speed along it)."""
    a, b = path[:-1, None], path[1:, None]                       # (m-1, 1, 2) segments
    ab = b - a
    t = np.clip(np.sum((points[None] - a) * ab, -1) / np.maximum(np.sum(ab * ab, -1), 1e-300), 0, 1)
    return float(np.min(np.linalg.norm(points[None] - (a + t[..., None] * ab), axis=-1), axis=0).max())
