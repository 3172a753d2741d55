"""Compression of deep factorizations from one gradient at init (Yaras et al. ICML 2024, Sec. 3-4).

In lrjax's convention ``x @ W = x F_1 ... F_L`` (``F_l = W_l^T`` of the paper). With ``G = dloss/dF_1``
at init, the authors' ``compute_factor_v2`` (cjyaras/law-of-parsimony 5aa831a ``network.py`` line 103) reads,
transposed:

- ``v1`` = top-``r`` left singular vectors of ``G`` (``m x w``),
- ``v2`` = top-``r`` left singular vectors of ``F_1(0) G^T`` (``m x m``),
- ``V = orth([v1, v2])``: ``(m, 2r)``, the input-side invariant subspace.

The compressed factorization is ``[V, eps_1 I_{2r}, ..., eps_L I_{2r}, V^T W(0) / prod eps]``
(``compressed_deep(L, 2r)``), i.e. ``W_C(0) = V V^T W(0)``. Its two outer factors have role ``outer``
(trained at ``gamma * lr``: gamma (their ``dlr``) = 0 for factorization, 0.01 for completion in the paper's
notebooks: ``fig_equiv_traj_L2.ipynb`` cell 7, ``fig_equiv_traj_mc.ipynb`` cell 13; its cell 12 is the
``dlr = 0`` comparison).
Proposition 2: ``||W(t) - W_C(t)||_F^2 <= (d - 2r) prod_l eps_l^2`` for all ``t``.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from lrjax.binding import Bound
from lrjax.param import CompressedDeep, Deep, DeepLoRA, OUTER
from lrjax.param.deep import product_matrix


def invariant_input_subspace(first_factor: jax.Array, grad_first: jax.Array, rank: int,
                             width: int | None = None) -> jax.Array:
    """``V: (m, width)`` (default ``2 rank``) spanning ``v1`` and ``v2`` (module docstring)."""
    width = 2 * rank if width is None else width
    v1 = jnp.linalg.svd(grad_first, full_matrices=False)[0][:, :rank]
    v2 = jnp.linalg.svd(first_factor @ grad_first.T, full_matrices=False)[0][:, :rank]
    return jnp.linalg.svd(jnp.concatenate([v1, v2], axis=1), full_matrices=False)[0][:, :width]


def energy_outside(v: jax.Array, target: jax.Array, q: jax.Array | None = None) -> jax.Array:
    """``1 - ||V^T Phi Q||_F^2 / ||Phi||_F^2`` for orthonormal ``V: (m, k)``, ``Q: (n, l)`` (default ``I``) and
    ``Phi: (m, n)``: the share of the target outside every ``V M Q^T``, i.e. ``min_M ||V M Q^T - Phi||_F^2 /
    ||Phi||_F^2``. A compressed network with both outer factors frozen (gamma = 0) is such a ``V M Q^T``
    (``V`` its first factor, ``Q`` an orthonormal basis of its last factor's rows). Zero when span(V) and
    span(Q) hold Phi's column and row spaces."""
    inside = v.T @ target if q is None else v.T @ target @ q
    return 1.0 - jnp.sum(inside ** 2) / jnp.sum(target ** 2)


def compressed_param(deep: Deep, rank: int, width: int | None = None) -> CompressedDeep:
    """The ``compressed_deep`` parameterization matching ``deep``'s depth and per-layer eps."""
    width = 2 * rank if width is None else width
    return CompressedDeep(depth=deep.depth + 2, width=width, init_method="orthogonal",
                          scale=(1.0,) + tuple(deep.scales) + (1.0,), outer_role=OUTER)


def compress_factors(deep: Deep, factors, grad_first: jax.Array, rank: int, width: int | None = None):
    """Compressed factor list ``[V, eps_l I ..., V^T W(0) / prod eps]`` from a deep theta's factors."""
    return compress_factors_onto(deep, factors, invariant_input_subspace(factors[0], grad_first, rank, width))


def compress_factors_onto(deep: Deep, factors, v: jax.Array):
    """``[V, eps_l I_k ..., V^T W(0) / prod eps]`` for a given orthonormal ``V: (m, k)``."""
    w0 = product_matrix(factors)
    k = v.shape[1]
    inner = [eps * jnp.eye(k, dtype=w0.dtype) for eps in deep.scales]
    return [v] + inner + [v.T @ w0 / math.prod(deep.scales)]


def compress(deep: Deep, theta, loss_fn, rank: int, width: int | None = None):
    """``(compressed_param, compressed_theta)`` for a deep theta and a loss ``loss_fn(theta)``."""
    grad_first = jax.grad(loss_fn)(theta)["factors"][0]
    return compressed_param(deep, rank, width), {"factors": compress_factors(deep, theta["factors"], grad_first,
                                                                             rank, width)}


def compress_bound(bound, loss_fn, rank: int, width: int | None = None):
    """Compress every ``deep_lora`` layer of a ``lrjax.binding.Bound`` from one gradient of ``loss_fn(bound)``.

    Each such layer becomes ``DeepLoRA(compressed_deep)`` with the same frozen base; other layers are kept.
    """
    grads = jax.grad(loss_fn)(bound)
    theta, pairs = dict(bound.theta), []
    for name, p in bound.params:
        if isinstance(p, DeepLoRA):
            t = bound.theta[name]
            factors = compress_factors(p.deep, t["factors"], grads.theta[name]["factors"][0], rank, width)
            p = DeepLoRA(deep=compressed_param(p.deep, rank, width))
            theta[name] = {"base": t["base"], "factors": factors}
        pairs.append((name, p))
    return Bound(theta, tuple(pairs), bound.treedef)
