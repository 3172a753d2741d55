"""Files lrjax writes and the lock it holds: JSON and text written atomically (temporary file, then
rename, so a kill never leaves half a file), and an exclusive lock per work or checkpoint directory."""
from __future__ import annotations

import fcntl
import json
import math
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np


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


def finite_or_null(x: Any) -> Any:
    """``x`` (already JSON types) with every non-finite float (NaN, +-inf) replaced by ``None``."""
    if isinstance(x, dict):
        return {k: finite_or_null(v) for k, v in x.items()}
    if isinstance(x, list):
        return [finite_or_null(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, strict JSON, atomically: NaN and +-inf are written as ``null`` (Python's
    ``NaN``/``Infinity`` tokens are not JSON, and other readers such as ``jq`` reject them)."""
    text = json.dumps(finite_or_null(to_jsonable(obj)), indent=2, sort_keys=True, allow_nan=False)
    write_text(path, text + "\n")


def save_npz(path: str | os.PathLike, **arrays) -> Path:
    """``np.savez(path, **arrays)`` atomically (temporary file, then rename): a kill leaves the old file or
    the new one, never half of one. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
    return path
