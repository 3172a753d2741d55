"""Random projections (dense, sparse, Fastfood) against their explicit definitions, and the global subspace
over a Flax model (z = 0 is theta_0 exactly, roles, SAID), and the d_int90 search."""
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrjax import models
from lrjax.binding import optim
from lrjax.param import FROZEN, TRAINABLE, Projection, from_spec
from lrjax.param.projection import KINDS, hadamard_matrix, hadamard_transform
from lrjax.studies import intrinsic_dimension

SIZES = [(100, 10), (64, 16), (300, 33), (7, 3)]   # padding, exact blocks, several blocks, tiny


@pytest.mark.parametrize("n", [1, 2, 4, 32, 256])
@pytest.mark.parametrize("radix", [2, 64])
def test_hadamard_transform_is_the_sylvester_matrix(n, radix):
    h = hadamard_matrix(n)
    np.testing.assert_array_equal(h @ h, n * np.eye(n))
    x = np.random.default_rng(n).normal(size=(3, n)).astype(np.float32)
    np.testing.assert_allclose(hadamard_transform(jnp.asarray(x), radix=radix), x @ h, atol=1e-4)


def explicit_fastfood(proj, key):
    """P from its definition: blocks H G_i Pi_i H B / sqrt(n ||g_i||^2), stacked, truncated, * sqrt(n / D)."""
    s = jax.tree.map(np.asarray, proj.structure(key))
    n = proj.block
    h = hadamard_matrix(n).astype(np.float64)
    blocks = []
    for perm, g in zip(s["perms"], s["gains"].astype(np.float64)):
        pi = np.eye(n)[perm]                                  # (Pi x)_k = x[perm[k]]
        blocks.append(h @ np.diag(g) @ pi @ h @ np.diag(s["signs"]) / np.sqrt(n * np.sum(g ** 2)))
    return (np.concatenate(blocks)[: proj.size, : proj.dim]) * np.sqrt(n / proj.size)


@pytest.mark.slow
@pytest.mark.parametrize("size,dim", SIZES)
def test_fastfood_equals_the_matrix_it_defines(size, dim):
    proj, key = Projection(size, dim, "fastfood"), jax.random.key(size)
    np.testing.assert_allclose(proj.matrix(key), explicit_fastfood(proj, key), atol=2e-6)
    np.testing.assert_array_equal(np.sort(np.asarray(proj.structure(key)["perms"]), axis=1),
                                  np.broadcast_to(np.arange(proj.block), (-(-size // proj.block), proj.block)))


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size,dim", SIZES)
def test_apply_and_gradient_match_the_explicit_matrix(kind, size, dim):
    proj, key = Projection(size, dim, kind), jax.random.key(1)
    m = np.asarray(proj.matrix(key))
    z = jax.random.normal(jax.random.key(2), (dim,))
    g = jax.random.normal(jax.random.key(3), (size,))
    np.testing.assert_allclose(proj.apply(z, key), m @ z, atol=1e-5)
    grad = jax.jit(jax.grad(lambda z: jnp.vdot(proj.apply(z, key), g)))(z)
    np.testing.assert_allclose(grad, m.T @ np.asarray(g), atol=1e-5)


def _column_norms(kind, size, dim, keys=8):
    return np.concatenate([np.sum(np.asarray(Projection(size, dim, kind).matrix(jax.random.key(k))) ** 2, axis=0)
                           for k in range(keys)])


@pytest.mark.slow
def test_column_norm_statistics():
    np.testing.assert_allclose(_column_norms("dense", 500, 20), 1.0, atol=1e-5)           # exactly unit norm
    np.testing.assert_allclose(_column_norms("fastfood", 256, 16), 1.0, atol=1e-5)        # D a multiple of n
    ff = _column_norms("fastfood", 1000, 30)                                              # truncated: on average
    assert abs(ff.mean() - 1) < 0.01 and ff.std() < 0.05
    sp = _column_norms("sparse", 900, 64)                                                 # E ||col||^2 = 1
    assert abs(sp.mean() - 1) < 0.03 and sp.min() > 0.5
    assert not np.allclose(sp, 1.0)                                                       # rows repeat sometimes


def test_sparse_projection_is_very_sparse():
    proj = Projection(10_000, 50, "sparse")
    m = np.asarray(proj.matrix(jax.random.key(0)))
    assert proj.nonzeros_per_column == 100
    nonzero = (m != 0).sum(axis=0)
    assert nonzero.max() <= 100 and nonzero.min() >= 95                                    # density 1/sqrt(D)
    np.testing.assert_allclose(np.abs(m[m != 0]) % 0.1, 0, atol=1e-6)                     # multiples of 1/sqrt(k)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_dense_and_sparse_subspaces_are_nested(kind):
    key = jax.random.key(4)
    big, small = Projection(200, 12, kind).matrix(key), Projection(200, 5, kind).matrix(key)
    np.testing.assert_array_equal(big[:, :5], small)


def test_structure_bytes_match_the_arrays():
    for kind in KINDS:
        proj = Projection(5000, 100, kind)
        s = proj.structure(jax.random.key(0))
        assert proj.structure_bytes() == sum(a.nbytes for a in jax.tree.leaves(s)), kind


def test_bad_projections_are_refused():
    for args in [(0, 3), (10, 0), (10, 3, "gaussian"), (True, 3)]:
        with pytest.raises(ValueError):
            Projection(*args)
    with pytest.raises(ValueError, match="shape"):
        Projection(10, 3).apply(jnp.zeros(4), jax.random.key(0))


@pytest.fixture(scope="module")
def mlp_params():
    model = models.MLP((16,))
    x = jnp.ones((2, 8, 8, 1))
    return model, x, model.init(jax.random.key(0), x)["params"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("said", [False, True])
def test_global_subspace_at_zero_is_theta0_exactly(mlp_params, kind, said):
    model, x, params = mlp_params
    sub = intrinsic_dimension.GlobalSubspace(20, kind, said=said)
    state = sub.init(params, jax.random.key(1))
    out = sub.materialize(state)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)
    assert state["z"].shape == ((20 - 4) if said else 20,)                    # SAID: one scale per tensor
    roles = sub.roles(state)
    counts = {r: 0 for r in (TRAINABLE, FROZEN)}
    for leaf, r in zip(jax.tree.leaves(state), jax.tree.leaves(roles)):
        counts[r] += leaf.size
    assert counts[TRAINABLE] == 20


def test_global_subspace_moves_all_parameters_along_p_z(mlp_params):
    model, x, params = mlp_params
    D = intrinsic_dimension.num_float_params(params)
    for cache in (True, False):
        sub = intrinsic_dimension.GlobalSubspace(10, "fastfood", cache=cache)
        state = sub.init(params, jax.random.key(1))
        z = jax.random.normal(jax.random.key(2), (10,))
        moved = sub.materialize({**state, "z": z})
        delta = np.concatenate([np.ravel(a - b) for a, b in zip(jax.tree.leaves(moved), jax.tree.leaves(params))])
        expected = sub.project(params).matrix(jax.random.key(1)) @ z
        assert delta.shape == (D,) and np.all(delta != 0)
        np.testing.assert_allclose(delta, expected, atol=1e-5)
    assert "structure" not in intrinsic_dimension.GlobalSubspace(10, "dense").init(params, 0)        # dense: regenerated


@pytest.mark.slow
def test_global_subspace_trains_only_z_and_said(mlp_params):
    import optax

    from lrjax.dynamics.program import trainable_part, with_trainable
    model, x, params = mlp_params
    sub = intrinsic_dimension.GlobalSubspace(12, "sparse", said=True)
    state = sub.init(params, jax.random.key(1))
    y = jnp.array([1, 2])

    def loss(part):
        logits = model.apply({"params": sub.materialize(with_trainable(part, state))}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    part = trainable_part(state)                                 # the float leaves, as the runner trains them
    grads = jax.grad(loss)(part)
    assert float(jnp.abs(grads["z"]).max()) > 0
    assert float(jnp.abs(grads["said"]).max()) == 0             # z = 0: no direction to scale yet
    assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(grads["base"]))
    tx = optim.optimizer(optax.adam(0.1), sub.roles(state))
    updates, _ = tx.update(grads, tx.init(part), part)
    assert all(float(jnp.abs(u).max()) == 0 for u in jax.tree.leaves(updates["base"]))
    assert all(float(jnp.abs(u).max()) == 0 for u in jax.tree.leaves(updates["structure"]))
    assert float(jnp.abs(updates["z"]).max()) > 0
    with pytest.raises(ValueError, match="SAID needs dim"):
        intrinsic_dimension.GlobalSubspace(4, said=True).init(params)


def test_d_int90_and_bisection():
    acc = {10: 0.2, 100: 0.5, 1000: 0.85, 3000: 0.9}
    assert intrinsic_dimension.d_int90(acc, baseline=0.9) == 1000                        # threshold 0.81
    assert intrinsic_dimension.next_dim(acc, baseline=0.9) == 316                        # geometric midpoint of 100, 1000
    assert intrinsic_dimension.d_int90(acc, baseline=1.0) == 3000 and intrinsic_dimension.d_int90({10: 0.1}, 1.0) is None
    assert intrinsic_dimension.next_dim({10: 0.1}, 1.0) is None                          # nothing passes
    assert intrinsic_dimension.next_dim({10: 0.95}, 1.0) is None                         # nothing below fails
    assert intrinsic_dimension.next_dim({10: 0.1, 11: 0.95}, 1.0) is None                # adjacent: d_int90 = 11
    assert intrinsic_dimension.next_dim({10: 0.1, 12: 0.95}, 1.0) == 11


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_per_layer_subspace_takes_every_projection(kind):
    p = from_spec(f"subspace(6, seed=3, projection={kind!r})")
    theta = p.from_weight(jax.random.key(0), jnp.ones((4, 5)))
    np.testing.assert_array_equal(p.materialize(theta), jnp.ones((4, 5)))
    z = jnp.arange(6.0)
    w = p.materialize({**theta, "z": z})
    if kind == "dense":                    # the draw adapters saved before the other projections used
        m = jax.random.normal(jax.random.key(3), (20, 6), theta["z"].dtype)
        m = m / jnp.linalg.norm(m, axis=0, keepdims=True)
    else:
        m = Projection(20, 6, kind).matrix(jax.random.key(3))
    np.testing.assert_allclose(w.reshape(-1) - 1, m @ z, atol=1e-5)


@pytest.mark.slow
def test_bench_intrinsic_times_and_plans_memory(capsys):
    from benchmarks.suites import bench_intrinsic
    out = bench_intrinsic(dim=16, steps=2, repeats=1, batch=8, scaling_dims=(16, 4096))
    rows = {r["case"]: r for r in out["rows"]}
    assert out["D"] == 199_210 and all(r["ms_per_step"] > 0 for r in rows.values())
    assert rows["dense (P kept)"]["planned_bytes"] > 4 * 199_210 * 16                   # P is in the state
    big = out["scaling"][1]
    assert big["dense_planned_bytes"] > 4 * 199_210 * 4096 > 100 * big["fastfood_planned_bytes"]
    assert "planned memory" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["dims=(0,)", "dims=(10, 10)", "dims=(300000,)", "said=1", "projection=gauss",
                                 "bisect=-1", "model=cnn", "said=True"])
def test_intrinsic_dimension_refuses_bad_values_before_work(tmp_path, capsys, bad):
    from lrjax.harness import cli
    overrides = ["--set", bad] + (["--set", "widths=(5,)"] if bad == "model=cnn" else []) \
        + (["--set", "dims=(3,)"] if bad == "said=True" else [])        # SAID: 3 scalars < 4 tensors
    config = Path(__file__).resolve().parents[1] / "configs" / "intrinsic_dimension.py"
    assert cli.main(["run", f"{config}:quick", *overrides, "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lrjax: error:") and not (tmp_path / "w").exists()


def test_said_scales_each_tensor_by_its_own_lambda(mlp_params):
    model, x, params = mlp_params
    sub = intrinsic_dimension.GlobalSubspace(10, "fastfood", said=True)
    state = sub.init(params, jax.random.key(1))
    z = jax.random.normal(jax.random.key(2), state["z"].shape)
    lam = jnp.array([0.5, -2.0, 3.0, 0.0])
    moved = sub.materialize({**state, "z": z, "said": lam})
    flat = sub.project(params).matrix(jax.random.key(1)) @ z
    offset = 0
    for i, (a, b) in enumerate(zip(jax.tree.leaves(moved), jax.tree.leaves(params))):
        np.testing.assert_allclose(np.ravel(a - b), lam[i] * flat[offset: offset + b.size], atol=1e-5)
        offset += b.size


def test_non_float_leaves_pass_through(mlp_params):
    _, _, params = mlp_params
    tree = {"params": params, "count": jnp.array(3, jnp.int32)}
    sub = intrinsic_dimension.GlobalSubspace(5, "sparse")
    state = sub.init(tree, 0)
    out = sub.materialize({**state, "z": jnp.ones(5)})
    assert out["count"] == 3 and out["count"].dtype == jnp.int32
    assert sub.project(tree).size == intrinsic_dimension.num_float_params(params)
    for bad in [dict(said="no"), dict(cache=1)]:
        with pytest.raises(ValueError, match="True or False"):
            intrinsic_dimension.GlobalSubspace(5, **bad)
    with pytest.raises(ValueError, match="exceeds"):
        intrinsic_dimension.GlobalSubspace(10 ** 6).init(params)


@pytest.mark.slow
@pytest.mark.x64
def test_projection_is_the_same_with_and_without_64_bit_types(tmp_path):
    """The tests run with 64-bit types on; production runs without: the same P in both."""
    import subprocess
    import sys
    code = ("import jax, numpy as np\n"
            "from lrjax.param import Projection\n"
            "np.save(%r, np.stack([np.asarray(Projection(300, 20, k).matrix(jax.random.key(5)), np.float64)"
            " for k in ('dense', 'sparse', 'fastfood')]))\n")
    out = tmp_path / "p32.npy"
    subprocess.run([sys.executable, "-c", code % str(out)], check=True, env={"JAX_ENABLE_X64": "0", "PATH": ""})
    here = np.stack([np.asarray(Projection(300, 20, k).matrix(jax.random.key(5)), np.float64)
                     for k in ("dense", "sparse", "fastfood")])
    assert jax.config.jax_enable_x64
    np.testing.assert_allclose(np.load(out), here, atol=1e-5)
