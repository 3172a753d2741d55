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

JOB = Path(__file__).with_name("dynamics_job.py")
P3 = param.deep(3, scale=0.7)
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
    assert dynamics.plan_segments(0, 57, 20, 5) == [(4, 5), (4, 5), (3, 5), (1, 2)]
    assert dynamics.plan_segments(40, 45, 20, 20) == [(1, 5)]


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
    assert err.step > 0 and np.isfinite(err.last_finite_loss)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(err.params))
    assert dynamics.Checkpointer(tmp_path / "checkpoints").latest_step() == 10 * (err.step // 10)


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


def test_bad_arguments():
    with pytest.raises(ValueError, match="steps must be"):
        dynamics.run(tasks.factorization_loss, THETA, TX, -1, data=TARGET)
    with pytest.raises(ValueError, match="record_every"):
        dynamics.run(tasks.factorization_loss, THETA, TX, 5, data=TARGET, recorders={"sv": sv})
    narrow = param.deep(3, width=4).init(jax.random.key(0), (10, 10), jnp.float64)  # leading sizes 10 and 4
    with pytest.raises(ValueError, match="leading batch axis"):
        dynamics.run(tasks.factorization_loss, narrow, TX, 5, data=TARGET, batched=True)
    with pytest.raises(ValueError, match="on_divergence"):
        dynamics.run(tasks.factorization_loss, THETA, TX, 5, data=TARGET, on_divergence="ignore")


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
