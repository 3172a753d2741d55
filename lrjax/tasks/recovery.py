"""Low-rank matrix recovery tasks on an end-to-end matrix ``W: (d, n)``: factorization, completion, sensing.

Losses are a mean over all entries (or measurements), as in Yaras et al.'s code (cjyaras/law-of-parsimony
5aa831a ``loss.py``: ``1/2 mean((M * (W - Phi))^2)``), so the step sizes of their figures (e.g. ``eta = 5e3``
for completion at ``d = 1000``) carry over unchanged. Kwon et al.'s code differs (soominkwon/comp-deep-nets
4349b87 ``loss.py``): its masked mean divides by the observed count ``sum(M)`` (``1/p`` times ours, so
their ``eta`` maps to ``eta / p`` here), and its sensing loss defaults to a sum.

- factorization: ``1/2 mean((W - Phi)^2)``; test error = the loss.
- completion (observed mask ``M``, fraction ``p``): ``1/2 mean(M * (W - Phi)^2)`` over all ``d n`` entries;
  test (recovery) error ``1/2 mean((1 - M) * (W - Phi)^2)`` on the unobserved entries.
- sensing (``m`` Gaussian ``A_i: (d, n)`` with entries ``N(0, 1 / (d n))``, ``y_i = <A_i, Phi>``):
  ``1/2 mean_i (<A_i, W> - y_i)^2``, whose expectation is ``1/2 mean((W - Phi)^2)`` (the factorization loss,
  so step sizes carry over); test error ``1/2 mean((W - Phi)^2)``.

``surrogate(data)`` is the spectral-initialisation surrogate of Kwon et al.: ``Phi`` for factorization,
``P_Omega(Phi) / p`` for completion, ``(d n / m) sum_i y_i A_i`` for sensing (each unbiased for ``Phi``).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp

from lrjax.tasks.factorization import low_rank_target


def observation_mask(key, shape: tuple[int, int], fraction: float, dtype=jnp.float64) -> jax.Array:
    """A 0/1 mask of ``shape`` with exactly ``int(fraction * d * n)`` ones at uniformly random entries."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"observation_mask: fraction must be in (0, 1], got {fraction}")
    n_entries = math.prod(shape)
    idx = jax.random.permutation(key, n_entries)[:int(fraction * n_entries)]
    return jnp.zeros((n_entries,), dtype).at[idx].set(1).reshape(shape)


def _mse(r):
    return 0.5 * jnp.mean(r * r)


def factorization_mean_loss(w, data):
    return _mse(w - data["target"])


def completion_loss(w, data):
    return _mse(data["mask"] * (w - data["target"]))


def completion_error(w, data):
    return _mse((1 - data["mask"]) * (w - data["target"]))


def sensing_loss(w, data):
    return _mse(jnp.einsum("mij,ij->m", data["a"], w) - data["y"])


@dataclasses.dataclass(frozen=True)
class RecoveryTask:
    """``loss(W, data)``, ``test_error(W, data)``, ``surrogate(data) -> (d, n)`` and the ``data`` pytree."""

    name: str
    loss: Callable
    test_error: Callable
    data: dict
    surrogate: jax.Array


def make_task(name: str, key, d: int, rank: int, *, fraction: float = 0.2, measurements: int | None = None,
              spectrum: str = "gaussian", dtype=jnp.float64) -> RecoveryTask:
    """A ``RecoveryTask`` with a random rank-``rank`` ``(d, d)`` target (``low_rank_target``)."""
    k_target, k_obs = jax.random.split(key)
    target = low_rank_target(k_target, d, rank, dtype, spectrum=spectrum)
    if name == "factorization":
        data = {"target": target}
        return RecoveryTask(name, factorization_mean_loss, factorization_mean_loss, data, target)
    if name == "completion":
        mask = observation_mask(k_obs, (d, d), fraction, dtype)
        data = {"target": target, "mask": mask}
        return RecoveryTask(name, completion_loss, completion_error, data, mask * target / fraction)
    if name == "sensing":
        m = measurements if measurements is not None else 4 * d * rank
        if m <= 0:
            raise ValueError(f"make_task: measurements must be positive, got {m}")
        a = jax.random.normal(k_obs, (m, d, d), dtype) / d
        y = jnp.einsum("mij,ij->m", a, target)
        data = {"target": target, "a": a, "y": y}
        return RecoveryTask(name, sensing_loss, factorization_mean_loss, data,
                            jnp.einsum("m,mij->ij", y, a) * (d * d / m))
    raise ValueError(f"make_task: unknown task {name!r}; use 'factorization', 'completion' or 'sensing'")
