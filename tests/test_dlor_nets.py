"""Networks from parameterized layers, the DLoR approximation constructions, and regression training."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrjax import param
from lrjax.models import param_mlp
from lrjax.studies import dlor_approximation as ap
from lrjax.studies import regression

pytestmark = pytest.mark.x64   # every test here checks float64 numerics (tests/conftest.py)

with jax.enable_x64(True):   # float64 data, built once (tests/conftest.py)
    X = jax.random.uniform(jax.random.key(0), (64, 6), jnp.float64, -1, 1)


def test_mlp_matches_hand_written_forward_and_counts_params():
    net = param_mlp.mlp((6, 5, 4, 3), "dlor(1)", "gelu", first="dense()")
    th = net.init(jax.random.key(1), jnp.float64)
    h = X
    for i, (p, t) in enumerate(zip(net.params, th)):
        h = h @ p.materialize(t["w"]) + t["b"]
        h = jax.nn.gelu(h) if i < 2 else h
    np.testing.assert_allclose(net.apply(th, X), h, rtol=1e-12, atol=1e-14)
    assert net.num_params() == (30 + 5) + (4 + 5 + 4 + 4) + (3 + 4 + 3 + 3)
    assert net.num_params() == sum(x.size for x in jax.tree.leaves(th))


def test_wide_sums_independent_branches():
    wide = param_mlp.Wide(param_mlp.mlp((6, 4, 2), "lowrank(1)"), 3)
    th = wide.init(jax.random.key(2), jnp.float64)
    branches = [jax.tree.map(lambda t: t[k], th) for k in range(3)]
    expected = sum(wide.branch.apply(b, X) for b in branches)
    np.testing.assert_allclose(wide.apply(th, X), expected, rtol=1e-12)
    assert not np.allclose(wide.branch.apply(branches[0], X), wide.branch.apply(branches[1], X))
    assert wide.num_params() == sum(x.size for x in jax.tree.leaves(th))


@pytest.mark.parametrize("kwargs, match", [
    (dict(sizes=(3,), params=()), "sizes"), (dict(sizes=(3, 2), params=("dense()", "dense()")), "layers need"),
    (dict(sizes=(3, 2), params=("dense()",), act="nope"), "unknown activation 'nope'"),
])
def test_mlp_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        param_mlp.ParamMLP(**kwargs)


@pytest.fixture(scope="module")
def teacher():
    with jax.enable_x64(True):   # module-scoped float64 data (tests/conftest.py)
        t = ap.dense_teacher(jax.random.key(3), 6, 2)
        a = np.asarray(t["a"])
        return t, param.decompose_multiplicative(a, 2), param.decompose_additive(a, 2)


@pytest.mark.parametrize("act", ["tanh", "softplus"])
@pytest.mark.parametrize("kind", ["deep", "wide"])
def test_approximants_converge_at_rate_h(teacher, act, kind):
    t, mul, add = teacher
    build, dec = (ap.deep_approximant, mul) if kind == "deep" else (ap.wide_approximant, add)
    f = ap.teacher_apply(t, X, act)
    hs = np.array([1e-3, 1e-4, 1e-5])
    errs = [ap.relative_sup_error(f, build(t, dec, act, h)(X)) for h in hs]
    assert errs[0] > errs[1] > errs[2] > 0
    assert 0.9 < ap.loglog_slope(hs, errs) < 1.1


def test_relu_approximant_is_exact_below_threshold(teacher):
    t, mul, add = teacher
    f = ap.teacher_apply(t, X, "relu")
    assert ap.relative_sup_error(f, ap.deep_approximant(t, mul, "relu", 1e-3)(X)) < 1e-11
    assert ap.relative_sup_error(f, ap.wide_approximant(t, add, "relu", 1e-3)(X)) < 1e-11
    assert ap.relative_sup_error(f, ap.deep_approximant(t, mul, "relu", 10.0)(X)) > 1e-3   # ReLU kink reached
    with pytest.raises(ValueError, match="slope"):
        ap.linearized("relu", -1.0, 0.1)


@pytest.mark.parametrize("k", [1, 3, 4])
def test_sawtooth_networks_exact_with_relu_and_order_h_smooth(k):
    x = jnp.linspace(0, 1, 1025)
    relu = ap.smooth_relu("relu", 0.0)
    for net in (ap.deep_sawtooth, ap.wide_sawtooth):
        np.testing.assert_allclose(net(x, k, relu), ap.sawtooth(x, k), atol=1e-12)
        e1, e2 = (float(jnp.max(jnp.abs(net(x, k, ap.smooth_relu("softplus", h)) - ap.sawtooth(x, k))))
                  for h in (1e-2, 1e-3))
        assert 8 < e1 / e2 < 12
    assert ap.sawtooth_params(k) == {"deep": 6 * k, "wide": 3 * 2 ** k}


def test_loglog_slope_ignores_round_off_floor():
    h = np.logspace(-6, -1, 6)
    assert np.isclose(ap.loglog_slope(h, 3 * h ** 2 + 1e-16), 2.0, atol=1e-3)
    assert np.isnan(ap.loglog_slope(h, np.full(6, 1e-14)))


def test_regression_train_fits_a_linear_map():
    kx, kw = jax.random.split(jax.random.key(4))
    x = regression.uniform_inputs(kx, 64, 2)
    w = jax.random.normal(kw, (2, 2), jnp.float64)
    data = {"x": x, "y": x @ w, "x_test": x[:8], "y_test": x[:8] @ w}
    tr = regression.train(param_mlp.mlp((2, 2), "dense()"), data, 400, seeds=3, lr=3e-2, record_every=100)
    assert tr.loss.shape == (3, 400) and tr.evaluation.shape == (3, 5)
    assert np.all(tr.loss[:, -1] < 1e-3 * tr.loss[:, 0])
    ep = tr.steps_to(1e-2 * float(tr.loss[0, 0]), "loss")
    assert np.all((ep > 0) & (ep < 400)) and np.all(tr.steps_to(-1.0, "loss") == -1)
