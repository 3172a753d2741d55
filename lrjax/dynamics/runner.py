"""The host driver of gradient-descent dynamics: compiled chunks, seed batches over devices, checkpoints,
progress, divergence and history around a pure ``Program`` (``lrjax.dynamics.program``).

``Runner(loss_fn, tx, **options)`` (or ``Runner.of(program, layout, schedule)``) owns one program and its
compiled executables; ``Runner.run(params, steps, ...)`` runs it from an initial state: ``steps``
optimizer steps as compiled chunks of ``schedule.chunk_size`` steps with no host round-trip inside a
chunk. ``run(...)`` does both in one call. Options come in three small frozen groups:

- ``Program`` (what a step does): ``metrics``, ``recorders``, ``has_aux``, ``batches``;
- ``Layout`` (how members are laid out): ``batched``, ``data_batched``, ``shard``, ``members``, ``unroll``;
- ``Schedule`` (when the host looks): ``chunk_size``, ``record_every``;

and, per run, ``Checkpointing`` (``lrjax.dynamics.resume``: where, how often, which run). Between chunks the
driver checks the tolerance and for NaN/inf, updates the progress bar and checkpoints.

Compilation is explicit: a ``Runner`` compiles ahead of time (``jax.jit(...).lower(...).compile()``) on
first use or in ``Runner.compile``; ``Result.compile_time`` and ``Result.wall_time`` (execution only) are
reported apart. Nothing is cached between runners, so a runner's programs, and the data its closures hold,
are freed with it.

With ``batched=True`` every leaf of ``params`` (and of ``opt_state`` and ``data`` when ``data_batched``)
carries a leading axis of seeds or hyper-parameters, run as one ``vmap``-ed program whose axis is sharded
across the local devices (members never communicate). Across processes, ``distributed.sweep`` runs a pure
``Program.train`` sharded over every process's devices.

Resuming (``resume``): with a ``Checkpointing`` the run checkpoints under its directory and holds that
directory's lock; a re-run resumes, bit-identical to an uninterrupted run, only if it is the same run.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from typing import Any, Callable

import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lrjax.dynamics import live
from lrjax.dynamics.program import Program, init_trackers, record, trainable_part
from lrjax.dynamics.resume import Checkpointing, fingerprint, restore


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
    ``timed_wall_time`` / ``timed_steps``: such seconds and the steps they ran, summed over every process
    that ran this run's steps (checkpoints carry the earlier processes' share, up to the save that writes
    them; a checkpoint written before lrjax stored them gives none; processes on other machines count
    alike), so ``ms_per_step`` is defined even when a resumed run has nothing left to run.
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
    timed_wall_time: float = 0.0
    timed_steps: int = 0

    @property
    def steps_run(self) -> int:
        """Steps run in this process (``steps`` minus the resumed checkpoint's step)."""
        return self.steps - (self.resumed_from or 0)

    @property
    def steps_per_s(self) -> float | None:
        """Steps per second of this process's steps (``None`` when it ran none); see ``ms_per_step``."""
        return self.steps_run / self.wall_time if self.wall_time > 0 and self.steps_run > 0 else None

    @property
    def ms_per_step(self) -> float:
        """Execution time per step over every process that ran steps (``timed_*``); ``nan`` when none
        were timed."""
        return 1e3 * self.timed_wall_time / self.timed_steps if self.timed_steps > 0 else float("nan")


PROGRESS_EVERY_S = 10.0   # seconds between progress lines when stderr is not a terminal


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run: ``step`` (the steps done), ``checkpoint`` (the directory of the newest checkpoint
    and ``checkpoint_step`` its step, or ``None`` without checkpoints)."""

    def __init__(self, step: int, checkpoint: str | None, checkpoint_step: int | None):
        super().__init__(f"interrupted at step {step}")
        self.step, self.checkpoint, self.checkpoint_step = step, checkpoint, checkpoint_step


class _Progress:
    """Progress of a run on stderr: a bar on a terminal, else a line every ``PROGRESS_EVERY_S`` seconds (steps,
    steps/s, mean loss, ETA: logs of nohup, Slurm and CI jobs); nothing with ``LRJAX_QUIET`` or ``show=False``."""

    def __init__(self, show: bool | None, total: int, start: int, desc: str):
        quiet = bool(os.environ.get("LRJAX_QUIET"))
        self.on = (not quiet) if show is None else show
        self.total, self.start, self.done, self.desc = total, start, start, desc
        self.t0 = self.last = time.perf_counter()
        self.bar = None
        if self.on and sys.stderr.isatty():
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, initial=start, desc=desc, unit="step", dynamic_ncols=True)

    def update(self, steps: int, loss: np.ndarray) -> None:
        self.done += steps
        if not self.on:
            return
        last = loss[..., -1][np.isfinite(loss[..., -1])]
        shown = f"{float(last.mean()):.3e}" if last.size else "nan"
        if self.bar is not None:
            self.bar.update(steps)
            self.bar.set_postfix(loss=shown)
            return
        now = time.perf_counter()
        if now - self.last >= PROGRESS_EVERY_S or self.done >= self.total:
            self.last = now
            rate = (self.done - self.start) / max(now - self.t0, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            print(f"{self.desc}: step {self.done}/{self.total} ({100 * self.done / self.total:.0f}%), {rate:.1f} steps/s, "
                  f"loss {shown}, ETA {eta:.0f} s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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


@dataclasses.dataclass(frozen=True)
class Layout:
    """How the members of a batch are laid out. ``batched``: a leading batch axis on params (and
    opt_state); ``data_batched``: on the data too (else the data is shared by all members); ``shard``: split
    the batch over the local devices; ``members="loop"`` (with ``batched``): the members run one after
    another inside the same compiled program instead of ``vmap``-ed (a CNN's vmapped convolutions over
    per-member kernels become grouped convolutions, 4x slower on XLA:CPU than running the members in turn:
    measured); ``unroll=k``: each compiled call runs at most ``k`` steps as straight-line code, with no XLA
    while loop (XLA:CPU runs convolutions inside a while loop about 8x slower than outside one: measured
    for the CNN of ``lrjax.models``, jax 0.10.2)."""

    batched: bool = False
    data_batched: bool = False
    shard: bool = True
    members: str = "vmap"
    unroll: int | None = None

    def __post_init__(self):
        if self.members not in ("vmap", "loop"):
            raise ValueError(f"members must be 'vmap' or 'loop', got {self.members!r}")
        if self.members == "loop" and not self.batched:
            raise ValueError("members='loop' runs the members of a batch in turn: it needs batched=True")
        if self.unroll is not None:
            _check_int("unroll", self.unroll, 1)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """``chunk_size`` steps per compiled call (rounded up to a multiple of ``record_every``); recorders run
    every ``record_every`` steps (needed when there are recorders; 0 otherwise)."""

    chunk_size: int = 100
    record_every: int = 0

    def __post_init__(self):
        _check_int("chunk_size", self.chunk_size, 1)
        _check_int("record_every", self.record_every, 0)


PROGRAM_OPTIONS = ("metrics", "recorders", "has_aux", "batches")
LAYOUT_OPTIONS = tuple(f.name for f in dataclasses.fields(Layout))
SCHEDULE_OPTIONS = tuple(f.name for f in dataclasses.fields(Schedule))
RUN_OPTIONS = ("data", "opt_state", "tol", "checkpoint", "on_divergence", "progress", "desc", "key", "workdir",
               "checkpoint_every", "fingerprint")


def _dtype(x) -> str:
    return str(getattr(x, "dtype", type(x).__name__))


def _pick(options: dict, names) -> dict:
    return {k: options.pop(k) for k in names if k in options}


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
    """The per-step scalars and records collected so far (host arrays, batch axis first when batched), and
    the execution seconds and steps timed so far over every process (``t/wall_s``, ``t/steps`` in a
    checkpoint's trajectory; ``clock`` adds this process's)."""

    def __init__(self, axis: int, saved: dict[str, np.ndarray] | None = None):
        self.axis = axis
        saved = saved or {}
        scal = {k[2:]: v for k, v in saved.items() if k.startswith("s/")}
        rec = {k[2:]: v for k, v in saved.items() if k.startswith("r/")}
        self.scalars = [scal] if scal else []
        self.records = [rec] if rec else []
        self.prior_wall, self.prior_steps = float(saved.get("t/wall_s", 0.0)), int(saved.get("t/steps", 0))
        self.wall, self.steps = self.prior_wall, self.prior_steps

    def clock(self, wall: float, steps: int) -> None:
        """This process has run ``steps`` steps in ``wall`` execution seconds so far."""
        self.wall, self.steps = self.prior_wall + wall, self.prior_steps + steps

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
                **{f"r/{k}": v for k, v in self.record_arrays().items()},
                "t/wall_s": np.float64(self.wall), "t/steps": np.int64(self.steps)}


class Runner:
    """A compiled GD program and its host driver; run it with ``run(params, steps)``.

    ``Runner(loss_fn, tx, **options)``: ``loss_fn(params)``, or ``loss_fn(params, data)`` when runs pass
    ``data`` (``loss_fn(params, batch, key)`` with minibatches); options are the fields of ``Program``
    (``metrics``, ``recorders``, ``has_aux``, ``batches``), ``Layout`` and ``Schedule`` (module docstring).
    ``Runner.of(program, layout, schedule)`` takes the groups as built values.
    """

    def __init__(self, loss_fn: Callable, tx: optax.GradientTransformation, **options):
        options = dict(options)
        program = Program(loss_fn, tx, **_pick(options, PROGRAM_OPTIONS))
        layout, schedule = Layout(**_pick(options, LAYOUT_OPTIONS)), Schedule(**_pick(options, SCHEDULE_OPTIONS))
        if options:
            raise TypeError(f"Runner got unknown options {sorted(options)}; known: "
                            f"{', '.join(PROGRAM_OPTIONS + LAYOUT_OPTIONS + SCHEDULE_OPTIONS)}")
        self._setup(program, layout, schedule)

    @classmethod
    def of(cls, program: Program, layout: Layout = Layout(), schedule: Schedule = Schedule()) -> "Runner":
        runner = cls.__new__(cls)
        runner._setup(program, layout, schedule)
        return runner

    def _setup(self, program: Program, layout: Layout, schedule: Schedule) -> None:
        if program.recorders:
            _check_int("record_every (recorders need it)", schedule.record_every, 1)
        record_every = schedule.record_every if program.recorders else schedule.chunk_size
        self.program, self.layout = program, layout
        self.schedule = Schedule(math.ceil(schedule.chunk_size / record_every) * record_every, record_every)
        self._executables: dict = {}
        init = lambda p: init_trackers(program.recorders, p)  # noqa: E731
        rec = lambda s, p, d: record(program.recorders, s, p, d)  # noqa: E731
        if layout.batched:
            init, rec = jax.vmap(init), jax.vmap(rec, in_axes=(0, 0, 0 if layout.data_batched else None))
        self._init_trackers, self._record = jax.jit(init), jax.jit(rec)

    # names the driver and its callers read
    chunk_size = property(lambda self: self.schedule.chunk_size)
    record_every = property(lambda self: self.schedule.record_every)
    batched = property(lambda self: self.layout.batched)
    recorders = property(lambda self: self.program.recorders)
    batches = property(lambda self: self.program.batches)
    tx = property(lambda self: self.program.tx)

    def describe_program(self) -> dict:
        """What a checkpoint's fingerprint records of the program and its layout (``resume.fingerprint``)."""
        p, lay = self.program, self.layout
        return {"chunk_size": self.chunk_size, "record_every": self.record_every,
                "recorders": [k for k, _ in p.recorders], "metrics": [k for k, _ in p.metrics],
                "has_aux": p.has_aux, "batched": lay.batched, "data_batched": lay.data_batched,
                "batches": repr(p.batches), "unroll": lay.unroll, "members": lay.members}

    # ---- compiling -------------------------------------------------------------------------------------

    def _segment(self, n_blocks: int, block_len: int, recording: bool, has_data: bool, n: int | None) -> Callable:
        """The program's segment (``Program.segment``), over the batch as the layout says."""
        lay = self.layout
        segment = self.program.segment(n_blocks, block_len, recording, has_data, n, unroll=bool(lay.unroll))
        if lay.batched and lay.members == "loop":
            one = segment

            def segment(state, data, start):
                size = jax.tree.leaves(state["params"])[0].shape[0]
                pick = lambda tree, i: jax.tree.map(lambda a: a[i], tree)  # noqa: E731
                outs = [one(pick(state, i), pick(data, i) if lay.data_batched else data, start) for i in range(size)]
                return jax.tree.map(lambda *xs: jax.numpy.stack(xs), *outs)
        elif lay.batched:
            segment = jax.vmap(segment, in_axes=(0, 0 if lay.data_batched else None, None))
        return segment

    def _executable(self, segment: tuple[int, int, bool], state, data):
        """The compiled program for ``segment`` and these argument shapes: ``(executable, compile seconds)``."""
        leaves, treedef = jax.tree.flatten((state, data))
        key = (segment, treedef, tuple((np.shape(x), _dtype(x), getattr(x, "sharding", None)) for x in leaves))
        if key in self._executables:
            return self._executables[key], 0.0
        t0 = time.perf_counter()
        n = self.batches.examples(data, self.batched and self.layout.data_batched) if self.batches is not None else None
        fn = jax.jit(self._segment(*segment, has_data=data is not None, n=n))
        compiled = fn.lower(state, data, np.int32(0)).compile()
        self._executables[key] = compiled
        return compiled, time.perf_counter() - t0

    # ---- stages of a run ----------------------------------------------------------------------------------

    def _prepare(self, params, opt_state, data, key=0):
        """Initial state on the devices (with a run key per member for minibatches), the data there too,
        and the function that places a state like it."""
        lay = self.layout
        batch = _batch_size(params, "params", None) if lay.batched else None
        if opt_state is None:
            init = lambda p: self.tx.init(trainable_part(p))  # noqa: E731
            opt_state = jax.vmap(init)(params) if lay.batched else init(params)
        sharding = None
        if lay.batched:
            _batch_size(opt_state, "opt_state", batch)
            if data is not None and lay.data_batched:
                _batch_size(data, "data", batch)
            sharding = _batch_sharding(batch, lay.shard)
        put = (lambda t: jax.device_put(t, sharding)) if sharding is not None else jax.device_put
        state = {"params": params, "opt_state": opt_state, "trackers": self._init_trackers(params)}
        if self.batches is not None:
            if data is None:
                raise ValueError("minibatch runs need data (the training set under "
                                 f"{self.batches.train!r})")
            self.batches.examples(data, lay.batched and lay.data_batched)
            state["key"] = run_key_data(key, batch)
        state = put(state)
        if data is not None:
            data = put(data) if lay.data_batched else jax.device_put(data)
        return state, data, put

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
        return split_for_unroll(plan, self.layout.unroll) if self.layout.unroll else plan

    def compile(self, params, steps: int, *, data=None, opt_state=None) -> float:
        """Compile every program a run of ``steps`` steps from step 0 uses; returns the seconds it took."""
        _check_int("steps", steps, 1)
        state, data, _ = self._prepare(params, opt_state, data)  # (the run key's value does not matter here)
        return sum(self._executable(seg, state, data)[1]
                   for seg in set(self.plan(0, steps)))

    def run(self, params, steps: int, *, data=None, opt_state=None, tol: float | None = None,
            checkpoint: Checkpointing | None = None, on_divergence: str = "raise", progress: bool | None = None,
            desc: str = "gd", key: int | jax.Array = 0, **legacy) -> Result:
        """Run ``steps`` steps from ``params`` (and ``opt_state``, default ``tx.init(params)``).

        ``tol``: stop after the chunk in which every member's loss reached ``<= tol`` (members that
        diverged no longer count). ``checkpoint``: a ``Checkpointing`` (checkpoint there and resume from
        there: ``resume``); the older spelling ``workdir=, checkpoint_every=, fingerprint=`` builds one.
        ``on_divergence``: ``"raise"`` a ``DivergenceError`` at the first non-finite loss, or ``"continue"``
        (sweeps that expect some members to blow up). ``key``: the run key of minibatch runs (an int seed or
        a PRNG key; batched runs split it into one per member, or take a ``(batch,)`` array of keys).
        """
        checkpoint = _checkpointing(checkpoint, legacy)
        _check_int("steps", steps, 1)
        if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol)):
            raise ValueError(f"tol must be a finite number or None, got {tol!r}")
        if on_divergence not in ("raise", "continue"):
            raise ValueError(f"on_divergence must be 'raise' or 'continue', got {on_divergence!r}")
        state, data, put = self._prepare(params, opt_state, data, key)
        ckpt = checkpoint.open() if checkpoint is not None else None
        try:
            return self._run(state, data, put, steps, tol, ckpt, checkpoint, on_divergence, progress, desc)
        finally:
            if ckpt is not None:
                ckpt.close()

    def _run(self, state, data, put, steps, tol, ckpt, checkpoint, on_divergence, progress, desc):
        start, saved = 0, {}
        checkpoint_every = checkpoint.every if checkpoint is not None else 0
        if ckpt is not None:
            mine = fingerprint(state, data, self.describe_program(), checkpoint.identity)
            start, state, saved = restore(ckpt, state, mine, steps)
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

        bar = _Progress(progress, steps, start, desc)
        sink = live.current()
        compile_time, streamed, done, t0 = 0.0, 0.0, start, time.perf_counter()
        try:
            for segment in ([] if finished() else self.plan(start, steps)):
                program, seconds = self._executable(segment, state, data)
                compile_time += seconds
                live.count("compile_s", seconds)
                new_state, scal, rec = program(state, data, np.int32(done))
                scal, rec = jax.device_get((scal, rec))
                loss = np.asarray(scal["loss"])
                finite = np.isfinite(loss).all(axis=-1)
                if not finite.all() and on_divergence == "raise":
                    raise self._divergence(loss, history, done, state, ckpt)
                state = new_state
                history.add(scal, rec if segment[2] else None)
                if sink is not None:                 # its time is not the training's (module live)
                    t_sink, length = time.perf_counter(), segment[0] * segment[1]
                    sink(desc, done, scal, rec if segment[2] else None,
                         np.arange(done, done + length, self.record_every) if segment[2] else None)
                    streamed += time.perf_counter() - t_sink
                diverged |= ~finite
                if tol is not None:
                    hit |= (loss <= tol).any(axis=-1)
                done += segment[0] * segment[1]
                bar.update(segment[0] * segment[1], loss)
                history.clock(time.perf_counter() - t0 - compile_time - streamed, done - start)
                if (ckpt is not None and checkpoint_every and done % self.chunk_size == 0
                        and (done // self.chunk_size) % checkpoint_every == 0):
                    ckpt.save(done, state, history.trajectory())
                if finished():
                    break
            if ckpt is not None:
                ckpt.save(done, state, history.trajectory())
        except KeyboardInterrupt:
            intact = [] if ckpt is None else [k for k in ckpt.all_steps() if ckpt.verify(k) is None]
            raise Interrupted(done, None if ckpt is None else str(ckpt.directory), max(intact, default=None)) from None
        finally:
            bar.close()
        live.count("stream_s", streamed)
        wall = time.perf_counter() - t0 - compile_time - streamed
        history.clock(wall, done - start)
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
                      start if start else None, compile_time, bool(diverged) if not self.batched else diverged,
                      history.wall, history.steps)


def _checkpointing(checkpoint: Checkpointing | None, legacy: dict) -> Checkpointing | None:
    """``checkpoint``, or one built from the older ``workdir``/``checkpoint_every``/``fingerprint`` options."""
    unknown = set(legacy) - {"workdir", "checkpoint_every", "fingerprint"}
    if unknown:
        raise TypeError(f"run got unknown options {sorted(unknown)}")
    every = legacy.get("checkpoint_every", 10)
    _check_int("checkpoint_every", every, 0)
    if legacy.get("workdir") is None:
        return checkpoint  # (a fingerprint without a work directory names nothing to resume)
    if checkpoint is not None:
        raise TypeError("pass either checkpoint=Checkpointing(...) or workdir=..., not both")
    return Checkpointing(legacy["workdir"], every, dict(legacy.get("fingerprint") or {}))


def run(loss_fn: Callable, params, tx: optax.GradientTransformation, steps: int, **options) -> Result:
    """One run: ``Runner(loss_fn, tx, <program, layout, schedule options>).run(params, steps, <run options>)``.

    Program options ``metrics``, ``recorders``, ``has_aux``, ``batches``; layout options ``batched``,
    ``data_batched``, ``shard``, ``members``, ``unroll``; schedule options ``chunk_size``,
    ``record_every`` (see ``Program``, ``Layout``, ``Schedule``). Run options: ``data``, ``opt_state``,
    ``tol``, ``checkpoint`` (or ``workdir``, ``checkpoint_every``, ``fingerprint``), ``on_divergence``,
    ``progress``, ``desc``, ``key`` (see ``Runner.run``). Build a ``Runner`` yourself to run one program
    several times without compiling it again.
    """
    options = dict(options)
    run_options = _pick(options, RUN_OPTIONS)
    return Runner(loss_fn, tx, **options).run(params, steps, **run_options)
