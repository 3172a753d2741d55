"""N-d weights through a matrix family: ``W = reshape(M, shape)`` with ``M`` of shape ``(prod(shape[:-1]),
shape[-1])`` given by any matrix parameterization.

A Flax conv kernel ``(kh, kw, in, out)`` becomes the ``(kh * kw * in, out)`` matrix whose column ``o`` is
filter ``o`` flattened (row-major, so row ``(i * kw + j) * in + c`` is tap ``(i, j)`` of input channel
``c``): the map from an input patch to the output channels. ``lora(r)`` on it is a rank-``r`` update of
that patch-to-channel map (as PEFT's Conv LoRA with a ``kh x kw`` first factor), ``lowrank(r)`` bounds the
rank of the patch map, ``deep(L)`` factors it. ``bind`` wraps matrix-only families this way for every
kernel with more than two dimensions; theta is the inner family's theta of the matrix. The split is
always "last axis = outputs" (Flax's convention for ``Conv``); a ``DenseGeneral`` kernel with several
output axes (attention ``(in, heads, head_dim)``) would be cut at the wrong place: bind such kernels
through a family of your own, or reshape them yourself.
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax.numpy as jnp

from lrjax.param.base import Parameterization


def matrix_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(prod(shape[:-1]), shape[-1])``."""
    return (math.prod(shape[:-1]), shape[-1])


@dataclasses.dataclass(frozen=True)
class Matricized(Parameterization):
    """``W = reshape(inner(theta), shape)``; theta is ``inner``'s theta for ``matrix_shape(shape)``."""

    inner: Parameterization
    shape: tuple[int, ...]
    any_shape: ClassVar[bool] = True  # it matricizes itself

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(self.shape))
        if len(self.shape) < 2 or any(not isinstance(s, int) or s <= 0 for s in self.shape):
            raise ValueError(f"matricized: shape must have >= 2 positive sizes, got {self.shape!r}")

    def _check(self, shape):
        if tuple(shape) != self.shape:
            raise ValueError(f"matricized: built for shape {self.shape}, asked for {tuple(shape)}")

    def init(self, key, shape, dtype=jnp.float32):
        self._check(shape)
        return self.inner.init(key, matrix_shape(self.shape), dtype)

    def from_weight(self, key, w):
        self._check(w.shape)
        return self.inner.from_weight(key, w.reshape(matrix_shape(self.shape)))

    def materialize(self, theta):
        return self.inner.materialize(theta).reshape(self.shape)

    def apply(self, theta, x):
        """``x @ W`` contracts the last axis only for 2-d ``W``; an N-d kernel is applied by its layer."""
        raise TypeError("a matricized N-d kernel has no x @ W; materialize it and apply its layer")

    def roles(self, theta):
        return self.inner.roles(theta)
