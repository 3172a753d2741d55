"""Dense and frozen weights: ``W = w`` (trainable) and ``W = base`` (frozen, no gradient)."""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from lrjax.param.base import FROZEN, Parameterization, check_finite, gaussian
from lrjax.param.registry import register


def _check_shape(family, shape):
    shape = tuple(shape)
    if any(not isinstance(s, int) or s <= 0 for s in shape):
        raise ValueError(f"{family}: shape must be a tuple of positive ints, got {shape!r}")
    return shape


@dataclasses.dataclass(frozen=True)
class Dense(Parameterization):
    """``W = w``, any shape; init ``N(0, 1/fan_in)`` (LeCun normal, fan_in = shape[0]) times ``scale``."""

    scale: float = 1.0
    any_shape: ClassVar[bool] = True

    def __post_init__(self):
        check_finite("dense: scale", self.scale)

    def init(self, key, shape, dtype=jnp.float32):
        shape = _check_shape("dense", shape)
        return {"w": gaussian(key, shape, dtype, self.scale / max(shape[0], 1) ** 0.5)}

    def materialize(self, theta):
        return theta["w"]

    def from_weight(self, key, w):
        return {"w": jnp.asarray(w)}


@dataclasses.dataclass(frozen=True)
class Frozen(Parameterization):
    """``W = base``, never trained (gradients stopped, role ``frozen``); any shape and dtype (integer
    leaves such as RNG counts pass through as they are), zeros at init."""

    any_shape: ClassVar[bool] = True

    def init(self, key, shape, dtype=jnp.float32):
        return {"base": jnp.zeros(_check_shape("frozen", shape), dtype)}

    def materialize(self, theta):
        base = theta["base"]
        return jax.lax.stop_gradient(base) if jnp.issubdtype(base.dtype, jnp.inexact) else base

    def roles(self, theta):
        return {"base": FROZEN}

    def from_weight(self, key, w):
        return {"base": jnp.asarray(w)}


def dense(scale: float = 1.0) -> Dense:
    return Dense(scale=scale)


def frozen() -> Frozen:
    return Frozen()


register("dense", dense)
register("frozen", frozen)
