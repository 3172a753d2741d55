"""The run context the harness hands every experiment: ``run(config, ctx) -> metrics``.

``lrjax run`` (``cli.run_config``) builds one ``RunContext`` per run, after the config is validated and the
work directory claimed, and calls the experiment inside ``precision(ctx.dtype_name)``: an experiment never
enters precision itself, never derives the run's identity and never builds paths by hand. It reads as:
build the task, call the recipe, report.

- ``ctx.workdir``: the run's directory (``os.fspath(ctx)`` is the same, so ``Path(ctx)`` works);
- ``ctx.dtype``: the dtype the run computes in, from the config's ``dtype`` key or the experiment's ``DTYPE``
  (default float32), with 64-bit types enabled exactly when it is float64;
- ``ctx.identity``: the config keys that change the trajectory (``Schema.fixed``), derived once: every
  checkpoint of the run carries it, so "is this the same run?" is the schema's answer everywhere;
- ``ctx.checkpoints(name=None, **more) -> dynamics.Checkpointing``: where one training run of the experiment
  checkpoints (``workdir``, or ``workdir/checkpoints/<name>`` for one of several) with the identity
  (plus ``more``, e.g. the depth of one of several networks) and the config's ``checkpoint_every``;
- ``ctx.figure(name) -> Path`` (``workdir/figures/<name>.png``), ``ctx.save_arrays(**arrays)``
  (``trajectory.npz``, written atomically), ``ctx.child(name)`` (a sub-run's context in a subfolder);
- ``ctx.writes``: False on the processes of a multi-process run other than 0, whose work directory is a
  scratch folder that is deleted.
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Mapping

from lrjax.dynamics.resume import Checkpointing
from lrjax.harness.figures import figure_path
from lrjax.io.files import save_npz


def safe_name(label: str) -> str:
    """``label`` as a file name: every run of characters other than ``A-Za-z0-9.=_-`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9.=_-]+", "_", label)


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What an experiment's ``run(config, ctx)`` is given (module docstring)."""

    workdir: Path
    identity: Mapping[str, Any]
    dtype_name: str = "float32"
    checkpoint_every: int = 10
    writes: bool = True

    def __fspath__(self) -> str:
        return os.fspath(self.workdir)

    @property
    def dtype(self):
        import jax.numpy as jnp
        return jnp.dtype(self.dtype_name)

    def checkpoints(self, name: str | None = None, *, every: int | None = None, **more) -> Checkpointing:
        """Where one training run checkpoints: ``workdir`` (``name=None``: the experiment's only run) or
        ``workdir/checkpoints/<safe name>``; identified by ``identity`` plus ``more``."""
        directory = self.workdir if name is None else self.workdir / "checkpoints" / safe_name(name)
        return Checkpointing(directory, self.checkpoint_every if every is None else every,
                             {**self.identity, **more})

    def figure(self, name: str) -> Path:
        """``workdir/figures/<name>.png`` (folder created)."""
        return figure_path(self.workdir, name)

    def save_arrays(self, name: str = "trajectory", **arrays) -> Path:
        """``workdir/<name>.npz`` holding ``arrays``, written atomically."""
        return save_npz(self.workdir / f"{name}.npz", **arrays)

    def child(self, name: str) -> "RunContext":
        """The context of a sub-run in ``workdir/<name>`` (same identity, dtype and cadence)."""
        return dataclasses.replace(self, workdir=self.workdir / name)
