"""The compiled gradient-descent runner: ``jit(lax.scan)`` chunks, seed batches, devices, checkpoints.

``run(loss_fn, params, tx, steps)`` runs ``steps`` optimizer steps as compiled chunks of ``chunk_size``
steps with no host round-trip inside a chunk. Per step it records the loss (and ``metrics``) at the
parameters *before* the step; every ``record_every`` steps it records ``recorders``, and once more on
the final parameters. A recorder is a pure function of the parameters (e.g. spectra), a
``with_data(fn)`` function ``fn(params, data)`` (e.g. a test error), or a stateful
``Tracker`` (``init(params) -> state``, ``update(state, params) -> (state, value)``, e.g. warm-started
top-k subspace iteration) whose state rides in the compiled loop's carry and in checkpoints. Between chunks it checks the
tolerance and for NaN/inf, updates the progress bar, and checkpoints.

With ``batched=True`` every leaf of ``params`` (and of ``opt_state`` and ``data`` when given) carries a
leading axis of seeds or hyper-parameters, run as one ``vmap``-ed program. That axis is sharded across the
local devices (``jit`` with a ``NamedSharding``: members never communicate, so each device runs its slice).
On several hosts, call ``jax.distributed.initialize()`` first and build the batch as a global array
(``jax.make_array_from_process_local_data``) over a mesh of ``jax.devices()``: the same program runs
unchanged, each host holding its slice; this path is documented, not tested here.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import sys
import time
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lrjax.dynamics.checkpoint import Checkpointer


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
    """Initial states of the stateful recorders (``{}`` entries for plain functions)."""
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
    """Raised when the loss becomes NaN or inf. ``params``/``opt_state`` hold the last finite chunk state."""

    def __init__(self, step: int, last_finite_loss: float, params, opt_state, member: int | None = None):
        where = f" (batch member {member})" if member is not None else ""
        super().__init__(f"loss diverged to a non-finite value at step {step}{where}; last finite loss "
                         f"{last_finite_loss:.6g}. The last finite state (start of that chunk) is kept in "
                         "this exception and, with a workdir, in its last checkpoint")
        self.step, self.last_finite_loss, self.member = step, last_finite_loss, member
        self.params, self.opt_state = params, opt_state


@dataclasses.dataclass
class Result:
    """What a run returns. Batched runs put the batch axis first in every array.

    ``scalars``: per-step arrays ``(steps,)``: ``loss`` and each metric.
    ``records``: ``step`` ``(T,)`` (multiples of ``record_every``, then the final step) and each
    recorder's output stacked ``(T, ...)``.
    ``steps_to_tol``: first step whose loss is ``<= tol`` (``-1`` if never; ``None`` without ``tol``).
    """

    params: Any
    opt_state: Any
    scalars: dict[str, np.ndarray]
    records: dict[str, np.ndarray]
    steps: int
    steps_to_tol: int | np.ndarray | None
    wall_time: float
    resumed_from: int | None = None


def _quiet() -> bool:
    return bool(os.environ.get("LRJAX_QUIET")) or not sys.stderr.isatty()


@functools.lru_cache(maxsize=128)
def _segment_program(loss_fn, tx, metrics, recorders, has_data, batched, data_batched, n_blocks, block_len,
                     has_aux=False):
    """A jitted ``(params, opt_state, data) -> (params, opt_state, scalars, records)`` for
    ``n_blocks * block_len`` steps, recording ``recorders`` at the start of each block. Cached, so runs
    with the same (hashable) loss, transformation and shape reuse one compiled program."""
    metric_fns = dict(metrics)

    def loss(p, data):
        return loss_fn(p, data) if has_data else loss_fn(p)

    def segment(params, opt_state, tstates, data):
        def block(carry, _):
            params, opt_state, tstates = carry
            tstates, values = record(recorders, tstates, params, data)

            def step(c, _):
                p, s = c
                value, grads = jax.value_and_grad(loss, has_aux=has_aux)(p, data)
                value, aux = value if has_aux else (value, {})
                scal = {"loss": value, **aux, **{k: (f(p, data) if has_data else f(p)) for k, f in metric_fns.items()}}
                updates, s = tx.update(grads, s, p)
                return (optax.apply_updates(p, updates), s), scal

            (params, opt_state), scal = jax.lax.scan(step, (params, opt_state), None, length=block_len)
            return (params, opt_state, tstates), (scal, values)

        if n_blocks == 1:  # no outer loop: a nested scan copies the carry every step (measurably slower)
            carry, (scal, rec) = block((params, opt_state, tstates), None)
            rec = jax.tree.map(lambda x: x[None], rec)
        else:
            carry, (scal, rec) = jax.lax.scan(block, (params, opt_state, tstates), None, length=n_blocks)
            scal = jax.tree.map(lambda x: x.reshape((n_blocks * block_len,) + x.shape[2:]), scal)
        return (*carry, scal, rec)

    if batched:
        segment = jax.vmap(segment, in_axes=(0, 0, 0, 0 if data_batched else None))
    return jax.jit(segment)


@functools.lru_cache(maxsize=128)
def _tracker_programs(recorders, batched, data_batched=False):
    """Jitted ``init_trackers`` and ``record`` (vmapped when batched)."""
    init = functools.partial(init_trackers, recorders)
    rec = functools.partial(record, recorders)
    if batched:
        init, rec = jax.vmap(init), jax.vmap(rec, in_axes=(0, 0, 0 if data_batched else None))
    return jax.jit(init), jax.jit(rec)


def plan_segments(start: int, steps: int, chunk_size: int, record_every: int) -> list[tuple[int, int]]:
    """``(n_blocks, block_len)`` per compiled call covering steps ``start .. steps``; every block starts
    at a multiple of ``record_every`` (``start`` is a multiple of ``chunk_size``, itself a multiple)."""
    out, done = [], start
    while done < steps:
        n = min(chunk_size, steps - done)
        if n // record_every:
            out.append((n // record_every, record_every))
        if n % record_every:
            out.append((1, n % record_every))
        done += n
    return out


def _batch_sharding(batch: int, shard: bool):
    devices = jax.local_devices()
    k = max(d for d in range(1, len(devices) + 1) if batch % d == 0) if shard else 1
    if k == 1:
        return None
    return NamedSharding(Mesh(np.array(devices[:k]), ("batch",)), PartitionSpec("batch"))


def _check_batched(tree, name: str, batch: int | None) -> int:
    sizes = {np.shape(x)[0] if np.ndim(x) else None for x in jax.tree.leaves(tree)}
    if None in sizes or (batch is not None and sizes - {batch}) or len(sizes) > 1:
        raise ValueError(f"batched=True needs a leading batch axis of one size on every leaf of {name}; "
                         f"got leading sizes {sorted(map(str, sizes))}")
    return sizes.pop() if sizes else batch


def _concat(chunks: list[dict[str, np.ndarray]], axis: int) -> dict[str, np.ndarray]:
    if not chunks:
        return {}
    return {k: np.concatenate([c[k] for c in chunks], axis=axis) for k in chunks[0]}


def run(loss_fn: Callable, params, tx: optax.GradientTransformation, steps: int, *, data=None,
        opt_state=None, chunk_size: int = 100, record_every: int = 0,
        recorders: Mapping[str, Any] | None = None, metrics: Mapping[str, Callable] | None = None,
        tol: float | None = None, batched: bool = False, data_batched: bool = False, shard: bool = True,
        workdir: str | os.PathLike | None = None, checkpoint_every: int = 10,
        on_divergence: str = "raise", progress: bool | None = None, desc: str = "gd",
        has_aux: bool = False) -> Result:
    """Run ``steps`` steps of ``tx`` on ``loss_fn(params)`` (``loss_fn(params, data)`` when ``data`` is given).

    ``data_batched``: ``data`` has the batch axis too (else it is shared by all members).
    ``metrics``: per-step scalars ``f(params, data)`` (``f(params)`` without data), at the parameters before the step.
    ``has_aux``: ``loss_fn`` returns ``(loss, {name: scalar})``; those scalars are recorded per step too
    (sharing the loss's forward pass, unlike ``metrics``).
    ``chunk_size`` steps per compiled call (rounded up to a multiple of ``record_every``);
    ``checkpoint_every`` chunks between checkpoints under ``workdir/checkpoints`` (0: only at the end).
    Re-running with the same ``workdir`` resumes from its last checkpoint and gives bit-identical results.
    ``on_divergence``: ``"raise"`` a ``DivergenceError``, or ``"continue"`` (batched sweeps that expect
    some members to blow up).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if on_divergence not in ("raise", "continue"):
        raise ValueError(f"on_divergence must be 'raise' or 'continue', got {on_divergence!r}")
    recorders = tuple(sorted((recorders or {}).items()))
    metrics = tuple(sorted((metrics or {}).items()))
    if recorders and (not isinstance(record_every, int) or record_every <= 0):
        raise ValueError(f"recorders need a positive record_every, got {record_every!r}")
    record_every = record_every if recorders else chunk_size
    chunk_size = math.ceil(chunk_size / record_every) * record_every
    has_data = data is not None

    sharding, batch = None, None
    if batched:
        batch = _check_batched(params, "params", None)
    if opt_state is None:
        opt_state = jax.vmap(tx.init)(params) if batched else tx.init(params)
    init_program, record_program = _tracker_programs(recorders, batched, data_batched and data is not None)
    tstates = init_program(params)
    if batched:
        _check_batched(opt_state, "opt_state", batch)
        if has_data and data_batched:
            _check_batched(data, "data", batch)
        sharding = _batch_sharding(batch, shard)
    put = (lambda t: jax.device_put(t, sharding)) if sharding is not None else jax.device_put

    ckpt = Checkpointer(os.path.join(workdir, "checkpoints")) if workdir is not None else None
    start, scal_chunks, rec_chunks, resumed_from = 0, [], [], None
    if ckpt is not None and ckpt.latest_step() is not None:
        start, (params, opt_state, tstates), saved = ckpt.restore((params, opt_state, tstates))
        resumed_from = start
        scal_chunks = [c for c in [{k[2:]: v for k, v in saved.items() if k.startswith("s/")}] if c]
        rec_chunks = [c for c in [{k[2:]: v for k, v in saved.items() if k.startswith("r/")}] if c]
    params, opt_state, tstates = put(params), put(opt_state), put(tstates)
    data = (put(data) if data_batched else jax.device_put(data)) if has_data else None
    axis = 1 if batched else 0

    def trajectory():
        s, r = _concat(scal_chunks, axis), _concat(rec_chunks, axis)
        return {**{f"s/{k}": v for k, v in s.items()}, **{f"r/{k}": v for k, v in r.items()}}

    def reached(scal):
        if tol is None or "loss" not in scal:
            return False
        hit = (scal["loss"] <= tol).any(axis=-1)
        return bool(np.all(hit))

    show = (not _quiet()) if progress is None else progress
    bar = None
    if show:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, initial=start, desc=desc, unit="step", dynamic_ncols=True)
    t0, done, n_chunks = time.perf_counter(), start, 0
    stop = reached(_concat(scal_chunks, axis)) if scal_chunks else False
    try:
        for n_blocks, block_len in ([] if stop else plan_segments(start, steps, chunk_size, record_every)):
            program = _segment_program(loss_fn, tx, metrics, recorders, has_data, batched, data_batched,
                                       n_blocks, block_len, has_aux)
            new_params, new_opt_state, new_tstates, scal, rec = program(params, opt_state, tstates, data)
            scal, rec = jax.device_get((scal, rec))
            loss = np.asarray(scal["loss"])
            bad = ~np.isfinite(loss)
            if bad.any() and on_divergence == "raise":
                member = int(np.argmax(bad.any(axis=1))) if batched else None
                row = loss if member is None else loss[member]
                idx = int(np.argmax(~np.isfinite(row)))
                history = _concat(scal_chunks, axis).get("loss", np.zeros((0,)))
                finite = np.concatenate([history if member is None else history[member], row[:idx]])
                last = float(finite[-1]) if finite.size else float("nan")
                if ckpt is not None:
                    ckpt.save(done, (params, opt_state, tstates), trajectory())
                raise DivergenceError(done + idx, last, jax.device_get(params), jax.device_get(opt_state), member)
            params, opt_state, tstates = new_params, new_opt_state, new_tstates
            scal_chunks.append(scal)
            rec_chunks.append(rec)
            done += n_blocks * block_len
            if bar is not None:
                bar.update(n_blocks * block_len)
                bar.set_postfix(loss=f"{float(np.nanmean(loss[..., -1])):.3e}")
            if block_len * n_blocks == chunk_size:
                n_chunks += 1
                if ckpt is not None and checkpoint_every and n_chunks % checkpoint_every == 0:
                    ckpt.save(done, (params, opt_state, tstates), trajectory())
            if reached(scal):
                break
        if ckpt is not None and (ckpt.latest_step() != done):
            ckpt.save(done, (params, opt_state, tstates), trajectory())
    finally:
        if bar is not None:
            bar.close()
        if ckpt is not None:
            ckpt.close()
    wall = time.perf_counter() - t0

    scalars = _concat(scal_chunks, axis)
    records = _concat(rec_chunks, axis)
    if recorders:
        final = jax.device_get(record_program(tstates, params, data)[1])
        records = {k: np.concatenate([records[k], np.expand_dims(final[k], axis)], axis=axis) if k in records
                   else np.expand_dims(final[k], axis) for k in final}
        records["step"] = np.append(np.arange(0, done, record_every), done)
    steps_to_tol = None
    if tol is not None:
        hit = scalars["loss"] <= tol
        first = np.where(hit.any(axis=-1), np.argmax(hit, axis=-1), -1)
        steps_to_tol = int(first) if not batched else first
    return Result(params, opt_state, scalars, records, done, steps_to_tol, wall, resumed_from)
