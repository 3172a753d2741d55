"""Streaming a run's per-step values while it trains (what feeds TensorBoard in ``lrjax run``).

``with streaming_to(sink):`` makes every ``Runner`` inside the block call ``sink(label, first_step, scalars,
records, record_steps)`` after each chunk: ``label`` the runner's ``desc``, ``first_step`` the step count
before the chunk, ``scalars`` ``{name: (steps,)}`` or ``(seeds, steps)`` (batched) host arrays of that chunk
(value ``i`` is after step ``first_step + i + 1``), ``records`` the chunk's recorder outputs ``{name:
(records, ...)}`` or ``(seeds, records, ...)`` taken at ``record_steps`` (both None when it recorded
nothing). The runner leaves the sink's time out of its ``wall_time`` (so ``steps_per_s`` is training only)
and counts it as ``stream_s``. A context variable scoped to the block; outside one, runners stream nothing.

``with counting() as seconds:`` sums, in ``seconds["compile_s"]`` and ``seconds["stream_s"]``, the compile
time and the sink time of every runner in the block (the run's provenance).
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Callable

_SINK: contextvars.ContextVar[Callable | None] = contextvars.ContextVar("lrjax_live_sink", default=None)
_SECONDS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("lrjax_live_seconds", default=None)
KINDS = ("compile_s", "stream_s")


@contextlib.contextmanager
def streaming_to(sink: Callable):
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)


def current() -> Callable | None:
    """The sink of the enclosing ``streaming_to`` block, or None."""
    return _SINK.get()


@contextlib.contextmanager
def counting():
    totals = dict.fromkeys(KINDS, 0.0)
    token = _SECONDS.set(totals)
    try:
        yield totals
    finally:
        _SECONDS.reset(token)


def count(kind: str, seconds: float) -> None:
    """Called by runners (``kind`` in ``KINDS``); nothing outside a ``counting`` block."""
    totals = _SECONDS.get()
    if totals is not None:
        totals[kind] += seconds
