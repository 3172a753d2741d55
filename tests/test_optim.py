"""The role-based optimizer: outer factors at the discrepant rate, frozen leaves without update or state."""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import param as P
from lrjax.binding.optim import optimizer


def test_outer_factors_get_discrepant_rate():
    p = P.compressed_deep(depth=2, width=2, scale=0.5)
    theta = p.init(jax.random.key(0), (4, 4))
    grads = jax.tree.map(jnp.ones_like, theta)
    tx = optimizer(optax.sgd(1.0), p.roles(theta), outer_lr_scale=0.01)
    updates, _ = tx.update(grads, tx.init(theta), theta)
    fs = updates["factors"]
    np.testing.assert_allclose(fs[0], -0.01)
    np.testing.assert_allclose(fs[-1], -0.01)
    np.testing.assert_allclose(fs[1], -1.0)


def test_frozen_leaves_get_no_update_and_no_state():
    p = P.lora(2)
    theta = p.init(jax.random.key(0), (4, 3))
    tx = optimizer(optax.adam(1e-2), p.roles(theta))
    state = tx.init(theta)
    grads = jax.tree.map(jnp.ones_like, theta)
    updates, _ = tx.update(grads, state, theta)
    np.testing.assert_array_equal(updates["base"], 0.0)
    assert np.abs(np.asarray(updates["u"])).min() > 0
    adam_states = [s for s in jax.tree.leaves(state) if np.ndim(s) == 2]
    assert sorted(a.shape for a in adam_states) == sorted([(4, 2), (4, 2), (3, 2), (3, 2)])  # mu, nu of u, v only
