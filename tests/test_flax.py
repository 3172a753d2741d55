"""Binding parameterizations to linen and nnx models; optimizer labels; the nnx Linear layer."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn
from flax import nnx

import lrjax.flax as lf
from lrjax import param as P


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(3)(nn.tanh(nn.Dense(8)(x)))


class NnxMLP(nnx.Module):
    def __init__(self, rngs):
        self.l1 = nnx.Linear(4, 8, rngs=rngs)
        self.l2 = nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x):
        return self.l2(jnp.tanh(self.l1(x)))


X = jax.random.normal(jax.random.key(9), (5, 4))
LORA_RULES = [(".*kernel", "lora(rank=2, alpha=4.0)"), (".*", "frozen()")]


@pytest.fixture(scope="module")
def linen_model():
    model = MLP()
    return model, model.init(jax.random.key(0), X)["params"]


def test_lora_binding_is_a_noop_at_init_linen(linen_model):
    model, params = linen_model
    bound = lf.bind(params, LORA_RULES, key=1)
    out = model.apply({"params": lf.materialize(bound)}, X)
    np.testing.assert_array_equal(out, model.apply({"params": params}, X))
    assert jax.tree.structure(lf.materialize(bound)) == jax.tree.structure(params)
    counts = lf.count_params(bound)
    assert counts == {"trainable": 2 * (4 + 8) + 2 * (8 + 3), "frozen": 4 * 8 + 8 + 8 * 3 + 3, "outer": 0}


def test_lora_binding_is_a_noop_at_init_nnx():
    model = NnxMLP(nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    bound = lf.bind(state, LORA_RULES, key=1)
    assert [name for name, _ in bound.params] == ["l1/bias", "l1/kernel", "l2/bias", "l2/kernel"]
    rebuilt = nnx.merge(graphdef, lf.materialize(bound))
    np.testing.assert_array_equal(rebuilt(X), model(X))


def test_deep_lora_binding_is_near_noop_and_trains(linen_model):
    model, params = linen_model
    bound = lf.bind(params, {".*kernel": "deep_lora(depth=3, scale=1e-3)", ".*": "frozen()"}, key=0)
    out0 = model.apply({"params": params}, X)
    assert float(jnp.abs(model.apply({"params": lf.materialize(bound)}, X) - out0).max()) < 1e-6

    def loss(b):
        return jnp.mean((model.apply({"params": lf.materialize(b)}, X) - 1.0) ** 2)

    tx = lf.optimizer(optax.adamw(1e-2, weight_decay=0.1), lf.roles(bound))
    state = tx.init(bound)
    b = bound
    for _ in range(20):
        updates, state = tx.update(jax.grad(loss)(b), state, b)
        b = optax.apply_updates(b, updates)
    assert float(loss(b)) < float(loss(bound))
    for name, _ in b.params:  # frozen leaves: unchanged even under weight decay
        base = b[name]["base"]
        np.testing.assert_array_equal(base, bound[name]["base"])


def test_outer_factors_get_discrepant_rate():
    p = P.compressed_deep(depth=2, width=2, scale=0.5)
    theta = p.init(jax.random.key(0), (4, 4))
    grads = jax.tree.map(jnp.ones_like, theta)
    tx = lf.optimizer(optax.sgd(1.0), p.roles(theta), outer_lr_scale=0.01)
    updates, _ = tx.update(grads, tx.init(theta), theta)
    fs = updates["factors"]
    np.testing.assert_allclose(fs[0], -0.01) and np.testing.assert_allclose(fs[-1], -0.01)
    np.testing.assert_allclose(fs[1], -1.0)


def test_uncovered_leaf_is_named(linen_model):
    _, params = linen_model
    with pytest.raises(ValueError, match="no binding rule covers parameter 'Dense_0/bias'"):
        lf.bind(params, [(".*kernel", "lowrank(2)")])


def test_bad_rank_at_bind_names_the_leaf(linen_model):
    _, params = linen_model
    with pytest.raises(ValueError, match="cannot bind 'Dense_0/kernel' \\(shape \\(8, 3\\)\\).*rank=4 exceeds"):
        lf.bind(params, [(".*kernel", "lowrank(4)"), (".*", "frozen()")])


def test_bound_is_a_pytree_under_jit(linen_model):
    model, params = linen_model
    bound = lf.bind(params, [("Dense_0/kernel", "lowrank(2)"), (".*", "dense()")])
    f = jax.jit(lambda b: model.apply({"params": lf.materialize(b)}, X))
    assert f(bound).shape == (5, 3)
    leaves = jax.tree.leaves(bound)
    assert len(leaves) == 5  # u, v for Dense_0/kernel; w for the other three


@pytest.mark.parametrize("spec", ["dense()", "lowrank(2)", "lora(2)", "dlor(1)", "deep(3, width=2)"])
def test_nnx_linear(spec):
    layer = lf.Linear(4, 6, param=spec, rngs=nnx.Rngs(0))
    y = layer(X)
    np.testing.assert_allclose(y, X @ layer.weight() + layer.bias.get_value(), rtol=1e-5, atol=1e-5)
    params = nnx.state(layer, nnx.Param)
    n_trainable = sum(l.size for l in jax.tree.leaves(params))
    assert n_trainable == layer.parameterization.num_params((4, 6)) + 6

    grads = nnx.grad(lambda m: jnp.sum(m(X) ** 2))(layer)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
