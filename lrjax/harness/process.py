"""Process-wide settings and numerics of a run, in one place.

``setup_process()`` is the one explicit call that changes process-wide state; the entry points make it
(``lrjax`` on the command line, the tests' ``conftest.py``, the notebooks' first cell) and library code
never does. ``precision(dtype)`` scopes 64-bit types to a block; ``peak_memory_mb()`` reports memory.
This module imports nothing heavy at import time, so ``setup_process()`` can run before numpy and jax load.
"""
from __future__ import annotations

import contextlib
import os

XLA_CPU_SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def avoid_xla_cpu_deadlock() -> None:
    """Add ``XLA_CPU_SCHEDULER_FLAG`` to ``$XLA_FLAGS`` (call before the first computation; ``lrjax run`` and
    the tests do). XLA:CPU (jax 0.10.2) hangs, every thread idle, running a program with two or more batched
    LAPACK calls of size >= 300 (``jit(vmap(...))`` of a depth-2 ``deep`` init at 384 x 384, the few-shot
    Deep LoRA init, vmapped SVDs of the update spectra); its concurrency-optimized scheduler is what
    overlaps them (reproduced; either this flag or ``--xla_cpu_multi_thread_eigen=false`` avoids it)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_enable_concurrency_optimized_scheduler" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {XLA_CPU_SCHEDULER_FLAG}".strip()


def setup_process() -> None:
    """Set this process's switches before its first computation; an environment variable you set yourself wins.

    - ``OPENBLAS_NUM_THREADS=1``: on CPU, XLA runs its own thread pool while LAPACK calls (QR, eigh, SVD
      inside compiled loops) go to OpenBLAS, whose spinning worker threads then compete with XLA's:
      measured on 2 cores, a 1000 x 22 QR in a GD loop doubled the step time. Takes effect only when set
      before numpy/scipy load OpenBLAS, so call this first.
    - ``XLA_CPU_SCHEDULER_FLAG`` in ``XLA_FLAGS`` (``avoid_xla_cpu_deadlock``); read when jax starts its
      CPU backend.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    avoid_xla_cpu_deadlock()


DTYPES = ("float32", "float64")


@contextlib.contextmanager
def precision(dtype: str):
    """``with precision("float64") as dtype:``: the block runs with 64-bit types enabled exactly when
    ``dtype`` is float64 (``jax.enable_x64``, undone on exit: no process-wide switch); yields the dtype."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    import jax
    with jax.enable_x64(dtype == "float64"):
        yield jax.numpy.dtype(dtype)


def peak_memory_mb() -> float:
    """Peak memory so far in MiB: the device's peak bytes in use on an accelerator, else this process's
    peak resident set size (``getrusage``; Linux reports KiB)."""
    import jax
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            return stats["peak_bytes_in_use"] / 2 ** 20
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
