"""The Parameterization type: a weight matrix written as a pure function of a parameter tree.

A parameterization is a small immutable value whose dataclass fields are its hyper-parameters
(rank, depth, eps, ...). Equal hyper-parameters give equal, hashable values, so a rebuilt but
identical parameterization never makes `jax.jit` recompile. Its methods are pure:

- ``init(key, shape, dtype) -> theta``: a dict pytree with meaningful keys (``u``, ``v``, ``d``,
  ``factors``, ``base``, ``terms``);
- ``materialize(theta) -> W`` of ``shape`` (convention ``y = x @ W``, so ``W`` is ``(in, out)`` like a
  Flax ``kernel``);
- ``apply(theta, x) -> x @ W``, computed without forming ``W`` where that is cheaper;
- ``roles(theta)``: a tree of the same structure naming each leaf's role: ``"trainable"``,
  ``"frozen"`` (no gradient, no optimizer state) or ``"outer"`` (trained with a discrepant learning
  rate ``gamma * lr``, as the outer factors of a compressed deep factorization);
- ``num_params(shape)``: number of non-frozen scalars.

``Adapter`` is the building block of every "frozen base plus trained update" family (LoRA, Deep LoRA,
subspace): ``W = stop_gradient(base) + delta``, ``base`` kept from the weight it adapts.

This module imports neither Flax nor optax.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

TRAINABLE = "trainable"
FROZEN = "frozen"
OUTER = "outer"
ROLES = (TRAINABLE, FROZEN, OUTER)

Theta = Any  # a dict pytree of arrays
Shape = tuple[int, ...]


def check_positive_int(name: str, value: Any) -> None:
    """Raise ValueError unless ``value`` is a positive int (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_finite(name: str, value: Any) -> None:
    """Raise ValueError unless ``value`` is a finite real number (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")


def check_matrix_shape(family: str, shape: Shape) -> tuple[int, int]:
    """Return ``(m, n)`` or raise ValueError if ``shape`` is not a 2-d shape of positive sizes."""
    shape = tuple(shape)
    if len(shape) != 2 or any(not isinstance(s, int) or s <= 0 for s in shape):
        raise ValueError(f"{family} parameterizes a matrix: shape must be (in, out) of positive ints, "
                         f"got {shape!r}")
    return shape


def check_rank(family: str, rank: int, shape: Shape) -> None:
    """Raise ValueError if ``rank > min(shape)``."""
    if rank > min(shape):
        raise ValueError(f"{family}: rank={rank} exceeds min(shape)={min(shape)} for shape {tuple(shape)}")


def gaussian(key, shape: Shape, dtype, std: float) -> jax.Array:
    """``N(0, std^2)`` entries of ``shape`` in ``dtype``."""
    return std * jax.random.normal(key, shape, dtype)


def partition(theta, role_tree):
    """Split ``theta`` into ``(not_frozen, frozen)`` trees with ``None`` in the other's places."""
    keep = jax.tree.map(lambda t, r: None if r == FROZEN else t, theta, role_tree)
    frozen = jax.tree.map(lambda t, r: t if r == FROZEN else None, theta, role_tree)
    return keep, frozen


def combine(a, b):
    """Inverse of ``partition``: take each leaf from whichever tree is not ``None`` there."""
    return jax.tree.map(lambda x, y: y if x is None else x, a, b, is_leaf=lambda x: x is None)


@dataclasses.dataclass(frozen=True)
class Parameterization:
    """Base type. Subclasses are frozen dataclasses and override ``init`` and ``materialize``.

    ``any_shape``: the family takes weights of any shape (dense, frozen, subspace); the others
    parameterize matrices and ``lrjax.binding.bind`` matricizes N-d kernels for them (``Matricized``).
    """

    any_shape: ClassVar[bool] = False

    def init(self, key: jax.Array, shape: Shape, dtype=jnp.float32) -> Theta:
        raise NotImplementedError

    def materialize(self, theta: Theta) -> jax.Array:
        raise NotImplementedError

    def apply(self, theta: Theta, x: jax.Array) -> jax.Array:
        """``x @ W`` for ``x`` of shape ``(..., in)``; subclasses avoid forming ``W`` where cheaper."""
        return x @ self.materialize(theta)

    def roles(self, theta: Theta) -> Any:
        """Role of every leaf of ``theta`` (same tree structure): all trainable by default."""
        return jax.tree.map(lambda _: TRAINABLE, theta)

    def from_weight(self, key: jax.Array, w: jax.Array) -> Theta:
        """Theta that adapts an existing weight ``w``: adapters keep ``w`` as their frozen base;
        ``dense``/``frozen`` keep ``w`` itself; every other family initialises afresh with w's shape."""
        return self.init(key, tuple(w.shape), w.dtype)

    def num_params(self, shape: Shape) -> int:
        """Number of non-frozen scalars of a theta for ``shape`` (computed without allocating)."""
        theta = jax.eval_shape(lambda: self.init(jax.random.key(0), tuple(shape), jnp.float32))
        leaves = jax.tree.leaves(theta)
        roles = jax.tree.leaves(self.roles(theta))
        return sum(math.prod(l.shape) for l, r in zip(leaves, roles) if r != FROZEN)


@dataclasses.dataclass(frozen=True)
class Adapter(Parameterization):
    """``W = stop_gradient(base) + delta(theta)``; theta ``{"base": W0 (frozen), **delta leaves}``.

    Subclasses define the update: ``init_delta(key, shape, dtype) -> dict`` (its leaves, without
    ``base``), ``delta(theta) -> (m, n)``, and optionally ``apply_delta(theta, x)`` (default
    ``x @ delta(theta)``) and ``delta_roles(theta)`` (default: all trainable). ``theta`` passed to these
    hooks includes ``base`` (for its shape); gradients never reach it. ``from_weight`` keeps the adapted
    weight as ``base``, so a bound model equals the original wherever the update starts at zero.
    """

    def init_delta(self, key: jax.Array, shape: Shape, dtype) -> dict:
        raise NotImplementedError

    def delta(self, theta: Theta) -> jax.Array:
        raise NotImplementedError

    def apply_delta(self, theta: Theta, x: jax.Array) -> jax.Array:
        return x @ self.delta(theta)

    def delta_roles(self, theta: Theta) -> dict:
        return {k: jax.tree.map(lambda _: TRAINABLE, v) for k, v in theta.items() if k != "base"}

    def init(self, key, shape, dtype=jnp.float32):
        return self.from_weight(key, jnp.zeros(tuple(shape), dtype))

    def from_weight(self, key, w):
        w = jnp.asarray(w)
        return {"base": w, **self.init_delta(key, tuple(w.shape), w.dtype)}

    def materialize(self, theta):
        return jax.lax.stop_gradient(theta["base"]) + self.delta(theta)

    def apply(self, theta, x):
        return x @ jax.lax.stop_gradient(theta["base"]) + self.apply_delta(theta, x)

    def roles(self, theta):
        return {"base": FROZEN, **self.delta_roles(theta)}
