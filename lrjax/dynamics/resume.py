"""Is this the same run? Where a run keeps its checkpoints, what identifies it, and resuming only that run.

``Checkpointing(directory, every, identity)`` says where (``directory/checkpoints``, verified with
checksums: ``lrjax.io.checkpoint``), how often (every ``every`` compiled chunks; 0: only at the end) and
which run (``identity``: JSON-able values, e.g. the config keys that change the trajectory, which the
harness's run context derives from the experiment's schema once). A run resumes from the newest intact
checkpoint only when its fingerprint equals the stored one: the initial state's and the data's structure
and SHA-256, the program's layout (``Runner.describe_program``) and ``identity``; otherwise
``ResumeError`` names what differs. ``steps`` and ``tol`` are not part of it: a longer run continues where a
shorter one stopped (a shorter one than the checkpoint is refused).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import jax
import numpy as np

from lrjax.io.checkpoint import Checkpointer, host_array
from lrjax.io.files import to_jsonable, write_json


class ResumeError(ValueError):
    """The checkpoints in a work directory belong to a different run (or to a longer one)."""


@dataclasses.dataclass(frozen=True)
class Checkpointing:
    """Checkpoints under ``directory/checkpoints`` every ``every`` chunks (0: only at the end), of the run
    named by ``identity`` (module docstring)."""

    directory: str | os.PathLike
    every: int = 10
    identity: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 0:
            raise ValueError(f"checkpoint_every must be an integer >= 0, got {self.every!r}")

    def open(self) -> Checkpointer:
        """The directory's ``Checkpointer``, holding its lock."""
        return Checkpointer(Path(self.directory) / "checkpoints", lock=True)


def _dtype(x) -> str:
    return str(getattr(x, "dtype", type(x).__name__))


def describe(tree) -> dict:
    """Structure, shapes, dtypes and SHA-256 of a pytree's values (the part of a fingerprint it gives)."""
    leaves, treedef = jax.tree.flatten(tree)
    digest = hashlib.sha256()
    for leaf in leaves:
        a = np.ascontiguousarray(host_array(leaf))
        digest.update(f"{a.dtype}{a.shape}".encode())
        digest.update(a.tobytes())
    return {"structure": str(treedef), "leaves": [[list(np.shape(x)), _dtype(x)] for x in leaves],
            "sha256": digest.hexdigest()}


def fingerprint(state, data, program: Mapping, identity: Mapping | None) -> dict:
    """The run's fingerprint: its initial state and data (``describe``), the program's layout, ``identity``."""
    return {"state": describe(state), "data": describe(data) if data is not None else None, **program,
            "user": to_jsonable(dict(identity or {}))}


def fingerprint_diff(old: Mapping, new: Mapping, prefix: str = "") -> list[str]:
    """Human-readable differences between two fingerprints (``[]`` when equal)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if a == b:
            continue
        name = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            if prefix == "" and key in ("state", "data"):
                part = "structure or shapes" if a.get("structure") != b.get("structure") or \
                    a.get("leaves") != b.get("leaves") else "values"
                out.append(f"the initial {key} ({part})" if key == "state" else f"the data ({part})")
            else:
                out += fingerprint_diff(a, b, f"{name}.")
        else:
            out.append(f"{name} {a!r} -> {b!r}")
    return out


def restore(ckpt: Checkpointer, state, mine: dict, steps: int):
    """``(start, state, saved trajectory)`` from the newest intact checkpoint of the run whose fingerprint is
    ``mine``, or ``(0, state, {})`` when there is none (``mine`` is then stored); ``ResumeError`` when the
    checkpoints are another run's or past ``steps``."""
    path = ckpt.directory / "fingerprint.json"
    mine = json.loads(json.dumps(mine))
    if not ckpt.all_steps():
        write_json(path, mine)
        return 0, state, {}
    if not path.is_file():
        raise ResumeError(f"{ckpt.directory} holds checkpoints without a fingerprint: cannot tell whether they "
                          "belong to this run; use another work directory or delete that one")
    try:
        stored = json.loads(path.read_text())
    except ValueError:
        stored = None
    if not isinstance(stored, dict):
        raise ResumeError(f"{path} is unreadable: cannot tell whether the checkpoints beside it belong to this "
                          "run; use another work directory or delete that one")
    diff = fingerprint_diff(stored, mine)
    if diff:
        raise ResumeError(f"{ckpt.directory} holds checkpoints of a different run ({'; '.join(diff)}); use "
                          "another work directory, or delete that one to start over")
    start, host_state, saved = ckpt.restore(state)
    if start > steps:
        raise ResumeError(f"the checkpoint in {ckpt.directory} is at step {start}, past steps={steps}: ask for "
                          f"at least {start} steps, or use another work directory")
    return start, host_state, saved
