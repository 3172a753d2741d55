"""The compiled gradient-descent runner: ``jit(lax.scan)`` chunks, seed batches, devices, checkpoints.

``Runner(loss_fn, tx, ...)`` is one compiled program: what a step does (loss, optimizer, per-step
``metrics``) and what is recorded every ``record_every`` steps (``recorders``). ``Runner.run(params,
steps, ...)`` runs it from an initial state: ``steps`` optimizer steps as compiled chunks of
``chunk_size`` steps with no host round-trip inside a chunk. ``run(...)`` does both in one call.

Per step it records the loss (and ``metrics``) at the parameters *before* the step; every
``record_every`` steps it records ``recorders``, and once more on the final parameters. A recorder is a
pure function of the parameters (e.g. spectra), a ``with_data(fn)`` function ``fn(params, data)`` (e.g. a
test error), or a stateful tracker (``init(params) -> state``, ``update(state, params) -> (state,
value)``, e.g. warm-started top-k subspace iteration) whose state rides in the compiled loop's carry and
in checkpoints. Between chunks it checks the tolerance and for NaN/inf, updates the progress bar and
checkpoints.

Compilation is explicit: a ``Runner`` owns its compiled programs (compiled ahead of time with
``jax.jit(...).lower(...).compile()`` on first use or by ``Runner.compile``); ``Result.compile_time`` and
``Result.wall_time`` (execution only) are reported apart. Nothing is cached between runners, so a
runner's programs, and the data its closures hold, are freed with it.

With ``batched=True`` every leaf of ``params`` (and of ``opt_state`` and ``data`` when given) carries a
leading axis of seeds or hyper-parameters, run as one ``vmap``-ed program. That axis is sharded across the
local devices (``NamedSharding``: members never communicate, so each device runs its slice). On several
hosts, call ``jax.distributed.initialize()`` first and build the batch as a global array
(``jax.make_array_from_process_local_data``) over a mesh of ``jax.devices()``: the same program runs
unchanged, each host holding its slice; this path is documented, not tested here.

Resuming. With ``workdir`` the run checkpoints under ``workdir/checkpoints`` (verified with checksums,
see ``checkpoint``) and holds that directory's lock. A re-run with the same ``workdir`` resumes, bit-
identical to an uninterrupted run, only if it is the same run: its fingerprint (the initial state's and
the data's structure and SHA-256, ``chunk_size``, ``record_every``, the recorder and metric names, and the
caller's ``fingerprint`` mapping, e.g. hyper-parameters hidden in ``tx``) must equal the stored one,
otherwise ``ResumeError`` names what differs. ``steps`` and ``tol`` are not part of it: a longer run
continues where the shorter one stopped (a shorter one than the checkpoint is refused).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lrjax.dynamics import minibatch
from lrjax.io.checkpoint import Checkpointer, host_array
from lrjax.io.files import to_jsonable, write_json


@dataclasses.dataclass(frozen=True)
class WithData:
    """A stateless recorder ``fn(params, data)`` that also sees the run's data (e.g. a test error
    evaluated every ``record_every`` steps instead of every step). Build it with ``with_data(fn)``."""

    fn: Callable


def with_data(fn: Callable) -> WithData:
    return WithData(fn)


def is_tracker(recorder) -> bool:
    """A stateful recorder has ``init`` and ``update`` methods; a plain callable is stateless."""
    return hasattr(recorder, "init") and hasattr(recorder, "update")


def init_trackers(recorders, params) -> dict:
    """Initial states of the stateful recorders (``()`` entries for plain functions)."""
    return {k: (r.init(params) if is_tracker(r) else ()) for k, r in recorders}


def record(recorders, states, params, data=None):
    """``(new_states, values)``: every recorder evaluated on ``params``; a recorder returning a dict
    ``{"a": x}`` under name ``k`` gives the key ``"k/a"``."""
    new_states, values = {}, {}
    for k, r in recorders:
        if is_tracker(r):
            new_states[k], value = r.update(states[k], params)
        elif isinstance(r, WithData):
            new_states[k], value = (), r.fn(params, data)
        else:
            new_states[k], value = (), r(params)
        if isinstance(value, dict):  # flatten {"top": ..} into "name/top"
            values.update({f"{k}/{sub}": v for sub, v in value.items()})
        else:
            values[k] = value
    return new_states, values


class DivergenceError(FloatingPointError):
    """The loss became NaN or inf. ``params``/``opt_state`` hold the last finite state: the start of the
    chunk in which it happened (step ``start``); ``checkpoint`` is the directory holding it, if any."""

    def __init__(self, step: int, last_finite_loss: float, params, opt_state, member: int | None = None,
                 start: int | None = None, checkpoint: str | None = None):
        where = f" (batch member {member})" if member is not None else ""
        kept = "kept in this exception" + (f" and in the checkpoint at step {start} under {checkpoint}"
                                           if checkpoint else " (no work directory: not saved)")
        last = f"last finite loss {last_finite_loss:.6g}" if np.isfinite(last_finite_loss) else \
            "no finite loss was recorded"
        super().__init__(f"loss diverged to a non-finite value at step {step}{where}; {last}. The last finite "
                         f"state (step {start}, the start of that chunk) is {kept}")
        self.step, self.last_finite_loss, self.member = step, last_finite_loss, member
        self.params, self.opt_state, self.start, self.checkpoint = params, opt_state, start, checkpoint


class ResumeError(ValueError):
    """The checkpoints in a work directory belong to a different run (or to a longer one)."""


@dataclasses.dataclass
class Result:
    """What a run returns. Batched runs put the batch axis first in every array.

    ``scalars``: per-step arrays ``(steps,)``: ``loss`` and each metric.
    ``records``: ``step`` ``(T,)`` (multiples of ``record_every``, then the final step) and each
    recorder's output stacked ``(T, ...)``.
    ``steps_to_tol``: first step whose loss is ``<= tol`` (``-1`` if never; ``None`` without ``tol``).
    ``diverged``: whether the loss went non-finite (per member when batched; only with
    ``on_divergence="continue"`` can it be true in a returned result).
    ``wall_time``: seconds spent running steps in this process (checkpoint saves included, compilation
    excluded); ``compile_time``: seconds spent compiling; ``resumed_from``: the checkpoint step it started at.
    """

    params: Any
    opt_state: Any
    scalars: dict[str, np.ndarray]
    records: dict[str, np.ndarray]
    steps: int
    steps_to_tol: int | np.ndarray | None
    wall_time: float
    resumed_from: int | None = None
    compile_time: float = 0.0
    diverged: bool | np.ndarray = False

    @property
    def steps_run(self) -> int:
        """Steps run in this process (``steps`` minus the resumed checkpoint's step)."""
        return self.steps - (self.resumed_from or 0)

    @property
    def steps_per_s(self) -> float | None:
        return self.steps_run / self.wall_time if self.wall_time > 0 and self.steps_run > 0 else None


def _quiet() -> bool:
    return bool(os.environ.get("LRJAX_QUIET")) or not sys.stderr.isatty()


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def plan_segments(start: int, steps: int, chunk_size: int, record_every: int) -> list[tuple[int, int, bool]]:
    """``(n_blocks, block_len, record)`` per compiled call covering steps ``start .. steps``.

    Calls end at multiples of ``chunk_size`` (itself a multiple of ``record_every``) or at ``steps``;
    a recording block starts at a multiple of ``record_every``. A run resumed from a step that is not one
    first runs ``(1, n, False)`` up to the next multiple, without recording.
    """
    out, done = [], start
    while done < steps:
        end = min((done // chunk_size + 1) * chunk_size, steps)
        if done % record_every:
            head = min(record_every - done % record_every, end - done)
            out.append((1, head, False))
            done += head
            continue
        n = end - done
        if n // record_every:
            out.append((n // record_every, record_every, True))
        if n % record_every:
            out.append((1, n % record_every, True))
        done = end
    return out


def split_for_unroll(plan: list[tuple[int, int, bool]], unroll: int) -> list[tuple[int, int, bool]]:
    """The same steps as calls of at most ``unroll`` straight-line steps: every block of ``plan`` becomes
    ``(1, n, record)`` pieces, only the first recording."""
    out = []
    for n_blocks, block_len, recording in plan:
        for _ in range(n_blocks):
            for start in range(0, block_len, unroll):
                out.append((1, min(unroll, block_len - start), recording and start == 0))
    return out


def _batch_sharding(batch: int, shard: bool):
    devices = jax.local_devices()
    k = max(d for d in range(1, len(devices) + 1) if batch % d == 0) if shard else 1
    if k == 1:
        return None
    return NamedSharding(Mesh(np.array(devices[:k]), ("batch",)), PartitionSpec("batch"))


def _batch_size(tree, name: str, batch: int | None) -> int:
    """The common leading size of every leaf of ``tree`` (checked against ``batch`` when given)."""
    sizes = {np.shape(x)[0] if np.ndim(x) else None for x in jax.tree.leaves(tree)}
    if None in sizes or (batch is not None and sizes - {batch}) or len(sizes) > 1:
        raise ValueError(f"batched=True needs a leading batch axis of one size on every leaf of {name}; "
                         f"got leading sizes {sorted(map(str, sizes))}")
    size = sizes.pop() if sizes else batch
    if size == 0:
        raise ValueError(f"batched=True needs at least one batch member; {name} has a leading axis of size 0")
    return size


def _dtype(x) -> str:
    return str(getattr(x, "dtype", type(x).__name__))


def describe(tree) -> dict:
    """Structure, shapes, dtypes and SHA-256 of a pytree's values (the part of a fingerprint it gives)."""
    leaves, treedef = jax.tree.flatten(tree)
    digest = hashlib.sha256()
    for leaf in leaves:
        a = np.ascontiguousarray(host_array(leaf))
        digest.update(f"{a.dtype}{a.shape}".encode())
        digest.update(a.tobytes())
    return {"structure": str(treedef), "leaves": [[list(np.shape(x)), _dtype(x)] for x in leaves],
            "sha256": digest.hexdigest()}


def fingerprint_diff(old: Mapping, new: Mapping, prefix: str = "") -> list[str]:
    """Human-readable differences between two fingerprints (``[]`` when equal)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if a == b:
            continue
        name = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            if prefix == "" and key in ("state", "data"):
                part = "structure or shapes" if a.get("structure") != b.get("structure") or \
                    a.get("leaves") != b.get("leaves") else "values"
                out.append(f"the initial {key} ({part})" if key == "state" else f"the data ({part})")
            else:
                out += fingerprint_diff(a, b, f"{name}.")
        else:
            out.append(f"{name} {a!r} -> {b!r}")
    return out


def _is_trained(x) -> bool:
    dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
    return jax.dtypes.issubdtype(dtype, np.inexact)


def trainable_part(tree):
    """``tree`` with ``None`` in place of every leaf that is not floating point (those are not trained)."""
    return jax.tree.map(lambda x: x if _is_trained(x) else None, tree)


def with_trainable(part, tree):
    """``tree`` with its floating-point leaves taken from ``part`` (the inverse of ``trainable_part``)."""
    return jax.tree.map(lambda p, x: x if p is None else p, part, tree, is_leaf=lambda v: v is None)


def run_key_data(key, batch: int | None) -> jax.Array:
    """Raw run key data, ``(2,)`` uint32 or ``(batch, 2)``: from an int seed, a key, or a batch of keys."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        key = jax.random.key(int(key))
    elif not (isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)):
        raise ValueError(f"key must be an int seed or a PRNG key (jax.random.key), got {key!r}")
    if batch is not None and key.ndim == 0:
        key = jax.random.split(key, batch)
    if key.shape != (() if batch is None else (batch,)):
        raise ValueError(f"key must have shape {() if batch is None else (batch,)}, got {key.shape}")
    return jax.random.key_data(key)


class _History:
    """The per-step scalars and records collected so far (host arrays, batch axis first when batched)."""

    def __init__(self, axis: int, saved: dict[str, np.ndarray] | None = None):
        self.axis = axis
        saved = saved or {}
        scal = {k[2:]: v for k, v in saved.items() if k.startswith("s/")}
        rec = {k[2:]: v for k, v in saved.items() if k.startswith("r/")}
        self.scalars = [scal] if scal else []
        self.records = [rec] if rec else []

    def add(self, scal: dict, rec: dict | None) -> None:
        self.scalars.append(scal)
        if rec:
            self.records.append(rec)

    def _concat(self, chunks):
        if not chunks:
            return {}
        return {k: np.concatenate([c[k] for c in chunks], axis=self.axis) for k in chunks[0]}

    def scalar_arrays(self) -> dict[str, np.ndarray]:
        return self._concat(self.scalars)

    def record_arrays(self) -> dict[str, np.ndarray]:
        return self._concat(self.records)

    def trajectory(self) -> dict[str, np.ndarray]:
        return {**{f"s/{k}": v for k, v in self.scalar_arrays().items()},
                **{f"r/{k}": v for k, v in self.record_arrays().items()}}


class Runner:
    """A compiled GD program: ``loss_fn``, ``tx`` and what is recorded; run it with ``run(params, steps)``.

    ``loss_fn(params)``, or ``loss_fn(params, data)`` when runs pass ``data``; with ``has_aux=True`` it
    returns ``(loss, {name: scalar})`` and those scalars are recorded per step too (sharing the loss's
    forward pass, unlike ``metrics``: per-step scalars ``f(params, data)``, ``f(params)`` without data, at
    the parameters before the step). ``recorders`` (see the module docstring) run every ``record_every``
    steps. ``chunk_size`` steps per compiled call (rounded up to a multiple of ``record_every``).
    ``batched``: a leading batch axis on params (and opt_state); ``data_batched``: on the data too (else
    the data is shared by all members); ``shard``: split the batch over the local devices.
    ``batches=Minibatches(batch_size)``: each step draws a minibatch of ``data[batches.train]`` on the
    device (``lrjax.dynamics.minibatch``); then ``loss_fn(params, batch, key)`` and ``f(params, batch)``.
    ``unroll=k``: each compiled call runs at most ``k`` steps as straight-line code, with no XLA while
    loop (one host round trip per call): XLA:CPU runs convolutions inside a while loop about 8x slower
    than outside one (measured for the CNN of ``lrjax.models``, jax 0.10.2), so CNNs on CPU want it.
    ``members="loop"`` (with ``batched``): the batch members run one after another inside the same
    compiled program instead of ``vmap``-ed (a CNN's vmapped convolutions over per-member kernels become
    grouped convolutions, 4x slower on XLA:CPU than running the members in turn: measured).

    Only the floating-point leaves of ``params`` are differentiated and updated (``opt_state`` is
    ``tx.init`` of those); integer leaves (an nnx RNG count, a PRNG key) ride along unchanged.
    """

    def __init__(self, loss_fn: Callable, tx: optax.GradientTransformation, *,
                 metrics: Mapping[str, Callable] | None = None, recorders: Mapping[str, Any] | None = None,
                 record_every: int = 0, chunk_size: int = 100, has_aux: bool = False, batched: bool = False,
                 data_batched: bool = False, shard: bool = True, batches: minibatch.Minibatches | None = None,
                 unroll: int | None = None, members: str = "vmap"):
        _check_int("chunk_size", chunk_size, 1)
        if members not in ("vmap", "loop"):
            raise ValueError(f"members must be 'vmap' or 'loop', got {members!r}")
        if members == "loop" and not batched:
            raise ValueError("members='loop' runs the members of a batch in turn: it needs batched=True")
        self.members = members
        if unroll is not None:
            _check_int("unroll", unroll, 1)
        self.unroll = unroll
        if batches is not None and not isinstance(batches, minibatch.Minibatches):
            raise TypeError(f"batches must be a dynamics.Minibatches, got {batches!r}")
        self.batches = batches
        self.recorders = tuple(sorted((recorders or {}).items()))
        self.metrics = tuple(sorted((metrics or {}).items()))
        if self.recorders:
            _check_int("record_every (recorders need it)", record_every, 1)
        self.loss_fn, self.tx, self.has_aux = loss_fn, tx, has_aux
        self.batched, self.data_batched, self.shard = batched, data_batched, shard
        self.record_every = record_every if self.recorders else chunk_size
        self.chunk_size = math.ceil(chunk_size / self.record_every) * self.record_every
        self._executables: dict = {}
        init = lambda p: init_trackers(self.recorders, p)  # noqa: E731
        rec = lambda s, p, d: record(self.recorders, s, p, d)  # noqa: E731
        if batched:
            init, rec = jax.vmap(init), jax.vmap(rec, in_axes=(0, 0, 0 if data_batched else None))
        self._init_trackers, self._record = jax.jit(init), jax.jit(rec)

    # ---- the compiled segment --------------------------------------------------------------------------

    def _segment(self, n_blocks: int, block_len: int, recording: bool, has_data: bool, n: int | None) -> Callable:
        """``(state, data, start) -> (state, scalars, records)`` for ``n_blocks * block_len`` steps from step
        ``start``, recording at the start of each block when ``recording``; ``state = {"params",
        "opt_state", "trackers"}`` (plus ``"key"``, a run key per member, with minibatches of ``n`` examples).
        Only the floating-point leaves of the parameters are differentiated and updated."""
        loss_fn, tx, has_aux, metric_fns, mb = self.loss_fn, self.tx, self.has_aux, dict(self.metrics), self.batches

        def objective(p, data, t, order, keys):
            """``(loss, aux)``, the batch, and the per-step metrics' inputs."""
            if mb is None:
                args = (data,) if has_data else ()
                return args, args
            batch = minibatch.take_batch(mb, data[mb.train], order, t, n)
            return (batch, jax.random.fold_in(keys[1], t)), (batch,)

        def step(carry, data, keys):
            p, s, t, order = carry
            if mb is not None:
                order = minibatch.order_at(mb, keys[0], order, t, n)
            loss_args, metric_args = objective(p, data, t, order, keys)
            trained = trainable_part(p)
            value, grads = jax.value_and_grad(lambda q: loss_fn(with_trainable(q, p), *loss_args),
                                              has_aux=has_aux)(trained)
            value, aux = value if has_aux else (value, {})
            scal = {"loss": value, **aux, **{k: f(p, *metric_args) for k, f in metric_fns.items()}}
            updates, s = tx.update(grads, s, trained)
            return (with_trainable(optax.apply_updates(trained, updates), p), s, t + 1, order), scal

        def block(carry, data, keys):
            state, t, order = carry
            trackers, values = state["trackers"], {}
            if recording:
                trackers, values = record(self.recorders, trackers, state["params"], data)
            (params, opt_state, t, order), scal = jax.lax.scan(
                lambda c, _: step(c, data, keys), (state["params"], state["opt_state"], t, order), None,
                length=block_len, unroll=bool(self.unroll))
            return ({**state, "params": params, "opt_state": opt_state, "trackers": trackers}, t, order), (scal, values)

        def segment(state, data, start):
            keys, order = (), ()
            if mb is not None:
                keys = minibatch.run_keys(state["key"])
                order = minibatch.epoch_order(keys[0], start // mb.steps_per_epoch(n), n)
            carry = (state, start, order)
            if n_blocks == 1:  # no outer loop: a nested scan copies the carry every step (measurably slower)
                carry, (scal, rec) = block(carry, data, keys)
                rec = jax.tree.map(lambda x: x[None], rec)
            else:
                carry, (scal, rec) = jax.lax.scan(lambda c, _: block(c, data, keys), carry, None, length=n_blocks)
                scal = jax.tree.map(lambda x: x.reshape((n_blocks * block_len,) + x.shape[2:]), scal)
            return carry[0], scal, rec

        if self.batched and self.members == "loop":
            one = segment

            def segment(state, data, start):
                size = jax.tree.leaves(state["params"])[0].shape[0]
                pick = lambda tree, i: jax.tree.map(lambda a: a[i], tree)  # noqa: E731
                outs = [one(pick(state, i), pick(data, i) if self.data_batched else data, start) for i in range(size)]
                return jax.tree.map(lambda *xs: jax.numpy.stack(xs), *outs)
        elif self.batched:
            segment = jax.vmap(segment, in_axes=(0, 0 if self.data_batched else None, None))
        return segment

    def _executable(self, segment: tuple[int, int, bool], state, data):
        """The compiled program for ``segment`` and these argument shapes: ``(executable, compile seconds)``."""
        leaves, treedef = jax.tree.flatten((state, data))
        key = (segment, treedef, tuple((np.shape(x), _dtype(x), getattr(x, "sharding", None)) for x in leaves))
        if key in self._executables:
            return self._executables[key], 0.0
        t0 = time.perf_counter()
        n = self.batches.examples(data, self.batched and self.data_batched) if self.batches is not None else None
        fn = jax.jit(self._segment(*segment, has_data=data is not None, n=n))
        compiled = fn.lower(state, data, np.int32(0)).compile()
        self._executables[key] = compiled
        return compiled, time.perf_counter() - t0

    # ---- stages of a run ----------------------------------------------------------------------------------

    def _prepare(self, params, opt_state, data, key=0):
        """Initial state on the devices (with a run key per member for minibatches), the data there too,
        and the function that places a state like it."""
        batch = _batch_size(params, "params", None) if self.batched else None
        if opt_state is None:
            init = lambda p: self.tx.init(trainable_part(p))  # noqa: E731
            opt_state = jax.vmap(init)(params) if self.batched else init(params)
        sharding = None
        if self.batched:
            _batch_size(opt_state, "opt_state", batch)
            if data is not None and self.data_batched:
                _batch_size(data, "data", batch)
            sharding = _batch_sharding(batch, self.shard)
        put = (lambda t: jax.device_put(t, sharding)) if sharding is not None else jax.device_put
        state = {"params": params, "opt_state": opt_state, "trackers": self._init_trackers(params)}
        if self.batches is not None:
            if data is None:
                raise ValueError("minibatch runs need data (the training set under "
                                 f"{self.batches.train!r})")
            self.batches.examples(data, self.batched and self.data_batched)
            state["key"] = run_key_data(key, batch)
        state = put(state)
        if data is not None:
            data = put(data) if self.data_batched else jax.device_put(data)
        return state, data, put

    def _fingerprint(self, state, data, extra: Mapping | None) -> dict:
        return {"state": describe(state), "data": describe(data) if data is not None else None,
                "chunk_size": self.chunk_size, "record_every": self.record_every,
                "recorders": [k for k, _ in self.recorders], "metrics": [k for k, _ in self.metrics],
                "has_aux": self.has_aux, "batched": self.batched, "data_batched": self.data_batched,
                "batches": repr(self.batches), "unroll": self.unroll, "members": self.members,
                "user": to_jsonable(dict(extra or {}))}

    def _restore(self, ckpt: Checkpointer, state, data, steps: int, extra):
        """``(start, state, saved trajectory)`` from the newest intact checkpoint of the same run, or
        ``(0, state, {})`` when there is none; ``ResumeError`` when the checkpoints are another run's."""
        path = ckpt.directory / "fingerprint.json"
        mine = json.loads(json.dumps(self._fingerprint(state, data, extra)))
        if not ckpt.all_steps():
            write_json(path, mine)
            return 0, state, {}
        if not path.is_file():
            raise ResumeError(f"{ckpt.directory} holds checkpoints without a fingerprint: cannot tell whether they "
                              "belong to this run; use another work directory or delete that one")
        try:
            stored = json.loads(path.read_text())
        except ValueError:
            stored = None
        if not isinstance(stored, dict):
            raise ResumeError(f"{path} is unreadable: cannot tell whether the checkpoints beside it belong to this "
                              "run; use another work directory or delete that one")
        diff = fingerprint_diff(stored, mine)
        if diff:
            raise ResumeError(f"{ckpt.directory} holds checkpoints of a different run ({'; '.join(diff)}); use "
                              "another work directory, or delete that one to start over")
        start, host_state, saved = ckpt.restore(state)
        if start > steps:
            raise ResumeError(f"the checkpoint in {ckpt.directory} is at step {start}, past steps={steps}: ask for "
                              f"at least {start} steps, or use another work directory")
        return start, host_state, saved

    def _divergence(self, loss, history: _History, done: int, state, ckpt) -> DivergenceError:
        """The error for a chunk whose ``loss`` (``(n,)`` or ``(batch, n)``) went non-finite."""
        rows = loss if self.batched else loss[None]
        previous = history.scalar_arrays().get("loss")
        bad = [m for m in range(rows.shape[0]) if not np.isfinite(rows[m]).all()]
        first = {m: int(np.argmax(~np.isfinite(rows[m]))) for m in bad}
        member = min(bad, key=lambda m: first[m])
        idx = first[member]
        if previous is None:
            before = np.zeros((0,))
        else:
            before = previous if not self.batched else previous[member]
        finite = np.concatenate([before, rows[member][:idx]])
        last = float(finite[-1]) if finite.size else float("nan")
        where = None
        if ckpt is not None:
            ckpt.save(done, state, history.trajectory())
            where = str(ckpt.directory)
        host = jax.device_get(state)
        return DivergenceError(done + idx, last, host["params"], host["opt_state"],
                               member if self.batched else None, done, where)

    # ---- public ------------------------------------------------------------------------------------------

    def plan(self, start: int, steps: int) -> list[tuple[int, int, bool]]:
        """The compiled calls (``(n_blocks, block_len, record)``) that run steps ``start .. steps``."""
        plan = plan_segments(start, steps, self.chunk_size, self.record_every)
        return split_for_unroll(plan, self.unroll) if self.unroll else plan

    def compile(self, params, steps: int, *, data=None, opt_state=None) -> float:
        """Compile every program a run of ``steps`` steps from step 0 uses; returns the seconds it took."""
        _check_int("steps", steps, 1)
        state, data, _ = self._prepare(params, opt_state, data)  # (the run key's value does not matter here)
        return sum(self._executable(seg, state, data)[1]
                   for seg in set(self.plan(0, steps)))

    def run(self, params, steps: int, *, data=None, opt_state=None, tol: float | None = None,
            workdir: str | os.PathLike | None = None, checkpoint_every: int = 10, on_divergence: str = "raise",
            progress: bool | None = None, desc: str = "gd", fingerprint: Mapping[str, Any] | None = None,
            key: int | jax.Array = 0) -> Result:
        """Run ``steps`` steps from ``params`` (and ``opt_state``, default ``tx.init(params)``).

        ``tol``: stop after the chunk in which every member's loss reached ``<= tol`` (members that
        diverged no longer count). ``workdir``: checkpoint every ``checkpoint_every`` chunks (0: only at
        the end) under ``workdir/checkpoints`` and resume from there (module docstring); ``fingerprint``:
        extra JSON-able values that identify the run (e.g. ``{"eta": 0.1}``). ``on_divergence``:
        ``"raise"`` a ``DivergenceError`` at the first non-finite loss, or ``"continue"`` (sweeps that
        expect some members to blow up). ``key``: the run key of minibatch runs (an int seed or a PRNG
        key; batched runs split it into one per member, or take a ``(batch,)`` array of keys).
        """
        _check_int("steps", steps, 1)
        _check_int("checkpoint_every", checkpoint_every, 0)
        if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol)):
            raise ValueError(f"tol must be a finite number or None, got {tol!r}")
        if on_divergence not in ("raise", "continue"):
            raise ValueError(f"on_divergence must be 'raise' or 'continue', got {on_divergence!r}")
        state, data, put = self._prepare(params, opt_state, data, key)
        ckpt = Checkpointer(Path(workdir) / "checkpoints", lock=True) if workdir is not None else None
        try:
            return self._run(state, data, put, steps, tol, ckpt, checkpoint_every, on_divergence, progress, desc,
                             fingerprint)
        finally:
            if ckpt is not None:
                ckpt.close()

    def _run(self, state, data, put, steps, tol, ckpt, checkpoint_every, on_divergence, progress, desc, extra):
        start, saved = 0, {}
        if ckpt is not None:
            start, state, saved = self._restore(ckpt, state, data, steps, extra)
            state = put(state)
        axis = 1 if self.batched else 0
        history = _History(axis, saved)
        loss_so_far = history.scalar_arrays().get("loss")
        shape = () if not self.batched else (jax.tree.leaves(state["params"])[0].shape[0],)
        hit, diverged = np.zeros(shape, bool), np.zeros(shape, bool)
        if loss_so_far is not None and loss_so_far.shape[-1]:
            diverged |= ~np.isfinite(loss_so_far).all(axis=-1)
            if tol is not None:
                hit |= (loss_so_far <= tol).any(axis=-1)

        def finished() -> bool:
            return tol is not None and bool(np.all(hit | diverged))

        show = (not _quiet()) if progress is None else progress
        bar = None
        if show:
            from tqdm.auto import tqdm
            bar = tqdm(total=steps, initial=start, desc=desc, unit="step", dynamic_ncols=True)
        compile_time, done, t0 = 0.0, start, time.perf_counter()
        try:
            for segment in ([] if finished() else self.plan(start, steps)):
                program, seconds = self._executable(segment, state, data)
                compile_time += seconds
                new_state, scal, rec = program(state, data, np.int32(done))
                scal, rec = jax.device_get((scal, rec))
                loss = np.asarray(scal["loss"])
                finite = np.isfinite(loss).all(axis=-1)
                if not finite.all() and on_divergence == "raise":
                    raise self._divergence(loss, history, done, state, ckpt)
                state = new_state
                history.add(scal, rec if segment[2] else None)
                diverged |= ~finite
                if tol is not None:
                    hit |= (loss <= tol).any(axis=-1)
                done += segment[0] * segment[1]
                if bar is not None:
                    bar.update(segment[0] * segment[1])
                    last = loss[..., -1][np.isfinite(loss[..., -1])]
                    bar.set_postfix(loss=f"{float(last.mean()):.3e}" if last.size else "nan")
                if (ckpt is not None and checkpoint_every and done % self.chunk_size == 0
                        and (done // self.chunk_size) % checkpoint_every == 0):
                    ckpt.save(done, state, history.trajectory())
                if finished():
                    break
            if ckpt is not None:
                ckpt.save(done, state, history.trajectory())
        finally:
            if bar is not None:
                bar.close()
        wall = time.perf_counter() - t0 - compile_time
        return self._result(state, data, history, done, tol, start, wall, compile_time, diverged)

    def _result(self, state, data, history: _History, done, tol, start, wall, compile_time, diverged) -> Result:
        """The final records (on the final parameters) appended, and ``steps_to_tol``."""
        axis = history.axis
        scalars, records = history.scalar_arrays(), history.record_arrays()
        if self.recorders:
            final = jax.device_get(self._record(state["trackers"], state["params"], data)[1])
            records = {k: np.concatenate([records[k], np.expand_dims(final[k], axis)], axis=axis) if k in records
                       else np.expand_dims(final[k], axis) for k in final}
            records["step"] = np.append(np.arange(0, done, self.record_every), done)
        steps_to_tol = None
        if tol is not None:
            hit = scalars["loss"] <= tol
            first = np.where(hit.any(axis=-1), np.argmax(hit, axis=-1), -1)
            steps_to_tol = int(first) if not self.batched else first
        host = jax.device_get(state)
        return Result(host["params"], host["opt_state"], scalars, records, done, steps_to_tol, wall,
                      start if start else None, compile_time, bool(diverged) if not self.batched else diverged)


def run(loss_fn: Callable, params, tx: optax.GradientTransformation, steps: int, *, data=None,
        opt_state=None, chunk_size: int = 100, record_every: int = 0,
        recorders: Mapping[str, Any] | None = None, metrics: Mapping[str, Callable] | None = None,
        tol: float | None = None, batched: bool = False, data_batched: bool = False, shard: bool = True,
        workdir: str | os.PathLike | None = None, checkpoint_every: int = 10,
        on_divergence: str = "raise", progress: bool | None = None, desc: str = "gd",
        has_aux: bool = False, fingerprint: Mapping[str, Any] | None = None,
        batches: minibatch.Minibatches | None = None, key: int | jax.Array = 0, unroll: int | None = None,
        members: str = "vmap") -> Result:
    """One run: ``Runner(loss_fn, tx, <program options>).run(params, steps, <run options>)``.

    Program options (what is compiled): ``metrics``, ``recorders``, ``record_every``, ``chunk_size``,
    ``has_aux``, ``batched``, ``data_batched``, ``shard``, ``batches``, ``unroll``, ``members`` (see
    ``Runner``). Run options:
    ``data``, ``opt_state``, ``tol``, ``workdir``, ``checkpoint_every``, ``on_divergence``, ``progress``,
    ``desc``, ``fingerprint``, ``key`` (see ``Runner.run``). Build a ``Runner`` yourself to run one program several times
    without compiling it again.
    """
    runner = Runner(loss_fn, tx, metrics=metrics, recorders=recorders, record_every=record_every,
                    chunk_size=chunk_size, has_aux=has_aux, batched=batched, data_batched=data_batched, shard=shard,
                    batches=batches, unroll=unroll, members=members)
    return runner.run(params, steps, data=data, opt_state=opt_state, tol=tol, workdir=workdir,
                      checkpoint_every=checkpoint_every, on_divergence=on_divergence, progress=progress, desc=desc,
                      fingerprint=fingerprint, key=key)
