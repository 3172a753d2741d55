"""The pure part of gradient-descent dynamics: what one step does and what is recorded, as functions that
``jit``, ``vmap``, ``lax.scan`` and ``distributed.sweep`` can take.

``Program(loss_fn, tx, metrics=..., recorders=..., has_aux=..., batches=...)`` is a small frozen value:

- ``program.init(params, opt_state=None) -> state``: ``{"params", "opt_state", "trackers"}`` (``opt_state``
  is ``tx.init`` of the floating-point leaves; ``trackers`` the stateful recorders' states);
- ``program.segment(n_blocks, block_len, recording, has_data, n) -> f(state, data, start) -> (state, scalars,
  records)``: ``n_blocks * block_len`` steps from step ``start``; ``scalars`` per step ``(n_blocks *
  block_len,)`` (``loss``, the loss function's aux values, ``metrics``), ``records`` ``(n_blocks, ...)``
  (each recorder at the start of each block when ``recording``);
- ``program.train(state, data, steps, record_every) -> (state, scalars, records)``: a whole run of ``steps``
  steps (a multiple of ``record_every``) with records every ``record_every`` steps and once more on the final
  parameters (``records`` ``(steps / record_every + 1, ...)``), as one pure function.

Per step it records the loss (and ``metrics``) at the parameters *before* the step. A recorder is a pure
function of the parameters (e.g. spectra), a ``with_data(fn)`` function ``fn(params, data)`` (e.g. a test
error), or a stateful tracker (``init(params) -> state``, ``update(state, params) -> (state, value)``,
e.g. warm-started top-k subspace iteration) whose state rides in the carry. Only the floating-point leaves
of the parameters are differentiated and updated; integer leaves (an nnx RNG count, a key) ride along.
With ``batches=Minibatches(batch_size)`` each step draws a minibatch on the device (``minibatch``) and the
state holds a run key (``"key"``); then ``loss_fn(params, batch, key)``.

The host side (checkpoints, progress, divergence, history, seeds over devices) is ``runner.Runner``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import numpy as np
import optax

from lrjax.dynamics import minibatch


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


def _is_trained(x) -> bool:
    dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
    return jax.dtypes.issubdtype(dtype, np.inexact)


def trainable_part(tree):
    """``tree`` with ``None`` in place of every leaf that is not floating point (those are not trained)."""
    return jax.tree.map(lambda x: x if _is_trained(x) else None, tree)


def with_trainable(part, tree):
    """``tree`` with its floating-point leaves taken from ``part`` (the inverse of ``trainable_part``)."""
    return jax.tree.map(lambda p, x: x if p is None else p, part, tree, is_leaf=lambda v: v is None)


def _sorted_items(mapping: Mapping | tuple | None) -> tuple:
    if mapping is None:
        return ()
    return tuple(sorted(mapping.items() if isinstance(mapping, Mapping) else mapping))


@dataclasses.dataclass(frozen=True)
class Program:
    """One GD step and its records (module docstring). ``metrics``/``recorders``: mappings ``name -> fn``
    (stored sorted by name); ``has_aux``: ``loss_fn`` returns ``(loss, {name: scalar})``; ``batches``: a
    ``Minibatches`` (then ``loss_fn(params, batch, key)`` and ``metric(params, batch)``)."""

    loss_fn: Callable
    tx: optax.GradientTransformation
    metrics: Any = ()
    recorders: Any = ()
    has_aux: bool = False
    batches: minibatch.Minibatches | None = None

    def __post_init__(self):
        object.__setattr__(self, "metrics", _sorted_items(self.metrics))
        object.__setattr__(self, "recorders", _sorted_items(self.recorders))
        if self.batches is not None and not isinstance(self.batches, minibatch.Minibatches):
            raise TypeError(f"batches must be a dynamics.Minibatches, got {self.batches!r}")

    def init(self, params, opt_state=None) -> dict:
        """The initial state ``{"params", "opt_state", "trackers"}`` of one member (pure)."""
        if opt_state is None:
            opt_state = self.tx.init(trainable_part(params))
        return {"params": params, "opt_state": opt_state, "trackers": init_trackers(self.recorders, params)}

    def record(self, state, data=None) -> dict:
        """The recorders on ``state["params"]`` (stateful ones advanced from ``state["trackers"]``)."""
        return record(self.recorders, state["trackers"], state["params"], data)[1]

    def segment(self, n_blocks: int, block_len: int, recording: bool, has_data: bool, n: int | None = None,
                unroll: bool = False) -> Callable:
        """``(state, data, start) -> (state, scalars, records)`` for ``n_blocks * block_len`` steps from step
        ``start``, recording at the start of each block when ``recording`` (module docstring); ``n``: the
        number of training examples of minibatch runs; ``unroll``: straight-line steps (no XLA while loop)."""
        loss_fn, tx, has_aux, metric_fns, mb = self.loss_fn, self.tx, self.has_aux, dict(self.metrics), self.batches
        recorders = self.recorders

        def objective_args(data, t, order, keys):
            """The loss function's extra arguments and the per-step metrics' ones."""
            if mb is None:
                args = (data,) if has_data else ()
                return args, args
            batch = minibatch.take_batch(mb, data[mb.train], order, t, n)
            return (batch, jax.random.fold_in(keys[1], t)), (batch,)

        def step(carry, data, keys):
            p, s, t, order = carry
            if mb is not None:
                order = minibatch.order_at(mb, keys[0], order, t, n)
            loss_args, metric_args = objective_args(data, t, order, keys)
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
                trackers, values = record(recorders, trackers, state["params"], data)
            (params, opt_state, t, order), scal = jax.lax.scan(
                lambda c, _: step(c, data, keys), (state["params"], state["opt_state"], t, order), None,
                length=block_len, unroll=bool(unroll))
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

        return segment

    def train(self, state, data, steps: int, record_every: int):
        """A whole run as one pure function: ``(state, scalars (steps,), records (steps / record_every + 1,))``,
        recorders before every block of ``record_every`` steps and on the final parameters. Full-batch only
        (minibatch runs need the host driver's run key handling: ``Runner``)."""
        if self.batches is not None:
            raise ValueError("Program.train runs full-batch programs; minibatch runs go through dynamics.Runner")
        if steps % record_every:
            raise ValueError(f"steps ({steps}) must be a multiple of record_every ({record_every})")
        segment = self.segment(steps // record_every, record_every, True, data is not None)
        state, scal, rec = segment(state, data, 0)
        trackers, final = record(self.recorders, state["trackers"], state["params"], data)
        state = {**state, "trackers": trackers}
        rec = jax.tree.map(lambda r, f: jax.numpy.concatenate([r, f[None]]), rec, final)
        return state, scal, rec
