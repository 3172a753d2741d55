"""Declared config schemas: the type and range of every key an experiment reads, checked before any work.

Each experiment module declares ``SCHEMA = Schema(fields..., checks=...)``; ``lrjax run`` validates the
config (after ``--set`` overrides) against it before anything runs or is written, and every violation is
a ``ConfigError`` whose one-line message names the key and the bad value. A new experiment gets this by
declaring its schema::

    SCHEMA = Schema(
        d=Int(min=1), eta=Float(gt=0), dtype=Choice("float32", "float64"), param=Spec(shape=lambda c: (c.d, c.d)),
        steps=Int(min=1, resume="grow"), tol=Float(gt=0, optional=True, resume="any"),
        checks=[Rule(("record_every", "steps"), lambda r, s: r <= s, "record_every must be <= steps")],
    )

``resume`` says whether a key may change when a run continues in the same work directory: ``"same"``
(default: it changes the trajectory), ``"grow"`` (may only increase, e.g. ``steps``) or ``"any"``
(cannot affect the trajectory: a stopping tolerance, a timing budget, a checkpoint cadence).
Bools are never accepted as numbers, floats must be finite, ints stay ints.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from lrjax.io.files import first_line

RESUME_POLICIES = ("same", "grow", "any")


class ConfigError(ValueError):
    """A bad config, config value, argument or work directory: reported in one line, exit code 2."""


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Field:
    """A config value's type and range. ``check(value, config)`` returns the value or raises ValueError
    with a message that completes "config key 'k' ..."; subclasses define ``describe()`` and
    ``accepts(value, config)`` (or ``validate`` for messages of their own)."""

    optional: bool = False
    resume: str = "same"

    def check(self, value, config):
        if value is None and self.optional:
            return None
        return self.validate(value, config)

    def validate(self, value, config):
        if not self.accepts(value, config):
            raise ValueError(f"must be {self.describe()}, got {value!r}")
        return value

    def accepts(self, value, config) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


def _bounds(lo, lo_open, hi, hi_open) -> str:
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi:g}")
    return " and ".join(parts)


@dataclasses.dataclass(frozen=True)
class Int(Field):
    """An int (not a bool) in ``[min, max]``."""

    min: int | None = None
    max: int | None = None

    def describe(self):
        b = _bounds(self.min, False, self.max, False)
        return "an integer" + (f" {b}" if b else "")

    def accepts(self, value, config):
        return not (isinstance(value, bool) or not isinstance(value, int) or
                    (self.min is not None and value < self.min) or (self.max is not None and value > self.max))


@dataclasses.dataclass(frozen=True)
class Float(Field):
    """A finite number (ints accepted, bools not) with optional bounds ``gt``/``ge``/``lt``/``le``."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def describe(self):
        lo, lo_open = (self.gt, True) if self.gt is not None else (self.ge, False)
        hi, hi_open = (self.lt, True) if self.lt is not None else (self.le, False)
        b = _bounds(lo, lo_open, hi, hi_open)
        return "a finite number" + (f" {b}" if b else "")

    def accepts(self, value, config):
        return _number(value) and math.isfinite(value) and not (
            (self.gt is not None and value <= self.gt) or (self.ge is not None and value < self.ge)
            or (self.lt is not None and value >= self.lt) or (self.le is not None and value > self.le))

    def validate(self, value, config):
        return float(super().validate(value, config))


@dataclasses.dataclass(frozen=True)
class Str(Field):
    """A non-empty string (what it must contain is checked by a ``Rule`` or ``Spec``)."""

    def describe(self):
        return "a non-empty string"

    def accepts(self, value, config):
        return isinstance(value, str) and bool(value.strip())


@dataclasses.dataclass(frozen=True)
class Bool(Field):
    """``True`` or ``False`` (never ``0``/``1`` or a string)."""

    def describe(self):
        return "True or False"

    def accepts(self, value, config):
        return isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class _Positional(Field):
    """A field given by positional values: the allowed options, or the alternative fields."""

    options: tuple = ()

    def __init__(self, *options, optional: bool = False, resume: str = "same"):
        object.__setattr__(self, "options", tuple(options))
        object.__setattr__(self, "optional", optional)
        object.__setattr__(self, "resume", resume)


class Choice(_Positional):
    """One of ``options``: ``Choice("float32", "float64")``."""

    def describe(self):
        return "one of " + ", ".join(repr(o) for o in self.options)

    def accepts(self, value, config):
        return not isinstance(value, bool) and value in self.options


class Names(_Positional):
    """A comma-separated string of names from ``options`` (e.g. ``"original,compressed"``), at least one."""

    def describe(self):
        return "a comma-separated list of distinct names from " + ", ".join(self.options)

    @staticmethod
    def split(value: str) -> list[str]:
        """The names of a comma-separated string, stripped, empty ones dropped."""
        return [n.strip() for n in value.split(",") if n.strip()]

    def accepts(self, value, config):
        names = self.split(value) if isinstance(value, str) else None
        return bool(names) and all(n in self.options for n in names) and len(set(names)) == len(names)


class Either(_Positional):
    """The first of the fields given that accepts the value: ``Either(Float(gt=0), Seq(Float(gt=0)))``."""

    def describe(self):
        return " or ".join(f.describe() for f in self.options)

    def validate(self, value, config):
        errors = []
        for f in self.options:
            try:
                return f.check(value, config)
            except ValueError as e:
                errors.append(str(e))
        specific = [e for e in errors if not e.startswith("must be ")]  # the type fitted, the content did not
        raise ValueError(specific[0] if specific else f"must be {self.describe()}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Seq(Field):
    """A tuple (or list) of ``min_len``.. ``max_len`` items, each checked by ``item``; ``length(config)``
    may require an exact length (e.g. one eps per layer)."""

    item: Field = dataclasses.field(default_factory=Float)
    min_len: int = 1
    max_len: int | None = None
    length: Callable[[Any], int] | None = None
    distinct: bool = False

    def describe(self):
        return f"a tuple whose entries are each {self.item.describe()}"

    def validate(self, value, config):
        if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
            raise ValueError(f"must be {self.describe()}, got {value!r}")
        want = self.length(config) if self.length is not None else None
        if want is not None and len(value) != want:
            raise ValueError(f"must have {want} entries, got {len(value)}: {value!r}")
        if len(value) < self.min_len:
            raise ValueError(f"must have at least {self.min_len} entries, got {value!r}")
        if self.max_len is not None and len(value) > self.max_len:
            raise ValueError(f"must have at most {self.max_len} entries, got {value!r}")
        if self.distinct and len(set(value)) != len(value):
            raise ValueError(f"must not repeat an entry, got {value!r}")
        out = []
        for i, v in enumerate(value):
            try:
                out.append(self.item.check(v, config))
            except ValueError as e:
                raise ValueError(f"entry {i}: {e}") from None
        return tuple(out)


def available_memory_bytes() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (``None`` where there is no such file)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclasses.dataclass(frozen=True)
class Spec(Field):
    """A parameterization spec string (``"lowrank(4)"``); with ``shape(config) -> shape`` it is also
    initialised abstractly (``jax.eval_shape``, no arrays made) so a rank larger than the matrix fails here."""

    shape: Callable[[Any], tuple] | None = None

    def describe(self):
        return "a parameterization spec"

    def validate(self, value, config):
        import jax
        import jax.numpy as jnp

        from lrjax.param import available, from_spec

        if not isinstance(value, str):
            raise ValueError(f"must be a parameterization spec string, got {value!r}")
        try:
            p = from_spec(value)
            if self.shape is not None:
                shape = tuple(self.shape(config))
                theta = jax.eval_shape(lambda: p.init(jax.random.key(0), shape, jnp.float32))
                need = sum(math.prod(x.shape) * 4 for x in jax.tree.leaves(theta))
                have = available_memory_bytes()
                if have is not None and need > have:
                    raise ValueError(f"for shape {shape} its parameters alone need {need / 2 ** 30:,.1f} GiB (float32); "
                                     f"this machine has {have / 2 ** 30:,.1f} GiB available")
        except (ValueError, TypeError) as e:
            family = value.split("(", 1)[0].strip()
            hint = "" if family in available() else " (a family of your own? --import the module that registers it)"
            raise ValueError(f"= {value!r}: {first_line(e, with_type=False)}{hint}") from None
        return value


@dataclasses.dataclass(frozen=True)
class Rule:
    """A constraint across keys: ``test(*values)`` must hold; ``message`` says what it requires. A test
    may instead raise ``ValueError`` or ``OSError`` (e.g. a dataset that is not installed) whose message
    is reported."""

    keys: tuple[str, ...]
    test: Callable[..., bool]
    message: str


class Schema:
    """The fields of an experiment's config (every key but ``experiment``) and its cross-key rules."""

    def __init__(self, checks: Sequence[Rule] = (), **fields: Field):
        for name, f in fields.items():
            if not isinstance(f, Field):
                raise TypeError(f"schema field {name!r} must be a Field, got {f!r}")
            if f.resume not in RESUME_POLICIES:
                raise ValueError(f"schema field {name!r}: resume must be one of {RESUME_POLICIES}, got {f.resume!r}")
        self.fields: dict[str, Field] = dict(fields)
        self.checks = tuple(checks)

    def validate(self, config) -> None:
        """Raise ``ConfigError`` (one line, naming the key and value) unless ``config`` fits the schema;
        write the normalised values back (ints given for floats become floats, lists tuples)."""
        keys = set(config.keys()) - {"experiment"}
        missing, extra = sorted(set(self.fields) - keys), sorted(keys - set(self.fields))
        if extra:
            raise ConfigError(f"config key {extra[0]!r} is not one this experiment reads; valid keys: "
                              f"{', '.join(sorted(self.fields))}")
        if missing:
            raise ConfigError(f"config is missing key {missing[0]!r}")
        for name, f in self.fields.items():
            try:
                value = f.check(config[name], config)
            except ValueError as e:
                raise ConfigError(f"config key {name!r} {e}") from None
            if type(value) is not type(config[name]) or value != config[name]:
                del config[name]
                config[name] = value
        for rule in self.checks:
            values = [config[k] for k in rule.keys]
            shown = ", ".join(f"{k}={v!r}" for k, v in zip(rule.keys, values))
            try:
                ok = rule.test(*values)
            except (ValueError, OSError) as e:
                raise ConfigError(f"config keys {shown}: {first_line(e, with_type=False)}") from None
            if not ok:
                raise ConfigError(f"config keys {shown}: {rule.message}")

    def fixed(self, config) -> dict:
        """The keys that change the trajectory (resume policy ``"same"``) and their values: a run
        identity: the run context hands it to every checkpoint (``RunContext.checkpoints``)."""
        return {k: config[k] for k, f in self.fields.items() if f.resume == "same"}

    def resume_changes(self, old: Mapping, new: Mapping) -> tuple[list[str], list[str]]:
        """``(refused, allowed)``: the keys (as ``"k: a -> b"``) that differ between a stored run's config
        and this one, split by their resume policy."""
        refused, allowed = [], []
        for key in sorted(set(old) | set(new)):
            a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
            if a == b:
                continue
            f = self.fields.get(key)
            policy = f.resume if f is not None else "same"
            ok = policy == "any" or (policy == "grow" and _number(a) and _number(b) and b >= a)
            (allowed if ok else refused).append(f"{key}: {a!r} -> {b!r}")
        return refused, allowed


def data_checks():
    """The schema rules every experiment training on ``lrjax.data`` needs: keys ``dataset``,
    ``train_size``, ``batch_size``, ``eval_every``, ``steps``."""
    from lrjax import data
    return [Rule(("eval_every", "steps"), lambda e, s: e <= s, "eval_every must be <= steps"),
            Rule(("dataset",), lambda d: bool(data.locate(d)), "the dataset must be installed"),
            Rule(("train_size", "dataset"), lambda n, d: n <= data.TRAIN_SIZES[d],
                 "train_size must be <= the dataset's training split (0: all of it)"),
            Rule(("batch_size", "train_size", "dataset"), lambda b, n, d: b <= (n or data.TRAIN_SIZES[d]),
                 "batch_size must be <= the number of training examples")]
