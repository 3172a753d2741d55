"""Where a run's numbers came from, recorded in every ``metrics.json`` as ``provenance``.

``collect(started, finished)`` -> ``{"lrjax_version", "git_commit", "git_dirty", "jax_version",
"jaxlib_version", "flax_version", "optax_version", "python_version", "device_kind", "device_count",
"platform", "host", "started", "finished", "wall_s"}``: times as ISO 8601 UTC strings (``started`` and
``finished`` are ``time.time()`` values; ``lrjax run`` adds ``compile_s`` and ``stream_s``, the runners' compile time
and the time they spent streaming to TensorBoard, ``lrjax.dynamics.live``);
``git_commit`` is the repository's HEAD (None outside a git checkout) and ``git_dirty`` whether tracked
files differ from it.
"""
from __future__ import annotations

import datetime
import platform
import socket
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import jax

import lrjax

ROOT = Path(__file__).resolve().parents[2]


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="seconds")


def collect(started: float, finished: float) -> dict:
    """The provenance of a run that ran from ``started`` to ``finished`` (module docstring)."""
    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    devices = jax.devices()
    return {"lrjax_version": lrjax.__version__, "git_commit": commit,
            "git_dirty": None if commit is None or dirty is None else bool(dirty),
            "jax_version": jax.__version__, "jaxlib_version": _version("jaxlib"), "flax_version": _version("flax"),
            "optax_version": _version("optax"), "python_version": platform.python_version(),
            "device_kind": devices[0].device_kind, "device_count": len(devices), "platform": devices[0].platform,
            "host": socket.gethostname(), "started": _iso(started), "finished": _iso(finished),
            "wall_s": finished - started}
