"""Atomic, verified checkpoints of a run's state with orbax, plus the trajectory recorded so far.

Layout under ``directory``:

- ``<step>/``: orbax step folders holding ``{"leaves": [...]}`` (the flattened state; the tree structure
  comes from the caller's template, so any pytree, ``Bound`` included, round-trips). Orbax commits a step
  folder atomically (temporary name, then rename);
- ``trajectory_<step>.npz``: the per-step scalars (``s/...``) and records (``r/...``) up to ``step``, and the
  execution seconds and steps timed so far (``t/wall_s``, ``t/steps``; write, then rename);
- ``checksums_<step>.json``: the SHA-256 of every file of that step (step folder and trajectory), written
  last, after orbax reports the save complete. A step without it never finished saving; one that is not a
  JSON object, or that does not list exactly the step's files, marks the step corrupt;
- ``fingerprint.json``: what the run that owns these checkpoints was (see ``lrjax.dynamics.resume``);
- ``.lock``: held (``flock``) by the one process that runs here.

``restore`` verifies the newest step against its checksums and falls back to the newest intact one with
a ``CheckpointWarning`` (removing the broken ones, so a resumed run can save those steps again); when no
step is intact it raises ``CheckpointError``. A corrupt state is never resumed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from lrjax.io.files import DirectoryLock, first_line, save_npz, write_json


class CheckpointError(RuntimeError):
    """No intact checkpoint to resume from, or a directory that cannot hold checkpoints."""


class CheckpointWarning(UserWarning):
    """A checkpoint step failed verification and was skipped."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def host_array(x) -> np.ndarray:
    """A state leaf as it is stored: a numpy array (PRNG key arrays as their raw key data)."""
    return np.asarray(jax.device_get(jax.random.key_data(x) if _is_key(x) else x))


def _cooked(raw: np.ndarray, template):
    """The inverse of ``host_array`` for a leaf shaped like ``template``."""
    return jax.random.wrap_key_data(raw, impl=jax.random.key_impl(template)) if _is_key(template) else raw


class Checkpointer:
    """Save and restore ``(state, trajectory)`` pairs keyed by step; keeps the last ``max_to_keep``.

    ``lock=True`` takes the directory's lock for the checkpointer's lifetime (``close`` releases it): a
    second process opening the same directory gets ``lrjax.io.files.DirectoryBusyError``.
    """

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 2, lock: bool = False):
        self.directory = Path(directory).absolute()
        if self.directory.exists() and not self.directory.is_dir():
            raise CheckpointError(f"checkpoint directory {str(self.directory)!r} is a file")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.lock = DirectoryLock(self.directory).acquire() if lock else None
        try:
            self.manager = ocp.CheckpointManager(self.directory,
                                                 options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep))
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        """The newest step folder (verified or not: ``restore`` verifies)."""
        return self.manager.latest_step()

    def _files(self, step: int) -> list[Path]:
        folder = self.directory / str(step)
        return sorted(p for p in folder.rglob("*") if p.is_file()) + [self.directory / f"trajectory_{step}.npz"]

    def save(self, step: int, state, trajectory: dict[str, np.ndarray]) -> None:
        """Save ``state`` (any pytree) and ``trajectory`` at ``step``; a step already saved is left as it is
        (a deterministic run reaches the same state there)."""
        if step in self.manager.all_steps() and (self.directory / f"checksums_{step}.json").is_file():
            return
        save_npz(self.directory / f"trajectory_{step}.npz", **trajectory)
        leaves = [host_array(x) for x in jax.tree.leaves(state)]
        self.manager.save(step, args=ocp.args.StandardSave({"leaves": leaves}), force=True)
        self.manager.wait_until_finished()
        sums = {str(p.relative_to(self.directory)): _sha256(p) for p in self._files(step)}
        write_json(self.directory / f"checksums_{step}.json", sums)
        self._prune()

    def _prune(self) -> None:
        """Remove trajectory and checksum files of steps orbax no longer keeps."""
        kept = set(self.manager.all_steps())
        for pattern in ("trajectory_*.npz", "checksums_*.json"):
            for p in self.directory.glob(pattern):
                if int(p.stem.split("_")[1]) not in kept:
                    p.unlink(missing_ok=True)

    def verify(self, step: int) -> str | None:
        """``None`` if the checksums of ``step`` list exactly its files (those of its folder and its trajectory)
        and each matches, else what is wrong (one line)."""
        manifest = self.directory / f"checksums_{step}.json"
        if not manifest.is_file():
            return "no checksums (the save never completed)"
        try:
            sums = json.loads(manifest.read_text())
        except ValueError:
            return "unreadable checksums file"
        if not isinstance(sums, dict) or not all(isinstance(d, str) for d in sums.values()):
            return "checksums file is not a JSON object of file: SHA-256"
        files = {str(p.relative_to(self.directory)): p for p in self._files(step)}
        if len(files) == 1:
            return f"step folder {step} holds no files"
        if extra := sorted(sums.keys() - files.keys()):
            return f"file {extra[0]} is missing" if extra[0].startswith(f"{step}/") else \
                f"checksums list {extra[0]}, which is not a file of step {step}"
        for rel, path in files.items():
            if not path.is_file():
                return f"file {rel} is missing"
            if rel not in sums:
                return f"file {rel} is not in the checksums"
            if _sha256(path) != sums[rel]:
                return f"file {rel} does not match its checksum"
        return None

    def _remove(self, step: int) -> None:
        shutil.rmtree(self.directory / str(step), ignore_errors=True)
        for name in (f"trajectory_{step}.npz", f"checksums_{step}.json"):
            (self.directory / name).unlink(missing_ok=True)
        self.manager.reload()

    def restore(self, template):
        """``(step, state, trajectory)`` of the newest intact checkpoint, shaped like ``template``; ``None``
        when there is none at all. Broken newer steps are removed with a ``CheckpointWarning``."""
        steps = sorted(self.manager.all_steps(), reverse=True)
        if not steps:
            return None
        leaves, treedef = jax.tree.flatten(template)
        abstract = {"leaves": [jax.ShapeDtypeStruct(np.shape(r), r.dtype) for r in map(host_array, leaves)]}
        problems = []
        for step in steps:
            problem = self.verify(step)
            if problem is not None:
                problems.append(f"step {step}: {problem}")
                continue
            try:
                restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
                with np.load(self.directory / f"trajectory_{step}.npz") as z:
                    trajectory = {k: z[k] for k in z.files}
            except Exception as e:  # noqa: BLE001 - intact files that do not fit this run's state
                raise CheckpointError(f"checkpoint step {step} in {self.directory} is intact but does not fit this "
                                      f"run's state ({first_line(e)}); use another directory") from None
            if problems:
                warnings.warn(f"checkpoints in {self.directory} failed verification ({'; '.join(problems)}); "
                              f"removed them and resuming from step {step}", CheckpointWarning, stacklevel=2)
                for bad in steps[:steps.index(step)]:
                    self._remove(bad)
            state = jax.tree.unflatten(treedef, [_cooked(np.asarray(r), t) for r, t in zip(restored["leaves"], leaves)])
            return step, state, trajectory
        raise CheckpointError(f"no intact checkpoint in {self.directory} ({'; '.join(problems)}); delete that "
                              "directory (or run with --restart) to start over")

    def close(self):
        self.manager.close()
        if self.lock is not None:
            self.lock.release()
            self.lock = None
