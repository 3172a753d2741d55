"""Intercepted Dense layers: the same outputs and gradients as materializing W."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from lrjax import binding
from lrjax.binding import intercept

pytestmark = pytest.mark.x64   # every test here checks float64 numerics (tests/conftest.py)


class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(4, (3, 3))(x)).reshape(x.shape[0], -1)
        x = nn.tanh(nn.Dense(16)(x))
        return nn.Dense(3, use_bias=False)(x)


with jax.enable_x64(True):   # float64 data, built once (tests/conftest.py)
    X = jax.random.normal(jax.random.key(0), (5, 6, 6, 2), jnp.float64)


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["lora(2, alpha=4.0)", "lowrank(3)", "dlor(1)", "deep(3, width=5)",
                                  "deep_lora(3, scale=0.1)", "subspace(4)", "dense()"])
def test_intercepted_forward_and_gradient_equal_materialized(spec):
    model = Net()
    base = model.init(jax.random.key(1), X)["params"]
    bound = binding.bind(base, [(".*kernel", spec), (".*", "dense()")], key=2)
    bound = jax.tree.map(lambda a: a + 0.05, bound)  # away from init (LoRA's v = 0)

    def full(b):
        return jnp.sum(jnp.sin(model.apply({"params": binding.materialize(b)}, X)))

    def cheap(b):
        return jnp.sum(jnp.sin(intercept.apply(model, b, X)))

    np.testing.assert_allclose(cheap(bound), full(bound), rtol=1e-5)  # float32 params: summation order
    for a, b in zip(jax.tree.leaves(jax.grad(cheap)(bound)), jax.tree.leaves(jax.grad(full)(bound))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert intercept.cheaper_apply(bound.param("Dense_0/kernel")) == (spec not in ("subspace(4)", "dense()"))


def test_kernels_of_other_layers_are_materialized():
    class General(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(2)(nn.DenseGeneral(4, name="gen")(x))

    model = General()
    x = jnp.ones((3, 5))
    bound = binding.bind(model.init(jax.random.key(0), x)["params"], [(".*kernel", "lora(2)"), (".*", "dense()")])
    assert intercept.dense_kernels(model, binding.materialize(bound), x) == {"Dense_0/kernel"}
    np.testing.assert_allclose(intercept.apply(model, bound, x),
                               model.apply({"params": binding.materialize(bound)}, x), rtol=1e-6)
