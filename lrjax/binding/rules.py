"""Bind parameterizations to any parameter tree (a Flax linen ``params`` dict, an nnx ``State``, any
pytree of arrays) without editing the model. Flax itself is not imported.

``bind(params, rules, key)`` maps every leaf to a parameterization chosen by regex rules on its path
("first match wins", ``re.fullmatch`` on ``"layer/sub/kernel"``; a leaf no rule covers is an error naming
it), and initialises its theta from the existing weight (``Parameterization.from_weight``: adapters such
as LoRA, Deep LoRA and subspace keep it as their frozen base, so the bound model equals the original at
init).

``materialize(bound)`` rebuilds a tree of the original structure, so an unmodified
``model.apply({"params": materialize(bound)}, x)`` or ``nnx.merge(graphdef, materialize(bound))`` runs it.
``Bound`` is a pytree: differentiate a loss with respect to it and feed it to optax directly;
``lrjax.binding.optim.optimizer(tx, roles(bound))`` gives frozen leaves no update and no optimizer state.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from lrjax.param import FROZEN, OUTER, TRAINABLE, Matricized, Parameterization, from_spec, frozen

PASSTHROUGH = frozen()  # what non-float leaves are bound to

Rules = Sequence[tuple[str, "str | Parameterization"]]


def path_to_str(path) -> str:
    """``(DictKey('Dense_0'), DictKey('kernel'))`` -> ``"Dense_0/kernel"`` (nnx's trailing ``value`` dropped)."""
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    if parts and parts[-1] in ("value", "raw_value"):
        parts = parts[:-1]
    return "/".join(parts)


@jax.tree_util.register_pytree_node_class
class Bound:
    """A parameter tree bound to parameterizations.

    ``theta``: dict ``path -> theta`` (the trainable pytree); ``params``: tuple of ``(path, param)`` in the
    original leaf order; ``treedef``: the original tree's structure. Only ``theta`` is traced.
    """

    def __init__(self, theta: dict[str, Any], params: tuple[tuple[str, Parameterization], ...], treedef):
        self.theta = theta
        self.params = params
        self.treedef = treedef

    def tree_flatten(self):
        return (self.theta,), (self.params, self.treedef)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0], *aux)

    def __getitem__(self, path: str):
        return self.theta[path]

    def param(self, path: str) -> Parameterization:
        return dict(self.params)[path]

    def __repr__(self):
        rows = ",\n".join(f"  {p!r}: {q!r}" for p, q in self.params)
        return f"Bound(\n{rows}\n)"


def _compile_rules(rules: Rules | dict):
    items = list(rules.items()) if isinstance(rules, dict) else list(rules)
    out = []
    for pattern, spec in items:
        try:
            out.append((pattern, re.compile(pattern), from_spec(spec)))
        except re.error as e:
            raise ValueError(f"bad regex {pattern!r} in binding rules: {e}") from None
    return out


def parse_rules(text: str) -> list[tuple[str, str]]:
    """``"regex=spec; regex=spec"`` -> ``[(regex, spec), ...]`` (split at each ``;``, then at the first
    ``=``), e.g. ``".*kernel=deep(2, scale=0.1); .*=dense()"``. Regexes and specs are checked."""
    rules = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        pattern, sep, spec = part.partition("=")
        if not sep or not pattern.strip() or not spec.strip():
            raise ValueError(f"binding rule {part!r} is not of the form regex=spec")
        rules.append((pattern.strip(), spec.strip()))
    if not rules:
        raise ValueError(f"no binding rules in {text!r}")
    _compile_rules(rules)
    return rules


def bind(params, rules: Rules | dict, key: jax.Array | int = 0) -> Bound:
    """Bind every leaf of ``params`` to the first rule whose regex fully matches its path.

    Leaves that are not floating point (an nnx RNG count or key, an integer buffer) are not matched:
    they pass through as ``frozen()``. A matrix-only family (``lora``, ``lowrank``, ``deep``, ...) on a
    kernel with more than two dimensions (a conv kernel ``(kh, kw, in, out)``) parameterizes its
    ``(kh * kw * in, out)`` matricization (``param.Matricized``)."""
    compiled = _compile_rules(rules)
    key = jax.random.key(key) if isinstance(key, int) else key
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    theta, pairs = {}, []
    for i, (path, leaf) in enumerate(leaves):
        name = path_to_str(path)
        leaf = jnp.asarray(leaf) if not isinstance(leaf, jax.Array) else leaf
        if not jnp.issubdtype(leaf.dtype, jnp.inexact):
            theta[name] = {"base": leaf}
            pairs.append((name, PASSTHROUGH))
            continue
        match = next((p for _, rx, p in compiled if rx.fullmatch(name)), None)
        if match is None:
            raise ValueError(f"no binding rule covers parameter {name!r} (shape {jnp.shape(leaf)}); "
                             f"rules: {[r for r, _, _ in compiled]}. Add e.g. ('.*', 'frozen()') to keep "
                             "the remaining leaves fixed, or ('.*', 'dense()') to train them")
        if leaf.ndim > 2 and not match.any_shape:
            match = Matricized(match, tuple(leaf.shape))
        try:
            theta[name] = match.from_weight(jax.random.fold_in(key, i), leaf)
        except ValueError as e:
            raise ValueError(f"cannot bind {name!r} (shape {jnp.shape(leaf)}): {e}") from None
        built = jax.eval_shape(match.materialize, theta[name])  # shapes only: a family's bug shows here, not later
        if built.shape != leaf.shape:
            raise ValueError(f"cannot bind {name!r} (shape {tuple(leaf.shape)}): {match!r} materializes a "
                             f"{tuple(built.shape)} weight from its init")
        pairs.append((name, match))
    return Bound(theta, tuple(pairs), treedef)


def materialize(bound: Bound):
    """The weights ``W`` of every leaf, in a tree of the original structure (linen dict or nnx State)."""
    leaves = [p.materialize(bound.theta[name]) for name, p in bound.params]
    return bound.treedef.unflatten(leaves)


def roles(bound: Bound) -> Bound:
    """A ``Bound`` of the same structure whose leaves are role strings (optax labels)."""
    return Bound({name: p.roles(bound.theta[name]) for name, p in bound.params}, bound.params, bound.treedef)


def count_params(bound: Bound) -> dict[str, int]:
    """Scalars per role, e.g. ``{"trainable": 1234, "frozen": 50000, "outer": 0}``."""
    out = {TRAINABLE: 0, FROZEN: 0, OUTER: 0}
    for leaf, role in zip(jax.tree.leaves(bound), jax.tree.leaves(roles(bound))):
        out[role] += leaf.size
    return out
