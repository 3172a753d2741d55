"""Binding parameterizations to linen and nnx models."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn
from flax import nnx

from lrjax import binding as lb
from lrjax import param as P
from lrjax.binding.optim import optimizer


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
    bound = lb.bind(params, LORA_RULES, key=1)
    out = model.apply({"params": lb.materialize(bound)}, X)
    np.testing.assert_array_equal(out, model.apply({"params": params}, X))
    assert jax.tree.structure(lb.materialize(bound)) == jax.tree.structure(params)
    counts = lb.count_params(bound)
    assert counts == {"trainable": 2 * (4 + 8) + 2 * (8 + 3), "frozen": 4 * 8 + 8 + 8 * 3 + 3, "outer": 0}


def test_lora_binding_is_a_noop_at_init_nnx():
    model = NnxMLP(nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    bound = lb.bind(state, LORA_RULES, key=1)
    assert [name for name, _ in bound.params] == ["l1/bias", "l1/kernel", "l2/bias", "l2/kernel"]
    rebuilt = nnx.merge(graphdef, lb.materialize(bound))
    np.testing.assert_array_equal(rebuilt(X), model(X))


@pytest.mark.slow
def test_deep_lora_binding_is_near_noop_and_trains(linen_model):
    model, params = linen_model
    bound = lb.bind(params, {".*kernel": "deep_lora(depth=3, scale=1e-3)", ".*": "frozen()"}, key=0)
    out0 = model.apply({"params": params}, X)
    assert float(jnp.abs(model.apply({"params": lb.materialize(bound)}, X) - out0).max()) < 1e-6

    def loss(b):
        return jnp.mean((model.apply({"params": lb.materialize(b)}, X) - 1.0) ** 2)

    tx = optimizer(optax.adamw(1e-2, weight_decay=0.1), lb.roles(bound))
    state = tx.init(bound)
    b = bound
    for _ in range(20):
        updates, state = tx.update(jax.grad(loss)(b), state, b)
        b = optax.apply_updates(b, updates)
    assert float(loss(b)) < float(loss(bound))
    for name, _ in b.params:  # frozen leaves: unchanged even under weight decay
        base = b[name]["base"]
        np.testing.assert_array_equal(base, bound[name]["base"])


def test_uncovered_leaf_is_named(linen_model):
    _, params = linen_model
    with pytest.raises(ValueError, match="no binding rule covers parameter 'Dense_0/bias'"):
        lb.bind(params, [(".*kernel", "lowrank(2)")])


def test_bad_rank_at_bind_names_the_leaf(linen_model):
    _, params = linen_model
    with pytest.raises(ValueError, match="cannot bind 'Dense_0/kernel' \\(shape \\(8, 3\\)\\).*rank=4 exceeds"):
        lb.bind(params, [(".*kernel", "lowrank(4)"), (".*", "frozen()")])


def test_bound_is_a_pytree_under_jit(linen_model):
    model, params = linen_model
    bound = lb.bind(params, [("Dense_0/kernel", "lowrank(2)"), (".*", "dense()")])
    f = jax.jit(lambda b: model.apply({"params": lb.materialize(b)}, X))
    assert f(bound).shape == (5, 3)
    leaves = jax.tree.leaves(bound)
    assert len(leaves) == 5  # u, v for Dense_0/kernel; w for the other three


class CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(6, (3, 3))(x))
        return nn.Dense(3)(x.reshape(x.shape[0], -1))


IMAGES = jax.random.normal(jax.random.key(4), (2, 5, 5, 2))


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["lora(rank=2, alpha=4.0)", "lowrank(3)", "dlor(2)", "deep(2, width=4)",
                                  "subspace(dim=5)"])
def test_conv_kernels_are_matricized(spec):
    model = CNN()
    params = model.init(jax.random.key(0), IMAGES)["params"]
    bound = lb.bind(params, [(".*kernel", spec), (".*", "frozen()")], key=1)
    conv = bound.param("Conv_0/kernel")
    if spec.startswith("subspace"):
        assert isinstance(conv, P.Subspace)  # takes any shape itself
    else:
        assert isinstance(conv, P.Matricized) and conv.shape == (3, 3, 2, 6)
    w = lb.materialize(bound)["Conv_0"]["kernel"]
    assert w.shape == (3, 3, 2, 6)
    if spec.startswith(("lora", "subspace")):  # adapters: the original model at init
        np.testing.assert_array_equal(model.apply({"params": lb.materialize(bound)}, IMAGES),
                                      model.apply({"params": params}, IMAGES))
    if spec == "lowrank(3)":  # the (kh kw in, out) = (18, 6) matricization has rank <= 3
        assert np.linalg.matrix_rank(np.asarray(w).reshape(18, 6), tol=1e-5) == 3
    grads = jax.grad(lambda b: jnp.sum(model.apply({"params": lb.materialize(b)}, IMAGES) ** 2))(bound)
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads.theta["Conv_0/kernel"]))


class NnxDropout(nnx.Module):
    def __init__(self, rngs):
        self.l1 = nnx.Linear(4, 8, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.l2 = nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x):
        return self.l2(self.drop(jnp.tanh(self.l1(x))))


def test_nnx_model_with_dropout_trains_in_the_runner_and_resumes(tmp_path):
    from lrjax import dynamics

    model = NnxDropout(nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    bound = lb.bind(state, [(".*kernel", "lora(rank=2)"), (".*", "frozen()")], key=1)
    kinds = {name: p for name, p in bound.params}
    assert any("count" in n for n in kinds) and all(kinds[n] is lb.PASSTHROUGH for n in kinds if "rngs" in n)
    data = {"train": {"x": jax.random.normal(jax.random.key(2), (16, 4)), "y": jnp.ones((16, 3))}}

    def loss(b, batch, key):
        m = nnx.merge(graphdef, lb.materialize(b))
        nnx.reseed(m, dropout=key)
        return jnp.mean((m(batch["x"]) - batch["y"]) ** 2)

    tx = optimizer(optax.adam(1e-2), lb.roles(bound))
    kw = dict(data=data, batches=dynamics.Minibatches(8), chunk_size=10, checkpoint_every=1)
    straight = dynamics.run(loss, bound, tx, 40, **kw)
    assert straight.scalars["loss"][-10:].mean() < straight.scalars["loss"][:10].mean()
    dynamics.run(loss, bound, tx, 20, workdir=tmp_path, **kw)
    resumed = dynamics.run(loss, bound, tx, 40, workdir=tmp_path, **kw)  # typed keys round-trip the checkpoint
    assert resumed.resumed_from == 20
    np.testing.assert_array_equal(resumed.scalars["loss"], straight.scalars["loss"])


def test_batchnorm_statistics_pass_through_untouched():
    class BN(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            return nn.Dense(2)(nn.BatchNorm(use_running_average=not train)(nn.Dense(6)(x)))

    model = BN()
    variables = model.init(jax.random.key(0), X)
    variables = {**variables, "batch_stats": jax.tree.map(lambda a: a + 0.3, variables["batch_stats"])}
    bound = lb.bind(variables, [(".*kernel", "lora(2)"), (".*", "frozen()")], key=1)
    merged = lb.materialize(bound)
    for a, b in zip(jax.tree.leaves(merged["batch_stats"]), jax.tree.leaves(variables["batch_stats"])):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.apply(merged, X), model.apply(variables, X))
    roles = lb.roles(bound)
    assert all(r == "frozen" for name, _ in bound.params if name.startswith("batch_stats")
               for r in jax.tree.leaves(roles.theta[name]))


def test_bind_refuses_a_family_whose_init_has_the_wrong_shape():
    """A user family whose init ignores the shape is caught when binding, naming the leaf and both shapes
    (before, bind accepted it and materialize failed later, inside the model)."""
    import dataclasses

    from lrjax.param import Parameterization

    @dataclasses.dataclass(frozen=True)
    class Broken(Parameterization):
        def init(self, key, shape, dtype=jnp.float32):
            return {"w": jnp.zeros((shape[0], shape[1] + 1), dtype)}

        def materialize(self, theta):
            return theta["w"]

    with pytest.raises(ValueError, match=r"cannot bind 'kernel' \(shape \(3, 2\)\): .* materializes a \(3, 3\) weight"):
        lb.bind({"kernel": jnp.ones((3, 2))}, [(".*", Broken())])
