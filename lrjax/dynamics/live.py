"""Streaming a run's per-step values while it trains (what feeds TensorBoard in ``lrjax run``).

``with streaming_to(sink):`` makes every ``Runner`` inside the block call ``sink(label, first_step, scalars,
records, record_steps)`` after each chunk: ``label`` the runner's ``desc``, ``first_step`` the step count
before the chunk, ``scalars`` ``{name: (steps,)}`` or ``(seeds, steps)`` (batched) host arrays of that chunk
(value ``i`` is after step ``first_step + i + 1``), ``records`` the chunk's recorder outputs ``{name:
(records, ...)}`` or ``(seeds, records, ...)`` taken at ``record_steps`` (both None when it recorded nothing). A context variable scoped to the block; outside one, runners stream nothing.

``with counting_compile() as seconds:`` sums, in ``seconds[0]``, the compile time of every runner in the
block (the run's ``compile_s`` in its provenance).
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Callable

_SINK: contextvars.ContextVar[Callable | None] = contextvars.ContextVar("lrjax_live_sink", default=None)


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


_COMPILE: contextvars.ContextVar[list | None] = contextvars.ContextVar("lrjax_compile_seconds", default=None)


@contextlib.contextmanager
def counting_compile():
    total = [0.0]
    token = _COMPILE.set(total)
    try:
        yield total
    finally:
        _COMPILE.reset(token)


def add_compile_seconds(seconds: float) -> None:
    """Called by runners for each compilation (nothing outside a ``counting_compile`` block)."""
    total = _COMPILE.get()
    if total is not None:
        total[0] += seconds
