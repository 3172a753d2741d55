"""Helpers every experiment uses: work directories and their lock, JSON output, figures, precision."""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np


def default_workdir(experiment: str) -> Path:
    """Create and return ``runs/<experiment>/<YYYYmmdd-HHMMSS>`` under the current directory (``-2``,
    ``-3``, ... appended when that folder exists: it is taken by ``mkdir``, so two runs started in the
    same second never share one)."""
    base = Path("runs") / experiment / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base.parent.mkdir(parents=True, exist_ok=True)
    path, n = base, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")


def first_line(e: BaseException, with_type: bool = True) -> str:
    """An exception in one line: ``"TypeName: first line of its message"`` (without the type name when
    ``with_type=False``)."""
    text = str(e).strip()
    if not text:
        return type(e).__name__
    return f"{type(e).__name__}: {text.splitlines()[0]}" if with_type else text.splitlines()[0]


class DirectoryBusyError(RuntimeError):
    """Another process holds the lock of a work or checkpoint directory."""


class DirectoryLock:
    """An exclusive ``flock`` on ``directory/.lock`` (the file keeps the holder's pid for the message).

    The operating system releases it when the process ends, killed or not, so a crashed run never leaves a
    stale lock. ``acquire`` raises ``DirectoryBusyError`` at once when another process holds it.
    """

    def __init__(self, directory: str | os.PathLike):
        self.path = Path(directory) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> "DirectoryLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DirectoryBusyError(f"{str(self.path.parent)!r} is in use by another lrjax process (pid {holder}); "
                                     "wait for it to finish or use another directory") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def to_jsonable(x: Any) -> Any:
    """Numpy/JAX scalars and arrays to Python numbers and lists (NaN/inf kept as floats)."""
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, (np.ndarray, jax.Array)):
        return to_jsonable(np.asarray(x).tolist())
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    return x


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=True) + "\n")


def figure_path(workdir: str | os.PathLike, name: str) -> Path:
    """``workdir/figures/<name>.png`` (folder created)."""
    d = Path(workdir) / "figures"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{name}.png"


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path, dpi: int = 110) -> None:
    """Tight layout, write ``path``, close the figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    import matplotlib.pyplot as plt
    plt.close(fig)


DTYPES = ("float32", "float64")


@contextlib.contextmanager
def precision(dtype: str):
    """``with precision("float64") as dtype:``: the block runs with 64-bit types enabled exactly when
    ``dtype`` is float64 (``jax.enable_x64``, undone on exit: no process-wide switch); yields the dtype."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    with jax.enable_x64(dtype == "float64"):
        yield jax.numpy.dtype(dtype)


def peak_memory_mb() -> float:
    """Peak memory so far in MiB: the device's peak bytes in use on an accelerator, else this process's
    peak resident set size (``getrusage``; Linux reports KiB)."""
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            return stats["peak_bytes_in_use"] / 2 ** 20
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
