"""Deep matrix factorization: targets and losses (Yaras et al. ICML 2024; Kwon et al. AISTATS 2024).

Theta is a ``deep`` parameterization's ``{"factors": [F_1, ..., F_L]}`` with ``x @ W = x F_1 ... F_L``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from lrjax.param.deep import product_matrix


def low_rank_target(key, d: int, rank: int, dtype=jnp.float64, spectrum: str = "spread",
                    n: int | None = None) -> jax.Array:
    """A ``(d, n)`` target ``Phi = U diag(s) V^T`` of rank ``rank`` with Haar-random ``U``, ``V``.

    ``spectrum="spread"``: ``s_i = 1 + (rank - i) / rank`` decreasing from ~2 to ~1 (distinct singular
    values); ``"flat"``: all ones; ``"gaussian"``: the best rank-``rank`` approximation of a ``(d, n)``
    standard Gaussian matrix (the authors' data, cjyaras/law-of-parsimony 5aa831a ``data.py`` ``generate_data``;
    ``s_1 ~ sqrt(d) + sqrt(n)``).
    """
    n = d if n is None else n
    if not 0 < rank <= min(d, n):
        raise ValueError(f"low_rank_target: rank={rank} must be in 1..{min(d, n)}")
    if spectrum == "gaussian":
        u, s, vt = jnp.linalg.svd(jax.random.normal(key, (d, n), dtype), full_matrices=False)
        return (u[:, :rank] * s[:rank]) @ vt[:rank]
    ku, kv = jax.random.split(key)
    u, _ = jnp.linalg.qr(jax.random.normal(ku, (d, rank), dtype))
    v, _ = jnp.linalg.qr(jax.random.normal(kv, (n, rank), dtype))
    if spectrum == "spread":
        s = 1.0 + (rank - jnp.arange(rank, dtype=dtype)) / rank
    elif spectrum == "flat":
        s = jnp.ones((rank,), dtype)
    else:
        raise ValueError(f"low_rank_target: spectrum must be 'spread', 'flat' or 'gaussian', got {spectrum!r}")
    return (u * s) @ v.T


def factorization_loss(theta, target: jax.Array) -> jax.Array:
    """``1/2 ||F_1 ... F_L - Phi||_F^2`` (sum over entries, as in the theorem's GD recursion)."""
    r = product_matrix(theta["factors"]) - target
    return 0.5 * jnp.sum(r * r)


def graded_target(kind: str, key, d: int, rank: int) -> jax.Array:
    """``W* (d, d)``: ``kind="lowrank"``: rank ``rank`` with singular values ``(rank, ..., 1) / rank``; ``"wide"``: full
    rank with ``(d, ..., 1) / d``; random orthonormal singular vectors (QR of Gaussians from ``key``)."""
    r = rank if kind == "lowrank" else d
    ku, kv = jax.random.split(key)
    u, _ = jnp.linalg.qr(jax.random.normal(ku, (d, r)))
    v, _ = jnp.linalg.qr(jax.random.normal(kv, (d, r)))
    s = jnp.arange(r, 0, -1, dtype=u.dtype) / r
    return (u * s) @ v.T
