"""Checkpoint manifests: a step is intact only when its checksums file is a JSON object listing exactly the
files that step wrote (its folder and its trajectory), each with a matching SHA-256."""
import hashlib
import json
import shutil

import numpy as np
import pytest

from lrjax.io.checkpoint import Checkpointer, CheckpointError, CheckpointWarning

TEMPLATE = {"w": np.zeros(3, np.float32)}


def _state(step):
    return {"w": np.full(3, step, np.float32)}


@pytest.fixture
def saved(tmp_path):
    """A directory with intact steps 100 and 200 (different states and trajectories)."""
    ck = Checkpointer(tmp_path)
    for step in (100, 200):
        ck.save(step, _state(step), {"loss": np.full(step, 1.0 / step)})
    ck.close()
    return tmp_path


def _sums(folder, step):
    return json.loads((folder / f"checksums_{step}.json").read_text())


def _manifest_copied_from_100(folder):
    """Step 100's state copied into step 200 (folder and trajectory), with a manifest that verifies them."""
    shutil.rmtree(folder / "200")
    shutil.copytree(folder / "100", folder / "200")
    shutil.copy(folder / "trajectory_100.npz", folder / "trajectory_200.npz")
    return _sums(folder, 100)


def _with_foreign_file(folder):
    (folder / "extra.bin").write_bytes(b"not a checkpoint file")
    return {**_sums(folder, 200), "extra.bin": hashlib.sha256(b"not a checkpoint file").hexdigest()}


def _without_trajectory(folder):
    return {k: v for k, v in _sums(folder, 200).items() if k != "trajectory_200.npz"}


def _unlisted_file_in_step(folder):
    (folder / "200" / "stray").write_bytes(b"written after the checksums")
    return _sums(folder, 200)


BAD_MANIFESTS = {
    "empty object": lambda folder: {},
    "null": lambda folder: None,
    "list": lambda folder: [1, 2],
    "string": lambda folder: "abc",
    "digest not a string": lambda folder: {k: 5 for k in _sums(folder, 200)},
    "step 100's manifest on a copy of step 100": _manifest_copied_from_100,
    "empty object on a copy of step 100": lambda folder: (_manifest_copied_from_100(folder), {})[1],
    "a file outside the step": _with_foreign_file,
    "trajectory not listed": _without_trajectory,
    "file in the step not listed": _unlisted_file_in_step,
}


def test_intact_steps_verify_and_restore(saved):
    ck = Checkpointer(saved)
    assert ck.verify(100) is None and ck.verify(200) is None
    step, state, trajectory = ck.restore(TEMPLATE)
    assert step == 200 and np.all(state["w"] == 200) and trajectory["loss"].shape == (200,)
    ck.close()


@pytest.mark.parametrize("case", BAD_MANIFESTS)
def test_bad_manifest_is_a_corrupt_step(saved, case):
    manifest = BAD_MANIFESTS[case](saved)
    (saved / "checksums_200.json").write_text(json.dumps(manifest))
    ck = Checkpointer(saved)
    problem = ck.verify(200)
    assert isinstance(problem, str) and "\n" not in problem
    with pytest.warns(CheckpointWarning, match="step 200: .*resuming from step 100"):
        step, state, trajectory = ck.restore(TEMPLATE)
    assert step == 100 and np.all(state["w"] == 100) and trajectory["loss"].shape == (100,)
    assert ck.all_steps() == [100]  # the corrupt step is removed, so a resumed run saves it again
    ck.close()


@pytest.mark.parametrize("manifest", ["{}", "null", "[1, 2]"])
def test_no_intact_step_when_every_manifest_is_bad(saved, manifest):
    for step in (100, 200):
        (saved / f"checksums_{step}.json").write_text(manifest)
    ck = Checkpointer(saved)
    with pytest.raises(CheckpointError, match="no intact checkpoint in .*step 200: .*step 100: "):
        ck.restore(TEMPLATE)
    ck.close()
