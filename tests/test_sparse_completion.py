"""Sparse completion: the observed-entries path reproduces the dense path (same init, compression,
spectral init and GD trajectory to round-off), entries/targets/sampling are right, structured inits are
orthogonal, truncated SVDs match the exact ones, bad configs are refused before work."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrjax import param, tasks
from lrjax.param.deep import product_matrix
from lrjax.param.permutation import random_signed_map
from lrjax.studies import matrix_recovery, sparse_recovery
from lrjax.tasks import sparse_completion as sc

pytestmark = pytest.mark.x64   # every test here checks float64 numerics (tests/conftest.py)

D, R, EPS = 100, 3, 1e-3


@pytest.fixture(scope="module")
def dense_and_sparse():
    with jax.enable_x64(True):   # module-scoped float64 data (tests/conftest.py)
        task = tasks.make_task("completion", jax.random.key(0), D, R, fraction=0.2)
        sparse = sc.from_dense(task.data["mask"], task.data["target"])
        return task, sparse, sparse.data(jnp.float64)


def product(factors):
    return np.asarray(product_matrix(factors))


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(7, 7), (9, 4), (4, 9)])
def test_signed_map_is_semi_orthogonal_and_its_products_match_dense(shape):
    q = random_signed_map(jax.random.key(3), shape)
    m = np.asarray(q.dense())
    gram = m.T @ m if shape[0] >= shape[1] else m @ m.T
    np.testing.assert_array_equal(gram, np.eye(min(shape)))
    x = np.random.default_rng(0).normal(size=(shape[1], 3))
    y = np.random.default_rng(1).normal(size=(shape[0], 3))
    np.testing.assert_allclose(q.matvec(jnp.asarray(x)), m @ x, atol=1e-14)
    np.testing.assert_allclose(q.rmatvec(jnp.asarray(y)), m.T @ y, atol=1e-14)
    other = random_signed_map(jax.random.key(4), (shape[1], 5))
    np.testing.assert_array_equal(q.then(other).dense(), m @ np.asarray(other.dense()))


def test_top_singular_matches_exact_svd():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(80, 50)) + 20 * np.outer(rng.normal(size=80), rng.normal(size=50)) / 50
    u, s, v = sparse_recovery.top_singular(lambda x: jnp.asarray(a) @ x, lambda y: jnp.asarray(a).T @ y, a.shape,
                                           4, jax.random.key(0), iters=60)
    s_exact = np.linalg.svd(a, compute_uv=False)[:4]
    np.testing.assert_allclose(s, s_exact, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(u) * s @ np.asarray(v).T,
                               (np.linalg.svd(a)[0][:, :4] * s_exact) @ np.linalg.svd(a)[2][:4], atol=1e-9)


@pytest.mark.slow
def test_loss_and_error_equal_the_dense_task(dense_and_sparse):
    task, sparse, data = dense_and_sparse
    theta = param.deep(3, width=5, scale=0.7).init(jax.random.key(1), (D, D), jnp.float64)
    w = product(theta["factors"])
    for evaluation in ("gather", "product"):
        loss, error = sc.losses(evaluation)
        np.testing.assert_allclose(loss(theta, data), task.loss(w, task.data), rtol=1e-13)
        np.testing.assert_allclose(error(theta, data), task.test_error(w, task.data), rtol=1e-13)
        g_sparse = jax.grad(loss)(theta, data)["factors"]
        g_dense = jax.grad(lambda t: task.loss(param.deep(3).materialize(t), task.data))(theta)["factors"]
        for a, b in zip(g_sparse, g_dense):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-18)


@pytest.mark.slow
@pytest.mark.parametrize("depth,width", [(2, 5), (3, None)])
def test_product_gradient_equals_the_dense_gradient_also_under_vmap(dense_and_sparse, depth, width):
    """The product path's custom VJP (``sc._matmul``) for two factors and for square (original) ones, one
    network and two vmapped ones."""
    task, _, data = dense_and_sparse
    p = param.deep(depth, width=width, scale=0.7)
    thetas = jax.vmap(lambda k: p.init(k, (D, D), jnp.float64))(jax.random.split(jax.random.key(2), 2))
    dense = jax.vmap(jax.grad(lambda t: task.loss(p.materialize(t), task.data)))(thetas)
    mine = jax.jit(jax.vmap(jax.grad(sc.losses("product")[0]), (0, None)))(thetas, data)
    one = jax.grad(sc.losses("product")[0])(jax.tree.map(lambda x: x[1], thetas), data)
    for a, b, c in zip(mine["factors"], dense["factors"], one["factors"]):
        assert np.abs(np.asarray(b)).max() > 0
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-18)
        np.testing.assert_allclose(a[1], c, rtol=1e-12, atol=1e-20)


@pytest.mark.slow
def test_sparse_path_reproduces_the_dense_trajectory(dense_and_sparse):
    task, sparse, data = dense_and_sparse
    p = param.deep(3, scale=EPS, init="permutation")
    orig = matrix_recovery.Method("original", p, p.init(jax.random.key(1), (D, D), jnp.float64))
    dense = matrix_recovery.compressed(task, orig, R, 0.01)
    mine = sparse_recovery.make_method("compressed", sparse, data, depth=3, eps=EPS, rank=R, gamma=0.01, seed=0)
    original = sparse_recovery.make_method("original", sparse, data, depth=3, eps=EPS, rank=R, gamma=0.0, seed=0)
    np.testing.assert_array_equal(product(original.theta["factors"]), product(orig.theta["factors"]))
    np.testing.assert_allclose(product(mine.theta["factors"]), product(dense.theta["factors"]), rtol=0, atol=1e-20)
    fd = matrix_recovery.fit(dense, task, 800.0, 6000, chunk_size=500, progress=False)
    fs = sparse_recovery.fit(mine, data, 800.0, 6000, chunk_size=500, progress=False)
    assert fd.evaluation[-1] < 1e-3 * fd.evaluation[0]  # it learns: the comparison is not between two stalls
    # round-off (other summation orders) is amplified while the dynamics escape the saddle at ~step 4500:
    # 1e-15 relative until then, ~1e-6 at the escape (measured), back down as both converge
    np.testing.assert_allclose(fs.evaluation[:30], fd.evaluation[:30], rtol=1e-12)
    np.testing.assert_allclose(fs.evaluation, fd.evaluation, rtol=1e-4)
    np.testing.assert_allclose(fs.loss, fd.loss, rtol=1e-4)
    spectral = sparse_recovery.make_method("spectral", sparse, data, depth=3, eps=EPS, rank=R, gamma=0, seed=0)
    np.testing.assert_allclose(product(spectral.theta["factors"]),
                               product(matrix_recovery.spectral(task, 3, EPS, 2 * R).theta["factors"]), atol=1e-18)


def test_sampling_targets_and_held_out_sets():
    task, (left, right) = sc.low_rank_completion(0, (50, 40), 3, 300, held_out=200, spectrum="gaussian_scale")
    obs, held = task.observed, task.held_out
    lin_obs, lin_held = obs.rows * 40 + obs.cols, held.rows * 40 + held.cols
    assert len(np.unique(lin_obs)) == 300 and len(np.unique(lin_held)) == 200
    assert not np.intersect1d(lin_obs, lin_held).size and np.all(np.diff(lin_obs) > 0)
    full = np.asarray(left) @ np.asarray(right).T
    np.testing.assert_allclose(obs.values, full[obs.rows, obs.cols], rtol=1e-12)
    assert np.linalg.matrix_rank(full) == 3 and task.unobserved == 50 * 40 - 300 and not task.exact_error
    s = np.linalg.svd(full, compute_uv=False)[:3]
    np.testing.assert_allclose(s, (np.sqrt(50) + np.sqrt(40)) * np.array([1.0, 5 / 6, 4 / 6]), rtol=1e-12)
    with pytest.raises(ValueError, match="observed count"):
        sc.sample_entries(0, (5, 5), 25, None)


def test_real_matrix_entries():
    x = np.arange(24.0).reshape(4, 6)
    task = sc.from_matrix(x, 0.5, seed=1)
    assert len(task.observed) == 12 and task.exact_error
    np.testing.assert_array_equal(task.observed.values, x[task.observed.rows, task.observed.cols])
    np.testing.assert_array_equal(task.held_out.values, x[task.held_out.rows, task.held_out.cols])


@pytest.mark.parametrize("override, message", [
    ("observed=10000", "observed must be < d * d"),
    ("d=5000 --set held_out=0 --set spectrum=gaussian_scale", "held_out=0"),
    ("d=3000", "spectrum 'gaussian' needs"),
    ("method=original --set d=10000 --set held_out=10 --set spectrum=gaussian_scale", "method=original"),
    ("method=narrow", "method"),
    ("evaluation=fast", "evaluation"),
])
def test_bad_values_exit_2_before_work(tmp_path, override, message, capsys):
    from lrjax.harness import cli
    args = ["run", "configs/sparse_completion.py:quick", "--workdir", str(tmp_path / "w")]
    for part in override.split(" --set "):
        args += ["--set", part]
    assert cli.main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "w" / "metrics.json").exists()


def test_two_factor_baseline_has_rank_r_factors(dense_and_sparse):
    _, sparse, data = dense_and_sparse
    m = sparse_recovery.make_method("two_factor", sparse, data, depth=3, eps=0.1, rank=R, gamma=0, seed=0)
    assert [f.shape for f in m.theta["factors"]] == [(D, R), (R, D)] and m.num_params == 2 * D * R
    assert np.linalg.matrix_rank(product(m.theta["factors"])) == R
