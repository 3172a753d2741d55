"""Random-subspace weights (intrinsic dimension; Li et al. 2018, arXiv 1804.08838).

``subspace(dim, seed, projection="dense")``: ``W = W0 + reshape(P z)`` with ``W0`` frozen, ``z: (dim,)``
trainable and zero at init (so the layer equals ``W0`` at init), and ``P: (size(W), dim)`` a frozen random
projection (``param.projection``: ``dense`` Gaussian with unit-norm columns, ``sparse`` or ``fastfood``).
``P`` is regenerated from the static ``seed`` inside ``materialize`` (never stored, never trained), so theta
holds only ``W0`` and ``z``. This is the per-layer form: each bound layer gets its own ``z``; Li et al.'s
global ``z`` shared by all layers of a network is ``lrjax.studies.intrinsic_dimension.GlobalSubspace``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp

from lrjax.param.base import Adapter, check_positive_int
from lrjax.param.projection import KINDS, Projection
from lrjax.param.registry import register


@dataclasses.dataclass(frozen=True)
class Subspace(Adapter):
    """``W = base + reshape(P z)``; theta ``{"base": shape frozen, "z": (dim,)}``."""

    dim: int
    seed: int = 0
    projection: str = "dense"
    any_shape: ClassVar[bool] = True

    def __post_init__(self):
        check_positive_int("subspace: dim", self.dim)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"subspace: seed must be a non-negative integer, got {self.seed!r}")
        if self.projection not in KINDS:
            raise ValueError(f"subspace: projection must be one of {KINDS}, got {self.projection!r}")

    def init_delta(self, key, shape, dtype):
        return {"z": jnp.zeros((self.dim,), dtype)}

    def delta(self, theta):
        shape = theta["base"].shape
        if self.projection == "dense":      # the draw of adapters saved before the other projections existed
            p = jax.random.normal(jax.random.key(self.seed), (math.prod(shape), self.dim), theta["z"].dtype)
            return ((p / jnp.linalg.norm(p, axis=0, keepdims=True)) @ theta["z"]).reshape(shape)
        p = Projection(math.prod(shape), self.dim, self.projection)
        return p.apply(theta["z"], jax.random.key(self.seed)).reshape(shape)


def subspace(dim: int, seed: int = 0, projection: str = "dense") -> Subspace:
    return Subspace(dim=dim, seed=seed, projection=projection)


register("subspace", subspace)
