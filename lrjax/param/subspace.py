"""Random-subspace weights (intrinsic dimension; Li et al. 2018, arXiv 1804.08838).

``subspace(dim, seed)``: ``W = W0 + reshape(P z)`` with ``W0`` frozen, ``z: (dim,)`` trainable and
zero at init (so the layer equals ``W0`` at init), and ``P: (size(W), dim)`` a frozen dense Gaussian
projection with unit-norm columns. ``P`` is regenerated from the static ``seed`` inside ``materialize``
(never stored, never trained), so theta holds only ``W0`` and ``z``. This is the per-layer form: each
bound layer gets its own ``z``; Li et al.'s global ``z`` shared by all layers is not implemented yet, nor
are their sparse and Fastfood projections.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from lrjax.param.base import FROZEN, TRAINABLE, Parameterization, check_positive_int


@dataclasses.dataclass(frozen=True)
class Subspace(Parameterization):
    """``W = base + reshape(P z)``; theta ``{"base": shape frozen, "z": (dim,)}``."""

    dim: int
    seed: int = 0

    def __post_init__(self):
        check_positive_int("subspace: dim", self.dim)

    def projection(self, size: int, dtype) -> jax.Array:
        """``P: (size, dim)``, Gaussian with unit-norm columns, a pure function of ``seed``."""
        p = jax.random.normal(jax.random.key(self.seed), (size, self.dim), dtype)
        return p / jnp.linalg.norm(p, axis=0, keepdims=True)

    def init(self, key, shape, dtype=jnp.float32):
        return self.from_weight(key, jnp.zeros(tuple(shape), dtype))

    def from_weight(self, key, w):
        w = jnp.asarray(w)
        return {"base": w, "z": jnp.zeros((self.dim,), w.dtype)}

    def materialize(self, theta):
        base = jax.lax.stop_gradient(theta["base"])
        p = self.projection(math.prod(base.shape), base.dtype)
        return base + (p @ theta["z"]).reshape(base.shape)

    def roles(self, theta):
        return {"base": FROZEN, "z": TRAINABLE}


def subspace(dim: int, seed: int = 0) -> Subspace:
    return Subspace(dim=dim, seed=seed)
