"""Spectral tools, the top-k tracker against jnp.linalg.svd, compression, and the theorem check."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn

from lrjax import binding
from lrjax import analysis, dynamics, param, tasks


def _planted(key, m, n, s, dtype=jnp.float64):
    ku, kv = jax.random.split(key)
    u = jnp.linalg.qr(jax.random.normal(ku, (m, len(s)), dtype))[0]
    v = jnp.linalg.qr(jax.random.normal(kv, (n, len(s)), dtype))[0]
    return (u * jnp.asarray(s, dtype)) @ v.T, u, v


@pytest.mark.x64
def test_principal_angles_and_alignment():
    e = jnp.eye(4)
    a = e[:, :2]
    theta = 0.3
    b = jnp.stack([e[:, 0], jnp.cos(theta) * e[:, 1] + jnp.sin(theta) * e[:, 2]], axis=1)
    np.testing.assert_allclose(analysis.principal_angles(a, b), [0.0, theta], atol=1e-7)
    np.testing.assert_allclose(analysis.subspace_alignment(a, b), 1.0, atol=1e-12)
    np.testing.assert_allclose(analysis.sin_largest_angle(a, b), np.sin(theta), atol=1e-12)
    comp = analysis.orthogonal_complement(a)
    np.testing.assert_allclose(comp.T @ a, 0.0, atol=1e-12)


@pytest.mark.x64
def test_rank_measures():
    w, _, _ = _planted(jax.random.key(0), 8, 6, [3.0, 2.0, 1.0])
    s = analysis.singular_values(w)
    assert int(analysis.numerical_rank(s, shape=w.shape)) == 3
    np.testing.assert_allclose(analysis.stable_rank(w), (9 + 4 + 1) / 9)
    np.testing.assert_allclose(analysis.effective_rank(jnp.ones(5)), 5.0, rtol=1e-12)
    assert 1.0 < float(analysis.effective_rank(s[:3])) < 3.0


def test_trajectory_pca_recovers_a_line():
    t = np.linspace(0, 1, 20)[:, None]
    x = t * np.array([[1.0, 2.0, 0.0]]) + 5.0
    mean, comps, ratio = analysis.trajectory_pca(x, k=1)
    np.testing.assert_allclose(np.abs(comps[0]), np.array([1, 2, 0]) / np.sqrt(5), atol=1e-12)
    assert ratio[0] > 1 - 1e-12


@pytest.mark.slow
@pytest.mark.parametrize("dtype, rtol", [(jnp.float64, 1e-12), (jnp.float32, 2e-5)])
def test_topk_tracker_matches_svd(dtype, rtol):
    """A slowly rotating matrix with a spectral gap: after warm-up, each step's Ritz values match svd."""
    d, k = 40, 4
    top = [5.0, 4.0, 3.0, 2.5]
    w0, _, _ = _planted(jax.random.key(1), d, d, top, dtype)
    bulk = 0.1 * jnp.linalg.qr(jax.random.normal(jax.random.key(2), (d, d), dtype))[0]
    skew = jax.random.normal(jax.random.key(3), (d, d), dtype)
    rot = jax.scipy.linalg.expm(1e-3 * (skew - skew.T))
    tracker = analysis.TopKTracker(lambda w: w[None], k=k)
    q = tracker.init(w0 + bulk)
    w = w0 + bulk
    update = jax.jit(tracker.update)
    for t in range(30):
        q, values = update(q, w)
        if t >= 15:
            s = jnp.linalg.svd(w, compute_uv=False)
            np.testing.assert_allclose(values["top"][0], s[:k], rtol=rtol)
            rms = jnp.sqrt(jnp.mean(s[k:] ** 2))
            np.testing.assert_allclose(values["bulk_rms"][0], rms, rtol=100 * rtol)
        w = rot @ w
    # the bulk of w0 + bulk is not flat: spread must be clearly non-zero; a flat bulk gives ~0
    assert float(values["bulk_spread"][0]) > 1e-3
    # several draws: the spread is computed without cancellation, so it is ~sqrt(d) eps on every one
    # (E[s^4] - E[s^2]^2 gave up to 2e-8 in float64 depending on rounding)
    for seed in range(4, 10):
        flat = _planted(jax.random.key(seed), d, d, top, dtype)[0]
        u, _, vt = jnp.linalg.svd(flat)
        flat = flat + 0.1 * u[:, k:] @ vt[k:]
        q = tracker.init(flat)
        for _ in range(10):
            q, values = update(q, flat)
        assert float(values["bulk_spread"][0]) < 10 * rtol, seed


@pytest.mark.x64
def test_tracker_runs_inside_the_runner():
    p = param.deep(3, scale=0.5)
    target = tasks.low_rank_target(jax.random.key(0), 12, 2)
    theta = p.init(jax.random.key(1), (12, 12), jnp.float64)
    res = dynamics.run(tasks.factorization_loss, theta, optax.sgd(0.1), 60, data=target, record_every=1,
                       recorders={"top": analysis.TopKTracker(analysis.deep_factors, k=4),
                                  "full": analysis.factor_spectra})
    assert res.records["top/top"].shape == (61, 3, 4)
    # the 4th value sits ~2% above the bulk (a small gap), so it converges slowest: 1e-6 relative
    np.testing.assert_allclose(res.records["top/top"][-20:], res.records["full"][-20:, :, :4], rtol=1e-6)


def test_rho_recursion_single_layer_closed_form():
    rho = analysis.rho_trajectory([0.5], eta=0.1, weight_decay=0.2, steps=3)
    # L = 1: prod over k != l is empty (1), so rho(t+1) = rho(t) (1 - eta lam - eta)
    np.testing.assert_allclose(rho[:, 0], 0.5 * (1 - 0.02 - 0.1) ** np.arange(4))


@pytest.mark.x64
def test_compress_deep_matches_at_init_within_prop2():
    d, r, eps = 16, 2, 1e-2
    deep = param.deep(3, scale=eps)
    theta = deep.init(jax.random.key(0), (d, d), jnp.float64)
    target = tasks.low_rank_target(jax.random.key(1), d, r)
    cp, ct = analysis.compress(deep, theta, lambda t: tasks.factorization_loss(t, target), rank=r)
    assert [f.shape for f in ct["factors"]] == [(d, 4), (4, 4), (4, 4), (4, 4), (4, d)]
    gap = float(jnp.sum((deep.materialize(theta) - cp.materialize(ct)) ** 2))
    np.testing.assert_allclose(gap, (d - 2 * r) * eps ** 6, rtol=1e-8)
    assert cp.roles(ct)["factors"][0] == param.OUTER


@pytest.mark.x64
def test_energy_outside_a_subspace():
    target, u, _ = _planted(jax.random.key(3), 12, 9, [3.0, 1.0])
    np.testing.assert_allclose(analysis.energy_outside(u, target), 0.0, atol=1e-14)
    # one of the two directions: s2^2 / (s1^2 + s2^2) = 1 / 10 outside
    np.testing.assert_allclose(analysis.energy_outside(u[:, :1], target), 1.0 / 10.0, rtol=1e-12)
    other = analysis.orthogonal_complement(u)[:, :3]
    np.testing.assert_allclose(analysis.energy_outside(other, target), 1.0, rtol=1e-12)
    # two sides: the least-squares optimum min_M ||V M Q^T - Phi||^2 / ||Phi||^2, solved independently
    v = jnp.linalg.qr(jax.random.normal(jax.random.key(4), (12, 3), jnp.float64))[0]
    q = jnp.linalg.qr(jax.random.normal(jax.random.key(5), (9, 2), jnp.float64))[0]
    design = np.stack([np.outer(v[:, i], q[:, j]).ravel() for i in range(3) for j in range(2)], 1)
    _, residual, *_ = np.linalg.lstsq(design, np.asarray(target).ravel(), rcond=None)
    np.testing.assert_allclose(analysis.energy_outside(v, target, q), residual[0] / np.sum(target ** 2), rtol=1e-10)
    # compression of a deep factorization from the gradient at init keeps the whole low-rank target
    deep = param.deep(3, scale=1e-3)
    theta = deep.init(jax.random.key(0), target.shape, jnp.float64)
    _, ct = analysis.compress(deep, theta, lambda t: tasks.factorization_loss(t, target), rank=2)
    assert float(analysis.energy_outside(ct["factors"][0], target)) < 1e-10


@pytest.mark.slow
@pytest.mark.x64
def test_compress_bound_deep_lora_model():
    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(6)(jnp.tanh(nn.Dense(10)(x)))

    model, x = MLP(), jax.random.normal(jax.random.key(0), (32, 8), jnp.float64)
    y = jax.random.normal(jax.random.key(1), (32, 6), jnp.float64)
    params = model.init(jax.random.key(2), x)["params"]
    bound = binding.bind(params, [(".*kernel", "deep_lora(depth=3, scale=1e-2)"), (".*", "frozen()")])

    def loss(b):
        return jnp.mean((model.apply({"params": binding.materialize(b)}, x) - y) ** 2)

    small = analysis.compress_bound(bound, loss, rank=2)
    kernel = small.param("Dense_1/kernel")
    assert isinstance(kernel, param.DeepLoRA) and kernel.deep.width == 4
    assert [f.shape for f in small["Dense_1/kernel"]["factors"]] == [(8, 4), (4, 4), (4, 4), (4, 4), (4, 10)]
    # the compressed update is the projection V V^T of the original's: within eps^3 of it
    np.testing.assert_allclose(loss(small), loss(bound), atol=1e-5)
    counts = binding.count_params(small)
    assert counts["outer"] == 8 * 4 + 4 * 10 + 10 * 4 + 4 * 6 and counts["trainable"] == 2 * 3 * 16


SOLVER_CALL = re.compile(r'custom_call_target="[^"]*(potrf|trsm|syev|geqrf|orgqr|gesv|triangular)[^"]*"|triangular-solve\(',
                         re.IGNORECASE)


def test_tracker_solver_calls_do_not_grow_with_depth():
    """All k x k factorisations of the L matrices are batched: the compiled update has as many solver calls for
    L = 4 as for L = 1, and no per-matrix Householder QR (the GPU cost of these calls is launch latency)."""
    tracker = analysis.TopKTracker(lambda ws: list(ws), k=5)
    counts = []
    for depth in (1, 4):
        ws = [jnp.eye(30, dtype=jnp.float32)] * depth
        hlo = jax.jit(tracker.update).lower(tracker.init(ws), ws).compile().as_text()
        counts.append(len(SOLVER_CALL.findall(hlo)))
        assert "geqrf" not in hlo.lower()
    assert counts[0] == counts[1] > 0, counts


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_tracker_zero_and_rank_deficient_matrices(dtype):
    """W = 0 (a zero-initialised LoRA factor) and rank(W) = 3 < k stay finite and orthonormal; the top values
    are right to the sqrt(eps) resolution of W^T W."""
    d, k = 60, 8
    full, _, _ = _planted(jax.random.key(5), d, d, list(np.geomspace(10.0, 1e-2, d)), dtype)
    low, _, _ = _planted(jax.random.key(6), d, d, [10.0, 5.0, 2.0], dtype)
    ws = jnp.stack([full, jnp.zeros_like(full), low])
    tracker = analysis.TopKTracker(lambda w: w, k=k)
    update = jax.jit(tracker.update)
    qs = tracker.init(ws)
    for _ in range(40):
        qs, values = update(qs, ws)
    for q in qs:
        np.testing.assert_allclose(q.T @ q, np.eye(k), atol=50 * jnp.finfo(dtype).eps)
    expected = np.stack([np.linalg.svd(np.asarray(w, np.float64), compute_uv=False)[:k] for w in ws])
    np.testing.assert_allclose(values["top"], expected, atol=3 * np.sqrt(jnp.finfo(dtype).eps) * 10.0)
    assert all(np.all(np.isfinite(v)) for v in values.values())


@pytest.mark.slow
@pytest.mark.x64
def test_tracker_matrices_of_different_shapes():
    """Unequal shapes share one zero-padded state: each matrix's top-k and bulk match its own svd."""
    shapes, k = [(30, 20), (20, 40), (50, 30)], 3
    ws = [_planted(jax.random.key(20 + i), m, n, [4.0, 3.0, 2.0] + [0.5 / (j + 1) for j in range(min(m, n) - 3)])[0]
          for i, (m, n) in enumerate(shapes)]
    tracker = analysis.TopKTracker(lambda w: w, k=k)
    q = tracker.init(ws)
    assert q.shape == (3, 40, k)
    update = jax.jit(tracker.update)
    for _ in range(60):
        q, values = update(q, ws)
    for i, (w, (m, n)) in enumerate(zip(ws, shapes)):
        s = np.linalg.svd(np.asarray(w), compute_uv=False)
        np.testing.assert_allclose(values["top"][i], s[:k], rtol=1e-12)
        np.testing.assert_allclose(values["bulk_rms"][i], np.sqrt(np.sum(s[k:] ** 2) / (n - k)), rtol=1e-10)
        bulk = np.concatenate([s[k:] ** 2, np.zeros(n - len(s))])  # n - k bulk values, zeros where n > m
        np.testing.assert_allclose(values["bulk_spread"][i], bulk.std() / bulk.mean(), rtol=1e-10)
        assert np.all(np.asarray(q[i, n:]) == 0)  # padding rows stay exactly zero


@pytest.mark.parametrize("dtype, log_cond", [(jnp.float64, 10), (jnp.float32, 4)])
def test_orthonormalize_ill_conditioned_blocks(dtype, log_cond):
    """Shifted CholeskyQR3 gives an orthonormal basis of the same span as QR, for cond(Y) = 10^log_cond."""
    ys = jnp.stack([_planted(jax.random.key(7 + i), 80, 6, list(np.geomspace(1.0, 10.0 ** -log_cond, 6)), dtype)[0]
                    for i in range(2)])
    eps = float(jnp.finfo(dtype).eps)
    for y, q in zip(ys, analysis.orthonormalize(ys)):
        np.testing.assert_allclose(q.T @ q, np.eye(6), atol=100 * eps)
        # same span: projecting Y onto span(Q) keeps it, to eps * cond
        np.testing.assert_allclose(q @ (q.T @ y), y, atol=100 * eps * 10.0 ** log_cond * float(jnp.abs(y).max()))


def test_tracker_rejects_bad_sizes():
    with pytest.raises(ValueError, match="k >= 1"):
        analysis.TopKTracker(analysis.deep_factors, k=0)
    with pytest.raises(ValueError, match="at least k \\+ 1 columns"):
        analysis.TopKTracker(lambda w: [w], k=4).init(jnp.ones((6, 4)))
    analysis.TopKTracker(lambda w: [w], k=4, moments=False).init(jnp.ones((6, 4)))  # no bulk needed


@pytest.mark.x64
def test_bulk_spread_split_blocks_match_the_full_gram():
    """The symmetric n/2-block evaluation of ||B^T B - s2 (I - QQ^T)||_F^2 equals the one-block one."""
    from lrjax.analysis.tracking import _centred_norm2
    w = jax.random.normal(jax.random.key(0), (30, 20))
    q = jnp.linalg.qr(jax.random.normal(jax.random.key(1), (20, 3)))[0]
    bulk = w - (w @ q) @ q.T
    s2 = jnp.sum(bulk * bulk) / 17
    np.testing.assert_allclose(_centred_norm2(bulk, q, s2, split_from=4), _centred_norm2(bulk, q, s2), rtol=1e-12)
    full = bulk.T @ bulk - s2 * (jnp.eye(20) - q @ q.T)
    np.testing.assert_allclose(_centred_norm2(bulk, q, s2), jnp.sum(full * full), rtol=1e-12)
