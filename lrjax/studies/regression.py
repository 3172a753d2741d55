"""Full-batch regression of a network (``lrjax.models.param_mlp``) on ``(x, y)`` with the compiled runner, many seeds
as one vmapped program: ``loss = mean ||net(x) - y||^2 / out`` (mean squared error over samples and
outputs); the test error on held-out points is recorded every ``record_every`` steps (epochs)."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import dynamics
from lrjax.studies.matrix_recovery import first_step_below


def uniform_inputs(key, count: int, dim: int, dtype=jnp.float64):
    """``count`` points uniform in ``[-1, 1]^dim``."""
    return jax.random.uniform(key, (count, dim), dtype, -1.0, 1.0)


@dataclasses.dataclass
class Training:
    """``loss (seeds, steps)``; ``test_error (seeds, T)`` at ``test_step (T,)``; ``params`` (seed axis first)."""

    loss: np.ndarray
    test_step: np.ndarray
    test_error: np.ndarray
    params: object
    seconds: float

    def epochs_to(self, level: float) -> np.ndarray:
        """First epoch whose train MSE is ``<= level``, per seed (``-1``: never)."""
        return first_step_below(self.loss, level)


def train(net, data: dict, steps: int, *, seeds: int, lr: float = 1e-3, key=0, record_every: int = 500,
          chunk_size: int = 5000, dtype=jnp.float64, progress: bool | None = None, desc: str = "train") -> Training:
    """Adam(``lr``) on ``data = {"x", "y", "x_test", "y_test"}`` from ``seeds`` independent inits."""
    keys = jax.random.split(jax.random.key(key), seeds)
    thetas = jax.vmap(lambda k: net.init(k, dtype))(keys)

    def mse(theta, x, y):
        return jnp.mean((net.apply(theta, x) - y) ** 2)

    def loss(theta, d):
        return mse(theta, d["x"], d["y"])

    def test_error(theta, d):
        return mse(theta, d["x_test"], d["y_test"])

    record_every = min(record_every, steps)
    res = dynamics.run(loss, thetas, optax.adam(lr), steps, data=data, batched=True, record_every=record_every,
                       chunk_size=max(record_every, min(chunk_size, steps)), recorders={"test": dynamics.with_data(test_error)},
                       on_divergence="continue", progress=progress, desc=desc)
    return Training(res.scalars["loss"], res.records["step"], res.records["test"], res.params,
                    res.wall_time + res.compile_time)
