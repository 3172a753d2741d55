"""Small pure-function networks whose weights are lrjax parameterizations (row-vector convention).

- ``ParamMLP``: ``z_0 = x``, ``z_l = act(z_{l-1} W_l + b_l)`` for hidden layers, output ``z_{L-1} W_L + b_L``;
  ``W_l`` is given by ``params[l]`` (``dense()``, ``lowrank(1)``, ``dlor(1)``, ...), applied without
  forming ``W`` where cheaper. A *deep* DLoR network is an MLP with ``dlor`` hidden layers.
- ``Wide``: ``K`` parallel copies of a branch MLP, outputs summed, ``y = sum_k MLP_k(x)``; with low-rank
  branch layers this is the *additive* (width) structure. Thetas are stacked on a leading branch axis.

``x`` is ``(..., in)``; outputs ``(..., out)``. Biases start at zero.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from lrjax.param import Parameterization, from_spec

ACTIVATIONS: dict[str, Callable] = {
    "tanh": jnp.tanh, "gelu": jax.nn.gelu, "softplus": jax.nn.softplus, "sigmoid": jax.nn.sigmoid,
    "relu": jax.nn.relu, "silu": jax.nn.silu, "identity": lambda z: z,
}


def activation(name: str) -> Callable:
    """The activation function called ``name`` (see ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name]


@dataclasses.dataclass(frozen=True)
class ParamMLP:
    """``sizes = (in, h_1, ..., out)``; ``params``: one parameterization (or spec string) per layer."""

    sizes: tuple[int, ...]
    params: tuple[Parameterization, ...]
    act: str = "tanh"

    def __post_init__(self):
        object.__setattr__(self, "sizes", tuple(self.sizes))
        object.__setattr__(self, "params", tuple(from_spec(p) if isinstance(p, str) else p for p in self.params))
        if len(self.sizes) < 2 or any(not isinstance(s, int) or s <= 0 for s in self.sizes):
            raise ValueError(f"ParamMLP: sizes must be >= 2 positive ints, got {self.sizes}")
        if len(self.params) != len(self.sizes) - 1:
            raise ValueError(f"ParamMLP: {len(self.sizes) - 1} layers need as many params, got {len(self.params)}")
        activation(self.act)

    @property
    def shapes(self) -> list[tuple[int, int]]:
        return list(zip(self.sizes[:-1], self.sizes[1:]))

    def init(self, key, dtype=jnp.float32) -> list[dict]:
        keys = jax.random.split(key, len(self.params))
        return [{"w": p.init(k, s, dtype), "b": jnp.zeros((s[1],), dtype)}
                for k, p, s in zip(keys, self.params, self.shapes)]

    def apply(self, thetas, x):
        act = activation(self.act)
        for i, (p, t) in enumerate(zip(self.params, thetas)):
            x = p.apply(t["w"], x) + t["b"]
            if i < len(self.params) - 1:
                x = act(x)
        return x

    def num_params(self) -> int:
        return sum(p.num_params(s) + s[1] for p, s in zip(self.params, self.shapes))


def mlp(sizes, hidden: str | Parameterization = "dense()", act: str = "tanh",
        first: str | Parameterization | None = None, last: str | Parameterization | None = None) -> ParamMLP:
    """A ``ParamMLP`` with ``hidden`` on the hidden-to-hidden layers; ``first``/``last`` default to ``hidden``."""
    n = len(sizes) - 1
    params = [hidden] * n
    if first is not None:
        params[0] = first
    if last is not None and n > 1:
        params[-1] = last
    return ParamMLP(tuple(sizes), tuple(params), act)


@dataclasses.dataclass(frozen=True)
class Wide:
    """``y = sum_{k < count} branch_k(x)``: ``count`` independently initialised copies of ``branch``."""

    branch: ParamMLP
    count: int

    def init(self, key, dtype=jnp.float32):
        return jax.vmap(lambda k: self.branch.init(k, dtype))(jax.random.split(key, self.count))

    def apply(self, thetas, x):
        return jnp.sum(jax.vmap(self.branch.apply, in_axes=(0, None))(thetas, x), axis=0)

    def num_params(self) -> int:
        return self.count * self.branch.num_params()
