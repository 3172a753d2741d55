"""The compiled runner against a hand-written loop; early stop; divergence; resume after kill; devices."""
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lrjax import dynamics, param, tasks

pytestmark = pytest.mark.x64   # every test here checks float64 numerics (tests/conftest.py)

JOB = Path(__file__).with_name("dynamics_job.py")
P3 = param.deep(3, scale=0.7)
with jax.enable_x64(True):   # float64 data, built once (tests/conftest.py)
    TARGET = tasks.low_rank_target(jax.random.key(0), 10, 2)
    THETA = P3.init(jax.random.key(1), (10, 10), jnp.float64)
TX = optax.sgd(0.05)


def sv(theta):
    return jnp.linalg.svd(P3.materialize(theta), compute_uv=False)


def test_runner_matches_hand_written_loop():
    res = dynamics.run(tasks.factorization_loss, THETA, TX, 57, data=TARGET, chunk_size=20, record_every=5,
                       recorders={"sv": sv}, metrics={"norm": lambda t, _: jnp.linalg.norm(t["factors"][0])})
    theta, state, losses, norms, svs = THETA, TX.init(THETA), [], [], []
    for t in range(57):
        if t % 5 == 0:
            svs.append(sv(theta))
        loss, g = jax.value_and_grad(tasks.factorization_loss)(theta, TARGET)
        losses.append(loss)
        norms.append(jnp.linalg.norm(theta["factors"][0]))
        u, state = TX.update(g, state, theta)
        theta = optax.apply_updates(theta, u)
    svs.append(sv(theta))
    np.testing.assert_allclose(res.scalars["loss"], losses, rtol=1e-12)
    np.testing.assert_allclose(res.scalars["norm"], norms, rtol=1e-12)
    np.testing.assert_array_equal(res.records["step"], list(range(0, 57, 5)) + [57])
    np.testing.assert_allclose(res.records["sv"], np.stack(svs), rtol=1e-10, atol=1e-12)
    for a, b in zip(jax.tree.leaves(res.params), jax.tree.leaves(theta)):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)
    assert res.steps == 57 and res.steps_to_tol is None


def test_plan_segments_records_at_multiples():
    assert dynamics.plan_segments(0, 57, 20, 5) == [(4, 5, True), (4, 5, True), (3, 5, True), (1, 2, True)]
    assert dynamics.plan_segments(40, 45, 20, 20) == [(1, 5, True)]
    # resumed at 57 (not a multiple of record_every): align first, without recording
    assert dynamics.plan_segments(57, 100, 20, 5) == [(1, 3, False), (4, 5, True), (4, 5, True)]


def test_early_stop_on_tolerance():
    res = dynamics.run(tasks.factorization_loss, THETA, optax.sgd(0.1), 5000, data=TARGET, chunk_size=50,
                       tol=1e-3)
    assert 0 < res.steps_to_tol < res.steps < 5000
    assert res.scalars["loss"][res.steps_to_tol] <= 1e-3 < res.scalars["loss"][res.steps_to_tol - 1]
    assert res.steps % 50 == 0 and res.steps - res.steps_to_tol <= 50


def test_divergence_error_names_step_and_keeps_state(tmp_path):
    with pytest.raises(dynamics.DivergenceError, match=r"at step \d+; last finite loss") as info:
        dynamics.run(tasks.factorization_loss, THETA, optax.sgd(5.0), 400, data=TARGET, chunk_size=10,
                     workdir=tmp_path)
    err = info.value
    assert err.step > 0 and np.isfinite(err.last_finite_loss) and err.start == 10 * (err.step // 10)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(err.params))
    assert f"in the checkpoint at step {err.start} under {tmp_path / 'checkpoints'}" in str(err)
    assert dynamics.Checkpointer(tmp_path / "checkpoints").latest_step() == err.start
    # re-running the diverged run resumes from that checkpoint and diverges again at the same step
    with pytest.raises(dynamics.DivergenceError) as again:
        dynamics.run(tasks.factorization_loss, THETA, optax.sgd(5.0), 400, data=TARGET, chunk_size=10,
                     workdir=tmp_path)
    assert again.value.step == err.step and again.value.last_finite_loss == err.last_finite_loss


def test_divergence_without_workdir_says_nothing_was_saved():
    with pytest.raises(dynamics.DivergenceError, match="no work directory: not saved") as info:
        dynamics.run(tasks.factorization_loss, THETA, optax.sgd(5.0), 400, data=TARGET, chunk_size=10)
    assert info.value.checkpoint is None


def test_batched_divergence_in_first_chunk_names_the_member(tmp_path):
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.0)
    thetas = jax.tree.map(lambda x: jnp.stack([x] * 3), THETA)
    state = jax.vmap(tx.init)(thetas)
    state.hyperparams["learning_rate"] = jnp.array([0.05, 50.0, 0.05])
    with pytest.raises(dynamics.DivergenceError, match=r"batch member 1\); last finite loss") as info:
        dynamics.run(tasks.factorization_loss, thetas, tx, 200, data=TARGET, opt_state=state, batched=True,
                     chunk_size=100, workdir=tmp_path)
    assert info.value.member == 1 and info.value.start == 0 and info.value.step < 100
    assert dynamics.Checkpointer(tmp_path / "checkpoints").latest_step() == 0


def test_diverged_member_does_not_block_tolerance_stop():
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.0)
    thetas = jax.tree.map(lambda x: jnp.stack([x] * 3), THETA)
    state = jax.vmap(tx.init)(thetas)
    state.hyperparams["learning_rate"] = jnp.array([0.1, 50.0, 0.1])
    res = dynamics.run(tasks.factorization_loss, thetas, tx, 5000, data=TARGET, opt_state=state, batched=True,
                       chunk_size=50, tol=1e-3, on_divergence="continue")
    assert res.steps < 5000
    np.testing.assert_array_equal(res.diverged, [False, True, False])
    assert res.steps_to_tol[0] > 0 and res.steps_to_tol[2] > 0 and res.steps_to_tol[1] == -1


def test_batched_seeds_match_single_runs():
    keys = jax.random.split(jax.random.key(3), 4)
    thetas = jax.vmap(lambda k: P3.init(k, (10, 10), jnp.float64))(keys)
    res = dynamics.run(tasks.factorization_loss, thetas, TX, 60, data=TARGET, batched=True, chunk_size=30,
                       record_every=30, recorders={"sv": sv})
    assert res.scalars["loss"].shape == (4, 60) and res.records["sv"].shape == (4, 3, 10)
    single = dynamics.run(tasks.factorization_loss, jax.tree.map(lambda x: x[2], thetas), TX, 60, data=TARGET,
                          chunk_size=30)
    np.testing.assert_allclose(res.scalars["loss"][2], single.scalars["loss"], rtol=1e-12)


def test_batched_learning_rate_sweep_via_opt_state():
    etas = jnp.array([0.01, 0.05, 0.1])
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.0)
    thetas = jax.tree.map(lambda x: jnp.stack([x] * 3), THETA)
    state = jax.vmap(tx.init)(thetas)
    state.hyperparams["learning_rate"] = etas
    res = dynamics.run(tasks.factorization_loss, thetas, tx, 40, data=TARGET, opt_state=state, batched=True)
    for i, eta in enumerate([0.01, 0.05, 0.1]):
        ref = dynamics.run(tasks.factorization_loss, THETA, optax.sgd(eta), 40, data=TARGET)
        np.testing.assert_allclose(res.scalars["loss"][i], ref.scalars["loss"], rtol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=-1), "steps must be an integer >= 1"),
    (dict(steps=0), "steps must be an integer >= 1"),
    (dict(steps=True), "steps must be an integer >= 1"),
    (dict(chunk_size=0), "chunk_size must be an integer >= 1"),
    (dict(recorders={"sv": sv}), "record_every"),
    (dict(recorders={"sv": sv}, record_every=0), "record_every"),
    (dict(tol=float("nan")), "tol must be a finite number"),
    (dict(checkpoint_every=-1), "checkpoint_every must be an integer >= 0"),
    (dict(on_divergence="ignore"), "on_divergence"),
])
def test_bad_arguments(kwargs, match):
    kwargs = {"steps": 5, **kwargs}
    steps = kwargs.pop("steps")
    with pytest.raises(ValueError, match=match):
        dynamics.run(tasks.factorization_loss, THETA, TX, steps, data=TARGET, **kwargs)


def test_bad_batches():
    narrow = param.deep(3, width=4).init(jax.random.key(0), (10, 10), jnp.float64)  # leading sizes 10 and 4
    with pytest.raises(ValueError, match="leading batch axis"):
        dynamics.run(tasks.factorization_loss, narrow, TX, 5, data=TARGET, batched=True)
    empty = jax.tree.map(lambda x: x[:0], jax.tree.map(lambda x: jnp.stack([x]), THETA))  # seeds = 0
    with pytest.raises(ValueError, match="at least one batch member"):
        dynamics.run(tasks.factorization_loss, empty, TX, 5, data=TARGET, batched=True)


def test_runner_compiles_once_and_reports_compile_time_apart():
    runner = dynamics.Runner(tasks.factorization_loss, TX, chunk_size=20, record_every=10, recorders={"sv": sv})
    assert runner.compile(THETA, 57, data=TARGET) > 0
    first = runner.run(THETA, 57, data=TARGET)
    second = runner.run(THETA, 57, data=TARGET)
    assert first.compile_time == 0.0 and second.compile_time == 0.0 and first.wall_time > 0
    np.testing.assert_array_equal(first.scalars["loss"], second.scalars["loss"])
    fresh = dynamics.run(tasks.factorization_loss, THETA, TX, 57, data=TARGET, chunk_size=20, record_every=10,
                         recorders={"sv": sv})
    assert fresh.compile_time > 0
    np.testing.assert_array_equal(fresh.scalars["loss"], first.scalars["loss"])


def _ckpt_run(workdir, steps, theta=THETA, **kw):
    kw = {"chunk_size": 20, "record_every": 10, "recorders": {"sv": sv}, "checkpoint_every": 1, **kw}
    return dynamics.run(tasks.factorization_loss, theta, TX, steps, data=TARGET, workdir=workdir, **kw)


def _same_trajectory(a, b):
    assert a.scalars.keys() == b.scalars.keys() and a.records.keys() == b.records.keys()
    assert len(jax.tree.leaves(a.params)) == len(jax.tree.leaves(b.params))
    for k in a.scalars:
        np.testing.assert_array_equal(a.scalars[k], b.scalars[k])
    for k in a.records:
        np.testing.assert_array_equal(a.records[k], b.records[k])
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def straight_run():
    with jax.enable_x64(True):   # module-scoped float64 data (tests/conftest.py)
        return _ckpt_run(None, 100)


def test_longer_run_continues_from_an_unaligned_step(tmp_path, straight_run):
    first = _ckpt_run(tmp_path, 57)
    assert first.steps == 57 and first.resumed_from is None
    longer = _ckpt_run(tmp_path, 100)
    assert longer.resumed_from == 57 and longer.steps_run == 43
    _same_trajectory(longer, straight_run)
    assert longer.timed_steps == 100 and longer.timed_wall_time > longer.wall_time > 0
    finished = _ckpt_run(tmp_path, 100)       # nothing left to run: the time per step comes from the checkpoint
    assert finished.steps_run == 0 and finished.timed_steps == 100
    # (the stored seconds leave out the final checkpoint save, which the longer run's own count includes)
    assert 0 < finished.timed_wall_time <= longer.timed_wall_time and np.isfinite(finished.ms_per_step)
    assert straight_run.timed_steps == 100 and straight_run.timed_wall_time == straight_run.wall_time


def test_checkpoints_written_before_timings_time_only_the_new_steps(tmp_path):
    import hashlib
    import json
    _ckpt_run(tmp_path, 57)
    folder = tmp_path / "checkpoints"
    for path in folder.glob("trajectory_*.npz"):      # as lrjax wrote them before they carried timings
        with np.load(path) as z:
            old = {k: z[k] for k in z.files if not k.startswith("t/")}
        np.savez(path, **old)
        sums_path = folder / f"checksums_{path.stem.split('_')[1]}.json"
        sums = json.loads(sums_path.read_text())
        sums[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
        sums_path.write_text(json.dumps(sums))
    longer = _ckpt_run(tmp_path, 100)
    assert longer.resumed_from == 57 and longer.timed_steps == 43 == longer.steps_run
    assert longer.timed_wall_time == longer.wall_time


@pytest.mark.parametrize("change, named", [
    (dict(theta=lambda: P3.init(jax.random.key(2), (10, 10), jnp.float64)), "the initial state (values)"),
    (dict(theta=lambda: param.deep(3, width=4).init(jax.random.key(1), (10, 10), jnp.float64)),
     "the initial state (structure or shapes)"),
    (dict(chunk_size=10), "chunk_size 20 -> 10"),
    (dict(record_every=5), "record_every 10 -> 5"),
    (dict(fingerprint={"eta": 0.2}), "user.eta"),
])
def test_resume_refuses_a_different_run(tmp_path, change, named):
    _ckpt_run(tmp_path, 40, fingerprint={"eta": 0.05})
    kw = {"fingerprint": {"eta": 0.05}, **{k: v() if callable(v) else v for k, v in change.items()}}  # built under x64
    with pytest.raises(dynamics.ResumeError, match="holds checkpoints of a different run") as info:
        _ckpt_run(tmp_path, 60, **kw)
    assert named in str(info.value)


def test_resume_refuses_fewer_steps_than_the_checkpoint(tmp_path):
    _ckpt_run(tmp_path, 60)
    with pytest.raises(dynamics.ResumeError, match="at step 60, past steps=40"):
        _ckpt_run(tmp_path, 40)


def test_second_process_on_the_same_checkpoints_is_refused(tmp_path):
    from lrjax.io.files import DirectoryBusyError, DirectoryLock
    with DirectoryLock(tmp_path / "checkpoints"):
        with pytest.raises(DirectoryBusyError, match=f"in use by another lrjax process \\(pid {os.getpid()}\\)"):
            _ckpt_run(tmp_path, 40)
    assert _ckpt_run(tmp_path, 40).steps == 40  # released


def _data_file(step_dir):
    return max((p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d"), key=lambda p: p.stat().st_size)


def _flip(path):
    raw = bytearray(path.read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 64] = bytes(b ^ 0xFF for b in raw[mid:mid + 64])
    path.write_bytes(bytes(raw))


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "trajectory", "no checksums"])
def test_corrupt_latest_checkpoint_falls_back_to_an_intact_one(tmp_path, straight_run, damage):
    _ckpt_run(tmp_path, 100)
    ck = tmp_path / "checkpoints"
    assert sorted(int(p.name) for p in ck.iterdir() if p.name.isdigit()) == [80, 100]
    target = _data_file(ck / "100")
    if damage == "flip":
        _flip(target)
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif damage == "delete":
        target.unlink()
    elif damage == "trajectory":
        _flip(ck / "trajectory_100.npz")
    else:
        (ck / "checksums_100.json").unlink()
    with pytest.warns(dynamics.CheckpointWarning, match="step 100: .*resuming from step 80"):
        resumed = _ckpt_run(tmp_path, 100)
    assert resumed.resumed_from == 80
    _same_trajectory(resumed, straight_run)
    assert dynamics.Checkpointer(ck).verify(100) is None  # saved again, intact


def test_unreadable_fingerprint_is_refused(tmp_path):
    _ckpt_run(tmp_path, 40)
    (tmp_path / "checkpoints" / "fingerprint.json").write_text("{not json")
    with pytest.raises(dynamics.ResumeError, match="fingerprint.json is unreadable"):
        _ckpt_run(tmp_path, 60)


def test_divergence_at_the_first_step_says_no_finite_loss():
    bad = jax.tree.map(lambda x: x * jnp.nan, THETA)
    with pytest.raises(dynamics.DivergenceError, match="at step 0; no finite loss was recorded"):
        dynamics.run(tasks.factorization_loss, bad, TX, 20, data=TARGET, chunk_size=10)


def test_no_intact_checkpoint_fails_clearly(tmp_path):
    _ckpt_run(tmp_path, 100)
    ck = tmp_path / "checkpoints"
    for step in (80, 100):
        _flip(_data_file(ck / str(step)))
    with pytest.raises(dynamics.CheckpointError, match="no intact checkpoint in .*step 100: .*checksum.*step 80"):
        _ckpt_run(tmp_path, 100)


def _job(*args, env=None):
    return subprocess.run([sys.executable, str(JOB), *map(str, args)], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_resume_after_kill_is_bit_identical(tmp_path):
    ref = _job(tmp_path / "ref.npz")
    assert ref.returncode == 0, ref.stderr
    killed = _job(tmp_path / "never.npz", "--workdir", tmp_path / "w", "--kill-at-step", 157)
    assert killed.returncode == -9 and not (tmp_path / "never.npz").exists()
    resumed = _job(tmp_path / "resumed.npz", "--workdir", tmp_path / "w")
    assert resumed.returncode == 0, resumed.stderr
    a, b = np.load(tmp_path / "ref.npz"), np.load(tmp_path / "resumed.npz")
    assert 100 <= int(b["resumed_from"]) < 157
    for k in ("loss", "sv", "step", "final"):
        np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.slow
def test_one_and_eight_fake_devices_agree(tmp_path):
    one = _job(tmp_path / "one.npz", "--batched", 8)
    eight = _job(tmp_path / "eight.npz", "--batched", 8,
                 env={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
    assert one.returncode == 0 and eight.returncode == 0, one.stderr + eight.stderr
    a, b = np.load(tmp_path / "one.npz"), np.load(tmp_path / "eight.npz")
    assert int(a["devices"]) == 1 and int(b["devices"]) == 8
    for k in ("loss", "sv", "final"):
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-14)
