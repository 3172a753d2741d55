"""Spec strings for parameterizations, so configs can name them: ``from_spec("lowrank(rank=4)")``.

A spec is a Python call expression: ``name``, ``name(args)``, with literal arguments (numbers, strings,
tuples, None, booleans) or nested specs (``"plus(frozen(), lowrank(2))"``). It is parsed with ``ast``,
never evaluated. Extend the registry with your own family::

    @register("kron")
    @dataclasses.dataclass(frozen=True)
    class Kron(Parameterization): ...

(``register`` takes any callable returning a Parameterization: a class or a factory function.)
"""
from __future__ import annotations

import ast
from typing import Callable

from lrjax.param.base import Parameterization

_REGISTRY: dict[str, Callable[..., Parameterization]] = {}


def register(name: str, factory: Callable[..., Parameterization] | None = None, *, overwrite: bool = False):
    """Register ``factory`` under ``name``; usable as ``register(name, f)`` or as a decorator."""
    if not name.isidentifier():
        raise ValueError(f"register: name must be an identifier, got {name!r}")

    def add(f):
        if name in _REGISTRY and not overwrite and _REGISTRY[name] is not f:
            raise ValueError(f"register: {name!r} is already registered (pass overwrite=True to replace it)")
        _REGISTRY[name] = f
        return f

    return add if factory is None else add(factory)


def available() -> list[str]:
    """Sorted registered names."""
    return sorted(_REGISTRY)


def _evaluate(node: ast.AST, spec: str, lookup=None):
    lookup = lookup or _lookup
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        factory = lookup(node.func.id, spec)
        args = [_evaluate(a, spec, lookup) for a in node.args]
        names = [k.arg for k in node.keywords]
        if None in names or len(set(names)) != len(names):
            raise ValueError(f"repeated or ** keyword arguments in parameterization spec {spec!r}")
        kwargs = {k.arg: _evaluate(k.value, spec, lookup) for k in node.keywords}
        try:
            return factory(*args, **kwargs)
        except TypeError as e:
            raise ValueError(f"bad arguments in parameterization spec {spec!r}: {e}") from None
    if isinstance(node, ast.Name):
        return lookup(node.id, spec)()
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_evaluate(e, spec, lookup) for e in node.elts)
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ValueError(f"unsupported expression {ast.unparse(node)!r} in parameterization spec {spec!r}") from None


def _lookup(name: str, spec: str):
    if name not in _REGISTRY:
        raise ValueError(f"unknown parameterization {name!r} in spec {spec!r}; available: {', '.join(available())}")
    return _REGISTRY[name]


def from_spec(spec: str | Parameterization) -> Parameterization:
    """Parse a spec string (a Parameterization passes through unchanged)."""
    if isinstance(spec, Parameterization):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"from_spec expects a string or a Parameterization, got {spec!r}")
    try:
        tree = ast.parse(spec.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"cannot parse parameterization spec {spec!r}") from None
    out = _evaluate(tree.body, spec)
    if not isinstance(out, Parameterization):
        raise ValueError(f"spec {spec!r} does not name a parameterization")
    return out


def _classes(cls=Parameterization) -> dict[str, type]:
    out = {}
    for sub in cls.__subclasses__():
        out[sub.__name__] = sub
        out.update(_classes(sub))
    return out


def from_repr(text: str) -> Parameterization:
    """The parameterization whose dataclass ``repr`` is ``text`` (e.g. ``"LoRA(rank=2, alpha=None,
    rslora=False)"``): how adapter files store what each leaf was bound to. Parsed, never evaluated;
    classes are the imported ``Parameterization`` subclasses (import a user's family first)."""
    classes = _classes()

    def lookup(name, spec):
        if name not in classes:
            raise ValueError(f"unknown parameterization class {name!r} in {spec!r} (import the module defining it)")
        return classes[name]

    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"cannot parse parameterization {text!r}") from None
    out = _evaluate(tree.body, text, lookup)
    if not isinstance(out, Parameterization):
        raise ValueError(f"{text!r} does not describe a parameterization")
    return out
