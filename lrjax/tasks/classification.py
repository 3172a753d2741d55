"""Classification: softmax cross-entropy, accuracy, and evaluation of a model on a held-out set.

``apply(params, x) -> logits (n, classes)``; labels are int ``(n,)``. ``evaluate`` runs the model over
the set in chunks of ``chunk`` examples (``lax.map``, so a 10,000-image test set never needs all its
activations at once) and returns the mean loss and the accuracy.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy ``-log softmax(logits)[label]``."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=-1))


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def evaluate(apply: Callable, params, x: jax.Array, y: jax.Array, chunk: int = 1000) -> dict:
    """``{"loss": mean cross-entropy, "accuracy": ...}`` of ``apply(params, x)`` over the whole set."""
    n = x.shape[0]
    if n == 0:
        raise ValueError("evaluate: the set is empty")
    chunk = min(chunk, n)
    full = (n // chunk) * chunk

    def sums(xb, yb):
        logits = apply(params, xb)
        return cross_entropy(logits, yb) * yb.shape[0], jnp.sum(jnp.argmax(logits, axis=-1) == yb)

    xs, ys = x[:full].reshape((n // chunk, chunk) + x.shape[1:]), y[:full].reshape(n // chunk, chunk)
    loss, correct = jax.lax.map(lambda b: sums(*b), (xs, ys))
    loss, correct = jnp.sum(loss), jnp.sum(correct)
    if full < n:
        rest_loss, rest_correct = sums(x[full:], y[full:])
        loss, correct = loss + rest_loss, correct + rest_correct
    return {"loss": loss / n, "accuracy": correct / n}
