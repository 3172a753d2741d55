"""The nnx Linear layer whose weight is a parameterization."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lrjax.binding.nnx_layer import Linear

X = jax.random.normal(jax.random.key(9), (5, 4))


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["dense()", "lowrank(2)", "lora(2)", "dlor(1)", "deep(3, width=2)"])
def test_nnx_linear(spec):
    layer = Linear(4, 6, param=spec, rngs=nnx.Rngs(0))
    y = layer(X)
    np.testing.assert_allclose(y, X @ layer.weight() + layer.bias.get_value(), rtol=1e-5, atol=1e-5)
    params = nnx.state(layer, nnx.Param)
    n_trainable = sum(l.size for l in jax.tree.leaves(params))
    assert n_trainable == layer.parameterization.num_params((4, 6)) + 6

    grads = nnx.grad(lambda m: jnp.sum(m(X) ** 2))(layer)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
