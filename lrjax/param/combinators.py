"""Combinators: parameterizations from parameterizations, like ``optax.chain`` / ``stax.serial``.

- ``plus(p_1, ..., p_k)``: ``W = W_1 + ... + W_k`` (additive: width). ``plus(lowrank(r), ...)`` is a
  wide low-rank network layer; ``plus(frozen(), lowrank(r))`` an adapter.
- ``product(p_1, ..., p_k)``: ``W = W_1 W_2 ... W_k`` (multiplicative: depth), i.e.
  ``x @ W = (((x W_1) W_2) ... W_k)``. For shape ``(m, n)`` factor 1 is ``(m, n)`` and the others
  ``(n, n)``. ``product(dlor(r), ...)`` is a deep DLoR layer.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from lrjax.param.base import Parameterization, check_matrix_shape
from lrjax.param.deep import product_matrix
from lrjax.param.registry import register


def _check_parts(name, parts):
    if not parts:
        raise ValueError(f"{name} needs at least one parameterization")
    for p in parts:
        if not isinstance(p, Parameterization):
            raise TypeError(f"{name}: expected Parameterization values, got {p!r}")


@dataclasses.dataclass(frozen=True)
class Plus(Parameterization):
    """``W = sum_i W_i``; theta ``{"terms": [theta_1, ..., theta_k]}``."""

    parts: tuple[Parameterization, ...]

    def __post_init__(self):
        _check_parts("plus", self.parts)

    def init(self, key, shape, dtype=jnp.float32):
        keys = jax.random.split(key, len(self.parts))
        return {"terms": [p.init(k, shape, dtype) for p, k in zip(self.parts, keys)]}

    def from_weight(self, key, w):
        keys = jax.random.split(key, len(self.parts))
        return {"terms": [p.from_weight(k, w) for p, k in zip(self.parts, keys)]}

    def materialize(self, theta):
        return functools.reduce(jnp.add, [p.materialize(t) for p, t in zip(self.parts, theta["terms"])])

    def apply(self, theta, x):
        return functools.reduce(jnp.add, [p.apply(t, x) for p, t in zip(self.parts, theta["terms"])])

    def roles(self, theta):
        return {"terms": [p.roles(t) for p, t in zip(self.parts, theta["terms"])]}


@dataclasses.dataclass(frozen=True)
class Product(Parameterization):
    """``W = W_1 W_2 ... W_k``; theta ``{"factors": [theta_1, ..., theta_k]}``."""

    parts: tuple[Parameterization, ...]

    def __post_init__(self):
        _check_parts("product", self.parts)

    def part_shapes(self, shape):
        m, n = check_matrix_shape("product", shape)
        return [(m, n)] + [(n, n)] * (len(self.parts) - 1)

    def init(self, key, shape, dtype=jnp.float32):
        keys = jax.random.split(key, len(self.parts))
        return {"factors": [p.init(k, s, dtype)
                            for p, k, s in zip(self.parts, keys, self.part_shapes(shape))]}

    def materialize(self, theta):
        return product_matrix([p.materialize(t) for p, t in zip(self.parts, theta["factors"])])

    def apply(self, theta, x):
        for p, t in zip(self.parts, theta["factors"]):
            x = p.apply(t, x)
        return x

    def roles(self, theta):
        return {"factors": [p.roles(t) for p, t in zip(self.parts, theta["factors"])]}


def plus(*parts: Parameterization) -> Plus:
    return Plus(parts=tuple(parts))


def product(*parts: Parameterization) -> Product:
    return Product(parts=tuple(parts))


register("plus", plus)
register("product", product)
