"""On-device minibatches for the compiled runner: the training set lives on the device, and each step
draws its batch inside the compiled loop.

``Minibatches(batch_size, train="train")``: ``data[train]`` is a pytree of arrays with a leading axis of
``n`` examples (e.g. ``{"x": (n, 28, 28, 1), "y": (n,)}``); the rest of ``data`` (a test set, say) is left
for recorders. Epoch ``e`` visits the examples in the order ``permutation(fold_in(k_order, e), n)``,
``n // batch_size`` batches of ``batch_size`` (the last ``n % batch_size`` examples of the order are
skipped that epoch); step ``t`` belongs to epoch ``t // (n // batch_size)``. The loss gets
``loss_fn(params, batch, key)`` with ``key = fold_in(k_step, t)`` (for dropout), where ``(k_order,
k_step) = split(run key)``. Batches and keys are functions of the run key and the step only: a resumed
run sees exactly the batches an uninterrupted one would, with nothing but the run key to checkpoint.
The permutation is drawn once per epoch (a ``lax.cond`` on the step, which every batch member shares, so
it stays a branch under ``vmap``).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Minibatches:
    """``batch_size`` examples of ``data[train]`` per step, in a fresh random order every epoch."""

    batch_size: int
    train: str = "train"

    def __post_init__(self):
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")

    def examples(self, data, batched: bool = False) -> int:
        """The number ``n`` of training examples (``ValueError`` when ``data`` does not fit)."""
        if not isinstance(data, dict) or self.train not in data:
            raise ValueError(f"minibatch runs need data as a dict with the training set under {self.train!r}; "
                             f"got {type(data).__name__}" + (f" with keys {sorted(data)}" if isinstance(data, dict) else ""))
        axis = 1 if batched else 0
        sizes = {np.shape(x)[axis] if np.ndim(x) > axis else None for x in jax.tree.leaves(data[self.train])}
        if len(sizes) != 1 or None in sizes:
            raise ValueError(f"every leaf of data[{self.train!r}] needs the same leading number of examples; got "
                             f"{sorted(map(str, sizes))}")
        n = sizes.pop()
        if n < self.batch_size:
            raise ValueError(f"batch_size={self.batch_size} exceeds the {n} training examples")
        return n

    def steps_per_epoch(self, n: int) -> int:
        return n // self.batch_size


def run_keys(key_data: jax.Array):
    """``(k_order, k_step)`` from a member's raw run key (``jax.random.key_data`` of a key)."""
    k_order, k_step = jax.random.split(jax.random.wrap_key_data(key_data))
    return k_order, k_step


def epoch_order(k_order, epoch, n: int) -> jax.Array:
    """The example order of ``epoch``: ``(n,)`` int32 indices."""
    return jax.random.permutation(jax.random.fold_in(k_order, epoch), n).astype(jnp.int32)


def order_at(spec: Minibatches, k_order, order: jax.Array, step, n: int) -> jax.Array:
    """The example order in force at ``step``: a fresh one at each epoch's first step, else ``order``."""
    per_epoch = spec.steps_per_epoch(n)
    return jax.lax.cond(step % per_epoch == 0, lambda: epoch_order(k_order, step // per_epoch, n), lambda: order)


def take_batch(spec: Minibatches, train, order: jax.Array, step, n: int):
    """The batch of ``step``: its slice of ``order`` gathered from every leaf of ``train``."""
    start = (step % spec.steps_per_epoch(n)) * spec.batch_size
    idx = jax.lax.dynamic_slice_in_dim(order, start, spec.batch_size)
    return jax.tree.map(lambda a: jnp.take(a, idx, axis=0), train)
