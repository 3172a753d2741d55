"""Intrinsic dimension: train a whole network in one random subspace of its parameters (Li et al. 2018,
arXiv 1804.08838), and locate ``d_int90``.

``GlobalSubspace(dim, projection)``: all ``D`` floating-point parameters of a tree (any Flax ``params`` dict
or nnx ``State``) move together, ``theta = theta_0 + P z`` with ``z: (dim,)`` zero at init (so the model
equals ``theta_0`` exactly), ``theta_0`` frozen and ``P: (D, dim)`` a ``param.projection.Projection``
drawn from a key kept in the state. With ``cache`` (the default for ``sparse`` and ``fastfood``) the state
keeps the projection's random structure as frozen leaves (checkpointed with it): ``O(d sqrt(D))`` scalars
for ``sparse`` (its nonzeros), ``3 nb n ~ 3 D`` for ``fastfood`` (permutations, their inverses, gains), never
the ``D x d`` matrix; without it (the default for ``dense``, whose structure is ``P`` itself) only the key is
kept and the structure is drawn again at every step (Fastfood: ~10x slower per step on CPU). ``said=True`` is Aghajanyan et al.'s SAID (arXiv
2012.13255): one learned scale per parameter tensor, ``theta_i = theta_0,i + lambda_i (P z)_i``, with
``lambda`` (one per tensor, ``m`` of them, starting at 1) taking ``m`` of the ``dim`` trained scalars
(``z`` has ``dim - m``): Aghajanyan et al.'s ``theta_i = theta_0,i + lambda_i P(theta^(d-m))_i`` with
``P(.)_i`` tensor ``i``'s rows of the one projection. ``normalize``: ``"global"`` (default) keeps ``P`` as
drawn, every column of norm ~1 over all ``D`` rows (Li et al.), so tensor ``i``'s slice has column norm
``~sqrt(D_i / D)``; ``"tensor"`` scales tensor ``i``'s slice by ``sqrt(D / D_i)``, so that every tensor's
slice has columns of norm ~1, as when each tensor draws its own Fastfood of its size ``D_i`` (the code
credited to Aghajanyan et al. and copied in public repositories: one ``FastfoodTransform`` per named
parameter, all fed the same ``z``): a bias, a LayerNorm or a small head then moves as much per unit of
``z`` as a whole embedding table. The per-layer form (each weight its own ``z``) is ``param.subspace``.

It is a drop-in for a rule binding in ``lrjax.studies.classification.train``: ``init(params, key)``,
``materialize(state) -> params``, ``roles(state)``.

``d_int90`` is the smallest ``d`` whose accuracy reaches 90% of direct training's; ``next_dim`` gives the
bisection step between a failing and a passing ``d`` after a coarse sweep.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from lrjax.param import FROZEN, TRAINABLE
from lrjax.param.base import check_positive_int
from lrjax.param.projection import KINDS, Projection

NORMALIZE = ("global", "tensor")


def _float_leaves(tree):
    return [l for l in jax.tree.leaves(tree) if jnp.issubdtype(l.dtype if hasattr(l, "dtype") else
                                                                jnp.asarray(l).dtype, jnp.inexact)]


def num_float_params(tree) -> int:
    """``D``: the number of floating-point scalars of a parameter tree (works on abstract shapes)."""
    return sum(math.prod(l.shape) for l in _float_leaves(tree))


@dataclasses.dataclass(frozen=True)
class GlobalSubspace:
    """``theta = theta_0 + P z`` over a whole tree; state ``{"z", "base", "key"[, "structure"][, "said"]}``;
    ``normalize``: ``"global"`` or ``"tensor"`` (module docstring)."""

    dim: int
    projection: str = "fastfood"
    said: bool = False
    cache: bool | None = None
    normalize: str = "global"

    def __post_init__(self):
        check_positive_int("intrinsic dimension: dim", self.dim)
        if self.projection not in KINDS:
            raise ValueError(f"projection must be one of {KINDS}, got {self.projection!r}")
        if self.normalize not in NORMALIZE:
            raise ValueError(f"intrinsic dimension: normalize must be one of {NORMALIZE}, got {self.normalize!r}")
        if self.cache is None:
            object.__setattr__(self, "cache", self.projection != "dense")
        for name in ("said", "cache"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"intrinsic dimension: {name} must be True or False, got {getattr(self, name)!r}")

    def z_dim(self, params) -> int:
        """Length of ``z``: ``dim``, less one per tensor with SAID."""
        m = len(_float_leaves(params)) if self.said else 0
        if self.dim <= m:
            raise ValueError(f"SAID needs dim > the number of parameter tensors ({m}), got dim={self.dim}")
        return self.dim - m

    def project(self, params) -> Projection:
        return Projection(num_float_params(params), self.z_dim(params), self.projection)

    def init(self, params, key: jax.Array | int = 0) -> dict:
        """State for ``params`` (kept as the frozen ``theta_0``); ``key`` draws ``P``."""
        key = jax.random.key(int(key)) if isinstance(key, (int, np.integer)) else key
        leaves = _float_leaves(params)
        if not leaves:
            raise ValueError("a global subspace needs a parameter tree with floating-point leaves")
        if self.dim > num_float_params(params):
            raise ValueError(f"intrinsic dimension: dim={self.dim} exceeds the number of parameters "
                             f"D={num_float_params(params)}")
        dtype = jnp.result_type(*leaves)
        state = {"z": jnp.zeros((self.z_dim(params),), dtype), "base": params,
                 "key": jax.random.key_data(key)}
        if self.cache:
            state["structure"] = self.project(params).structure(key, dtype)
        if self.said:
            state["said"] = jnp.ones((len(leaves),), dtype)
        return state

    def materialize(self, state: dict):
        """The parameter tree ``theta_0 + P z`` (SAID: tensor ``i`` scaled by ``lambda_i``)."""
        base = state["base"]
        proj = self.project(base)
        structure = (state["structure"] if self.cache else
                     proj.structure(jax.random.wrap_key_data(state["key"]), state["z"].dtype))
        flat = proj.project(jax.lax.stop_gradient(structure), state["z"])
        leaves, treedef = jax.tree.flatten(base)
        out, offset, i = [], 0, 0
        for leaf in leaves:
            if not jnp.issubdtype(leaf.dtype, jnp.inexact):
                out.append(leaf)
                continue
            delta = flat[offset: offset + leaf.size].reshape(leaf.shape).astype(leaf.dtype)
            if self.normalize == "tensor":
                delta = delta * math.sqrt(proj.size / leaf.size)
            if self.said:
                delta = state["said"][i] * delta
            out.append(jax.lax.stop_gradient(leaf) + delta)
            offset, i = offset + leaf.size, i + 1
        return treedef.unflatten(out)

    def roles(self, state: dict) -> dict:
        roles = {"z": TRAINABLE, "key": FROZEN,
                 **{k: jax.tree.map(lambda _: FROZEN, state[k]) for k in ("base", "structure") if k in state}}
        if self.said:
            roles["said"] = TRAINABLE
        return roles


def d_int90(accuracy_by_dim: dict, baseline: float, fraction: float = 0.9) -> int | None:
    """The smallest ``d`` whose accuracy is ``>= fraction * baseline`` (``None``: none reaches it)."""
    passing = [d for d, a in accuracy_by_dim.items() if a >= fraction * baseline]
    return min(passing) if passing else None


def next_dim(accuracy_by_dim: dict, baseline: float, fraction: float = 0.9) -> int | None:
    """The next ``d`` to try in the bisection: the midpoint (geometric, rounded) between the largest failing
    ``d`` below ``d_int90`` and ``d_int90``; ``None`` when they are adjacent integers or nothing passes or
    nothing below fails."""
    best = d_int90(accuracy_by_dim, baseline, fraction)
    if best is None:
        return None
    below = [d for d, a in accuracy_by_dim.items() if d < best]
    if not below:
        return None
    lo = max(below)
    mid = int(round(math.sqrt(lo * best)))
    mid = min(max(mid, lo + 1), best - 1)
    return mid if lo < mid < best else None
