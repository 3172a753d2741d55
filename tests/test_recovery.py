"""Recovery tasks (factorization, completion, sensing) and the methods of lrjax.studies.matrix_recovery."""
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrjax import dynamics, tasks
from lrjax.harness.context import RunContext
from lrjax.studies import matrix_recovery, recipe

pytestmark = pytest.mark.x64   # every test here checks float64 numerics (tests/conftest.py)

D, R = 16, 2


@pytest.fixture(scope="module")
def completion():
    with jax.enable_x64(True):   # module-scoped float64 data (tests/conftest.py)
        return tasks.make_task("completion", jax.random.key(0), D, R, fraction=0.3)


def test_observation_mask_has_exact_count_and_bad_fraction_fails():
    m = np.asarray(tasks.observation_mask(jax.random.key(1), (10, 7), 0.3))
    assert set(np.unique(m)) == {0.0, 1.0} and m.sum() == int(0.3 * 70)
    with pytest.raises(ValueError, match="fraction"):
        tasks.observation_mask(jax.random.key(1), (4, 4), 0.0)


def test_gaussian_target_is_truncated_gaussian_matrix():
    phi = np.asarray(tasks.low_rank_target(jax.random.key(3), 12, 3, spectrum="gaussian"))
    g = np.asarray(jax.random.normal(jax.random.key(3), (12, 12), jnp.float64))
    s_phi, s_g = np.linalg.svd(phi, compute_uv=False), np.linalg.svd(g, compute_uv=False)
    np.testing.assert_allclose(s_phi[:3], s_g[:3], rtol=1e-12)
    assert s_phi[3] < 1e-12 * s_phi[0]


def test_completion_loss_and_error_by_hand(completion):
    w = jax.random.normal(jax.random.key(2), (D, D), jnp.float64)
    m, phi = np.asarray(completion.data["mask"]), np.asarray(completion.data["target"])
    r = np.asarray(w) - phi
    assert np.isclose(completion.loss(w, completion.data), 0.5 * np.mean((m * r) ** 2), rtol=1e-13)
    assert np.isclose(completion.test_error(w, completion.data), 0.5 * np.mean(((1 - m) * r) ** 2), rtol=1e-13)
    np.testing.assert_allclose(completion.surrogate, m * phi / 0.3)


@pytest.mark.slow
def test_sensing_measurements_and_unknown_task():
    t = tasks.make_task("sensing", jax.random.key(0), 6, 1, measurements=30)
    a, y, phi = (np.asarray(t.data[k]) for k in ("a", "y", "target"))
    np.testing.assert_allclose(y, np.einsum("mij,ij->m", a, phi), rtol=1e-12)
    assert float(t.loss(t.data["target"], t.data)) == 0.0
    big = tasks.make_task("sensing", jax.random.key(1), 6, 1, measurements=20000)   # E[surrogate] = Phi
    phi = np.asarray(big.data["target"])
    assert np.linalg.norm(big.surrogate - phi) < 0.2 * np.linalg.norm(phi)
    w = np.zeros((6, 6))                                    # E[loss] = 1/2 mean((W - Phi)^2)
    assert np.isclose(big.loss(w, big.data), 0.5 * np.mean(phi ** 2), rtol=0.1)
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        tasks.make_task("nope", jax.random.key(0), 6, 1)


def test_spectral_init_is_scaled_top_singular_pairs(completion):
    m = matrix_recovery.spectral(completion, 3, 1e-2, 2 * R)
    u, _, vt = np.linalg.svd(np.asarray(completion.surrogate))
    expected = 1e-6 * u[:, :2 * R] @ vt[:2 * R]
    np.testing.assert_allclose(m.param.materialize(m.theta), expected, atol=1e-18)
    assert m.param.num_params((D, D)) == 2 * D * 2 * R + (2 * R) ** 2


def test_compressed_gamma0_follows_original_on_factorization():
    """Proposition 2 seen through the loss curves: gamma = 0 compressed run == original run."""
    task = tasks.make_task("factorization", jax.random.key(0), D, R)
    eps = 0.1
    orig = matrix_recovery.original(task, 3, eps, jax.random.key(1))
    comp = matrix_recovery.compressed(task, orig, R, 0.0)
    fo, fc = (matrix_recovery.fit(m, task, 8.0, 400, chunk_size=200, progress=False) for m in (orig, comp))
    assert fo.loss[-1] < 1e-6 * fo.loss[0]                       # it learned
    # | ||W_o - Phi|| - ||W_c - Phi|| | <= ||W_o - W_c|| <= sqrt(d - 2r) eps^L, with loss = ||.||^2 / (2 d^2)
    gap = np.abs(np.sqrt(2 * D * D * fo.loss) - np.sqrt(2 * D * D * fc.loss))
    assert gap.max() <= np.sqrt(D - 2 * R) * eps ** 3 * (1 + 1e-9)
    assert gap.max() > 0
    assert fc.num_params < fo.num_params
    assert np.isclose(fo.loss[0], task.loss(orig.param.materialize(orig.theta), task.data), rtol=1e-14)


def test_fit_batched_seeds_and_first_step_below(completion):
    keys = jax.random.split(jax.random.key(5), 3)
    m = matrix_recovery.batched(keys, lambda k: matrix_recovery.narrow(completion, 2, 1e-2, k, 4))
    f = matrix_recovery.fit(m, completion, 20.0, 200, chunk_size=100, tol=1e-30, batched=True, progress=False)
    assert f.loss.shape == (3, 200) and f.evaluation.shape == (3, 3) and f.steps_to_tol.shape == (3,)
    np.testing.assert_array_equal(f.step, [0, 100, 200])
    theta0 = jax.tree.map(lambda x: x[1], m.theta)
    assert np.isclose(f.evaluation[1, 0], completion.test_error(m.param.materialize(theta0), completion.data),
                      rtol=1e-13)
    level = f.evaluation[0, 1]
    assert f.steps_to(level)[0] == 100 and f.steps_to(-1.0)[0] == -1
    assert not np.allclose(f.loss[0], f.loss[1])                  # seeds differ
    assert recipe.first_step_below(np.array([3.0, 2.0, 1.0, 0.5]), 1.0) == 2
    assert recipe.first_step_below(np.array([3.0, 2.0]), 1.0) == -1


def test_runner_has_aux_records_aux_scalars():
    task = tasks.make_task("factorization", jax.random.key(0), 8, 1)

    def loss(theta, data):
        return task.loss(theta["w"], data), {"twice": 2 * task.loss(theta["w"], data)}

    import optax
    res = dynamics.run(loss, {"w": jnp.zeros((8, 8))}, optax.sgd(1.0), 30, data=task.data, chunk_size=10,
                       has_aux=True, progress=False)
    np.testing.assert_allclose(res.scalars["twice"], 2 * res.scalars["loss"], rtol=1e-14)


def test_authors_pattern_runs(completion):
    m = matrix_recovery.original(completion, 3, 1e-2, jax.random.key(0))
    assert matrix_recovery.authors_pattern_ms(m, completion, 10.0, 200) > 0


def test_path_distance_to_polyline():
    from lrjax.analysis import path_distance
    path = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    assert np.isclose(path_distance(np.array([[0.5, 0.2], [1.3, 0.5], [0.0, 0.0]]), path), 0.3)
    assert path_distance(path, path) == 0.0


@pytest.mark.slow
def test_compressed_dynamics_runs_on_sensing(tmp_path):
    from pathlib import Path

    from lrjax.harness import cli
    config = Path(__file__).resolve().parent.parent / "configs" / "compressed_mf.py"
    m = cli.run_config(f"{config}:quick", ["task=sensing", "d=12", "steps=200", "authors_steps=0"],
                       workdir=str(tmp_path), quiet=True)
    assert m["task"] == "sensing" and set(m["methods"]) >= {"original"}
    # measurements scaled so that E[sensing loss] = the factorization loss (the test error): same magnitude
    row = m["methods"]["original"]
    assert abs(row["final_loss"] - row["final_test_error"]) < 0.5 * row["final_test_error"]


def test_fit_checkpoints_and_resumes_bit_identically(completion, tmp_path):
    m = matrix_recovery.original(completion, 3, 1e-2, jax.random.key(0))
    ck = RunContext(tmp_path, {"config": 1}).checkpoints(m.label + " w=4/gamma", every=1)   # one of several runs
    name = Path(ck.directory).name
    assert Path(ck.directory).parent == tmp_path / "checkpoints" and "/" not in name and " " not in name
    matrix_recovery.fit(m, completion, 20.0, 200, chunk_size=100, checkpoint=ck, progress=False)
    resumed = matrix_recovery.fit(m, completion, 20.0, 400, chunk_size=100, checkpoint=ck, progress=False)
    straight = matrix_recovery.fit(m, completion, 20.0, 400, chunk_size=100, progress=False)
    np.testing.assert_array_equal(resumed.loss, straight.loss)
    np.testing.assert_array_equal(resumed.evaluation, straight.evaluation)
    assert np.isfinite(resumed.ms_per_step)
