"""An nnx layer for models written from scratch: ``Linear(4, 8, param="lowrank(2)", rngs=...)``."""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lrjax.param import Parameterization, combine, from_spec, partition


class FrozenVariable(nnx.Variable):
    """An nnx variable that optimizers built with ``wrt=nnx.Param`` do not update."""


class Linear(nnx.Module):
    """``y = x @ W + b`` with ``W`` given by a parameterization, applied without forming ``W`` where cheaper.

    Trainable and outer leaves of theta live in ``self.theta`` (an ``nnx.Param``), frozen ones in
    ``self.frozen`` (a ``FrozenVariable``).
    """

    def __init__(self, in_features: int, out_features: int, *, param: str | Parameterization = "dense()",
                 use_bias: bool = True, dtype=jnp.float32, rngs: nnx.Rngs):
        self.parameterization = from_spec(param)
        theta = self.parameterization.init(rngs.params(), (in_features, out_features), dtype)
        trainable, frozen = partition(theta, self.parameterization.roles(theta))
        self.theta = nnx.Param(trainable)
        self.frozen = FrozenVariable(frozen)
        self.bias = nnx.Param(jnp.zeros((out_features,), dtype)) if use_bias else None

    def full_theta(self):
        return combine(self.theta.get_value(), self.frozen.get_value())

    def weight(self) -> jax.Array:
        """The materialized ``(in, out)`` weight."""
        return self.parameterization.materialize(self.full_theta())

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.parameterization.apply(self.full_theta(), x)
        return y if self.bias is None else y + self.bias.get_value()
