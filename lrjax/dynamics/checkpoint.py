"""Atomic checkpoints of a run's state with orbax, plus the trajectory recorded so far.

Layout under ``directory``: orbax step folders ``<step>/`` holding ``{"leaves": [...]}`` (the flattened
``(params, opt_state)``; the tree structure comes from the caller's template, so any pytree, ``Bound``
included, round-trips) and ``trajectory_<step>.npz`` written first with write-then-rename. Orbax
commits a step folder atomically (temporary name, then rename), so a process killed mid-save leaves the
previous checkpoint as the latest complete one.
"""
from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp


class Checkpointer:
    """Save and restore ``(state, trajectory)`` pairs keyed by step; keeps the last ``max_to_keep``."""

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 2):
        self.directory = Path(directory).absolute()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.manager = ocp.CheckpointManager(self.directory,
                                             options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, trajectory: dict[str, np.ndarray]) -> None:
        tmp = self.directory / f".trajectory_{step}.npz.tmp"
        with open(tmp, "wb") as f:
            np.savez(f, **trajectory)
        os.replace(tmp, self.directory / f"trajectory_{step}.npz")
        leaves = [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]
        self.manager.save(step, args=ocp.args.StandardSave({"leaves": leaves}), force=True)
        self.manager.wait_until_finished()
        kept = set(self.manager.all_steps())
        for p in self.directory.glob("trajectory_*.npz"):
            if int(p.stem.split("_")[1]) not in kept:
                p.unlink(missing_ok=True)

    def restore(self, template, step: int | None = None):
        """``(step, state, trajectory)`` of the latest (or given) checkpoint, shaped like ``template``."""
        step = self.latest_step() if step is None else step
        if step is None:
            return None
        leaves, treedef = jax.tree.flatten(template)
        abstract = {"leaves": [jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype) for x in leaves]}
        restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        state = jax.tree.unflatten(treedef, [np.asarray(x) for x in restored["leaves"]])
        with np.load(self.directory / f"trajectory_{step}.npz") as z:
            trajectory = {k: z[k] for k in z.files}
        return step, state, trajectory

    def close(self):
        self.manager.close()
