"""A run's work directory: where it goes by default, whether a run may use it, continue it or restart it.

A work directory holds one run: ``config.json`` says which, and a re-run with the same directory continues
it only when the experiment's schema allows every changed key (``Schema.resume_changes``). One process at a
time holds its lock (``lrjax.io.files.DirectoryLock``). Every refusal is a one-line ``ConfigError``.
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
from pathlib import Path

from lrjax.harness.schema import ConfigError
from lrjax.io.files import DirectoryBusyError, DirectoryLock, to_jsonable

RUN_OUTPUTS = ("config.json", "metrics.json", "trajectory.npz", "figures", "checkpoints", "adapter")


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


def check_workdir(path: Path) -> None:
    """Raise ``ConfigError`` unless ``path`` is (or can be created as) a writable directory; writes nothing."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--workdir {str(path)!r} is a file, not a directory")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"--workdir {str(path)!r}: {str(parent)!r} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--workdir {str(path)!r} is not writable")


def _stored_run(path: Path) -> dict | None:
    """The config of the run a work directory holds, ``None`` when it holds none; ``ConfigError`` when it
    holds outputs that no readable ``config.json`` describes (lrjax never deletes those)."""
    record = path / "config.json"
    if record.is_file():
        try:
            stored = json.loads(record.read_text())
        except ValueError:
            stored = None
        if isinstance(stored, dict) and isinstance(stored.get("experiment"), str):
            return stored
        raise ConfigError(f"{str(record)!r} is not an lrjax run's config: cannot tell which run {str(path)!r} "
                          "holds; use a new --workdir")
    if any((path / name).exists() for name in RUN_OUTPUTS):
        raise ConfigError(f"{str(path)!r} holds run outputs but no config.json: cannot tell which run they belong "
                          "to; use a new --workdir (or delete them yourself)")
    return None


def compare_with_stored(path: Path, config_dict: dict, schema) -> list[str]:
    """Refuse (``ConfigError``) unless the run stored in ``path`` may be continued with ``config_dict``;
    returns the allowed changes (``"key: old -> new"``)."""
    stored = _stored_run(path)
    if stored is None:
        return []
    mine = json.loads(json.dumps(to_jsonable(config_dict)))
    if stored.get("experiment") != mine.get("experiment"):
        raise ConfigError(f"{str(path)!r} holds a run of experiment {stored.get('experiment')!r}, not "
                          f"{mine.get('experiment')!r}; use a new --workdir, or --restart to start over")
    refused, allowed = schema.resume_changes({k: v for k, v in stored.items() if k != "experiment"},
                                             {k: v for k, v in mine.items() if k != "experiment"})
    if refused:
        raise ConfigError(f"{str(path)!r} holds a run with a different config ({'; '.join(refused)}): use a new "
                          "--workdir, or --restart to discard that run and start over")
    return allowed


def restart(path: Path) -> None:
    """Delete a previous run's outputs (only the files lrjax writes) from ``path``, and only when a readable
    ``config.json`` says they are an lrjax run's (else ``ConfigError``, deleting nothing)."""
    if _stored_run(path) is None:
        return
    for name in sorted(RUN_OUTPUTS, key=lambda n: n == "config.json"):  # config.json last: an interrupted
        p = path / name                                                  # restart can be restarted again
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def claim_workdir(out: Path, config_dict: dict, schema, fresh: bool) -> tuple[DirectoryLock, list[str]]:
    """Check ``out`` (``check_workdir``, the stored run: ``compare_with_stored``), take its lock and, with
    ``fresh`` (``--restart``), clear it; returns the held lock and the changed keys the stored run allows.
    The checks refuse (``ConfigError``) before anything in ``out`` is touched; anything raised once the lock
    is taken releases it."""
    check_workdir(out)
    if fresh:
        _stored_run(out)  # refuses outputs it cannot identify before anything is touched
    else:
        compare_with_stored(out, config_dict, schema)
    try:
        lock = DirectoryLock(out).acquire()
    except DirectoryBusyError as e:
        raise ConfigError(f"work directory {e}") from None
    except OSError as e:
        raise ConfigError(f"--workdir {str(out)!r} cannot be used: {e.strerror or e}") from None
    try:
        if fresh:
            restart(out)
        allowed = compare_with_stored(out, config_dict, schema)  # again, now that we hold the lock
    except BaseException:
        lock.release()
        raise
    return lock, allowed
