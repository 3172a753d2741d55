"""Full-batch regression of a network (``lrjax.models.param_mlp``) on ``(x, y)`` with the compiled runner, many seeds
as one vmapped program: ``loss = mean ||net(x) - y||^2 / out`` (mean squared error over samples and
outputs); the test error on held-out points is recorded every ``record_every`` steps (epochs)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from lrjax.studies import recipe


def uniform_inputs(key, count: int, dim: int, dtype=jnp.float64):
    """``count`` points uniform in ``[-1, 1]^dim``."""
    return jax.random.uniform(key, (count, dim), dtype, -1.0, 1.0)


def train(net, data: dict, steps: int, *, seeds: int, lr: float = 1e-3, key=0, record_every: int = 500,
          chunk_size: int = 5000, dtype=jnp.float64, progress: bool | None = None,
          desc: str = "train") -> recipe.Training:
    """Adam(``lr``) on ``data = {"x", "y", "x_test", "y_test"}`` from ``seeds`` independent inits, through the
    training recipe: ``evaluation`` is the test error (``step``: epochs); members that diverge keep going."""
    keys = jax.random.split(jax.random.key(key), seeds)
    thetas = jax.vmap(lambda k: net.init(k, dtype))(keys)

    def mse(theta, x, y):
        return jnp.mean((net.apply(theta, x) - y) ** 2)

    def loss(theta, d):
        return mse(theta, d["x"], d["y"])

    def test_error(theta, d):
        return mse(theta, d["x_test"], d["y_test"])

    record_every = min(record_every, steps)
    return recipe.train(loss, thetas, optax.adam(lr), steps, data=data, evaluation=("test", test_error),
                        batched=True, record_every=record_every, chunk_size=max(record_every, min(chunk_size, steps)),
                        on_divergence="continue", progress=progress, label=desc, num_params=net.num_params())
