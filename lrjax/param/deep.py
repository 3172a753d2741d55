"""Deep matrix factorization, Deep LoRA and the compressed deep factorization.

- ``deep(depth, width, init, scale)``: ``W = F_1 F_2 ... F_L`` (so ``x @ W = x F_1 ... F_L``) with
  ``F_1: (m, w)``, ``F_l: (w, w)``, ``F_L: (w, n)``. In the papers' column-vector notation
  ``W_{L:1} = W_L ... W_1`` this is ``F_l = W_l^T``: singular values agree, left/right vectors swap.
  Init ``"orthogonal"``: ``F_l = eps_l Q_l`` with ``Q_l`` (semi-)orthogonal, so ``W_l W_l^T = eps_l^2 I``
  (the hypothesis of the invariant-subspace theorem, Yaras et al. ICML 2024); ``"permutation"``: the same
  with ``Q_l`` a random signed partial permutation (``param.permutation``, applied in ``O(size)`` by the
  sparse completion path); ``"gaussian"``: i.i.d.
  ``N(0, eps_l^2 / w_in)`` (a negative control: same scale, no orthogonality). ``scale`` is one eps or a
  tuple of ``depth`` eps_l. Default width ``min(m, n)``.
- ``deep_lora(depth, width, scale)``: ``W = W0 + F_1 ... F_L`` with ``W0`` frozen
  (Yaras et al., ``cjyaras/deep-lora-transformers``); ``eps`` small so the update is ~0 at init.
- ``compressed_deep(depth, width, scale)``: ``deep(depth + 2, width)`` whose first and last factors
  (``F_1: (m, w)``, ``F_{L+2}: (w, n)``) have role ``"outer"`` (trained at ``gamma * lr``) and whose
  ``depth`` inner ``w x w`` factors start at ``eps I``. Random orthonormal outer factors give the
  "random narrow network" baseline; ``lrjax.analysis.compress`` sets them from the initial gradient.

``apply`` multiplies ``x`` through the chain, ``O(w (m + n + (L-2) w))`` per row.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from lrjax.param.base import (OUTER, TRAINABLE, Adapter, Parameterization, check_finite, check_matrix_shape,
                              check_positive_int)
from lrjax.param.permutation import random_signed_map
from lrjax.param.registry import register

INITS = ("orthogonal", "permutation", "gaussian", "identity")


def orthogonal(key, shape, dtype) -> jax.Array:
    """A random matrix of ``shape`` with orthonormal rows (wide) or columns (tall), Haar-distributed."""
    a, b = shape
    g = jax.random.normal(key, (max(a, b), min(a, b)), dtype)
    q, r = jnp.linalg.qr(g)
    q = q * jnp.sign(jnp.diagonal(r))  # Haar measure
    return q if a >= b else q.T


def chain(x: jax.Array, factors) -> jax.Array:
    """``x @ F_1 @ ... @ F_L``, left to right."""
    for f in factors:
        x = x @ f
    return x


def product_matrix(factors) -> jax.Array:
    """``F_1 @ ... @ F_L``, left to right. (Not ``jnp.linalg.multi_dot``: with jax 0.10.2 it returned
    wrong products for long chains of ~46 DLoR factors, see tests/test_param.py.)"""
    return functools.reduce(jnp.matmul, factors)


@dataclasses.dataclass(frozen=True)
class Deep(Parameterization):
    """``W = F_1 ... F_L``; theta ``{"factors": [F_1, ..., F_L]}``."""

    depth: int
    width: int | None = None
    init_method: str = "orthogonal"
    scale: float | tuple[float, ...] = 1.0
    outer_role: str = TRAINABLE

    def __post_init__(self):
        check_positive_int("deep: depth", self.depth)
        if self.width is not None:
            check_positive_int("deep: width", self.width)
        if self.init_method not in INITS:
            raise ValueError(f"deep: init must be one of {', '.join(INITS)}, got {self.init_method!r}")
        if isinstance(self.scale, list):
            object.__setattr__(self, "scale", tuple(self.scale))
        for eps in (self.scale if isinstance(self.scale, tuple) else (self.scale,)):
            check_finite("deep: scale", eps)
        if isinstance(self.scale, tuple) and len(self.scale) != self.depth:
            raise ValueError(f"deep: scale has {len(self.scale)} entries, expected depth={self.depth}")

    @property
    def scales(self) -> tuple[float, ...]:
        """``(eps_1, ..., eps_L)``."""
        return self.scale if isinstance(self.scale, tuple) else (self.scale,) * self.depth

    def factor_shapes(self, shape) -> list[tuple[int, int]]:
        m, n = check_matrix_shape("deep", shape)
        w = self.width or min(m, n)
        if self.depth == 1:
            return [(m, n)]
        return [(m, w)] + [(w, w)] * (self.depth - 2) + [(w, n)]

    def init(self, key, shape, dtype=jnp.float32):
        shapes = self.factor_shapes(shape)
        keys = jax.random.split(key, self.depth)
        factors = []
        for k, s, eps in zip(keys, shapes, self.scales):
            if self.init_method == "orthogonal":
                f = eps * orthogonal(k, s, dtype)
            elif self.init_method == "permutation":
                f = eps * random_signed_map(k, s, dtype).dense()
            elif self.init_method == "gaussian":
                f = eps * jax.random.normal(k, s, dtype) / s[0] ** 0.5
            else:
                f = eps * jnp.eye(*s, dtype=dtype)
            factors.append(f)
        return {"factors": factors}

    def materialize(self, theta):
        return product_matrix(theta["factors"])

    def apply(self, theta, x):
        return chain(x, theta["factors"])

    def roles(self, theta):
        roles = [TRAINABLE] * len(theta["factors"])
        if len(roles) >= 2:
            roles[0] = roles[-1] = self.outer_role
        return {"factors": roles}


@dataclasses.dataclass(frozen=True)
class DeepLoRA(Adapter):
    """``W = base + F_1 ... F_L``; theta ``{"base": (m, n) frozen, "factors": [...]}``."""

    deep: Deep

    def init_delta(self, key, shape, dtype):
        check_matrix_shape("deep_lora", shape)
        return self.deep.init(key, shape, dtype)

    def delta(self, theta):
        return self.deep.materialize(theta)

    def apply_delta(self, theta, x):
        return self.deep.apply(theta, x)

    def delta_roles(self, theta):
        return self.deep.roles(theta)


def deep(depth: int, width: int | None = None, init: str = "orthogonal",
         scale: float | tuple[float, ...] = 1.0) -> Deep:
    return Deep(depth=depth, width=width, init_method=init, scale=scale)


def deep_lora(depth: int = 3, width: int | None = None, scale: float = 1e-3,
              init: str = "orthogonal") -> DeepLoRA:
    return DeepLoRA(deep=Deep(depth=depth, width=width, init_method=init, scale=scale))


def compressed_deep(depth: int, width: int, scale: float | tuple[float, ...] = 1e-3) -> Deep:
    """Deep factorization ``[outer (m, w), eps_l I_w x depth, outer (w, n)]``; see the module docstring."""
    check_positive_int("compressed_deep: depth", depth)
    scales = tuple(scale) if isinstance(scale, (tuple, list)) else (scale,) * depth
    if len(scales) != depth:
        raise ValueError(f"compressed_deep: scale has {len(scales)} entries, expected depth={depth}")
    return CompressedDeep(depth=depth + 2, width=width, init_method="orthogonal",
                          scale=(1.0,) + scales + (1.0,), outer_role=OUTER)


@dataclasses.dataclass(frozen=True)
class CompressedDeep(Deep):
    """A ``Deep`` whose inner factors start at ``eps I`` and whose two outer factors are orthonormal."""

    def init(self, key, shape, dtype=jnp.float32):
        theta = super().init(key, shape, dtype)
        fs = theta["factors"]
        w = fs[0].shape[1]
        inner = [eps * jnp.eye(w, dtype=dtype) for eps in self.scales[1:-1]]
        return {"factors": [fs[0]] + inner + [fs[-1]]}


register("deep", deep)
register("deep_lora", deep_lora)
register("compressed_deep", compressed_deep)
