"""Training the small ReLU networks of the polytope studies: PyTorch-default init, the BCE and MSE losses.

A network is ``((W_1, b_1), ..., (W_L, b_L))`` with ``W_l: (n_{l-1}, n_l)``, ending in one logit
(``polytope.forward``); data is ``{"x": (n, d), "y": (n,) in {0, 1}}``.
"""
from __future__ import annotations

import jax
import numpy as np
import optax

from lrjax.polytope.construct import forward


def init(key, widths, d: int = 2):
    """PyTorch ``nn.Linear``'s default: ``W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``; ``((W, b), ...)``."""
    sizes = (d, *widths, 1)
    layers = []
    for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        kw, kb = jax.random.split(jax.random.fold_in(key, i))
        bound = 1 / np.sqrt(m)
        layers.append((jax.random.uniform(kw, (m, n), minval=-bound, maxval=bound),
                       jax.random.uniform(kb, (n,), minval=-bound, maxval=bound)))
    return tuple(layers)


def bce(params, data):
    return optax.sigmoid_binary_cross_entropy(forward(params, data["x"]), data["y"]).mean()


def mse(params, data):
    """Squared error of the predicted probability ``sigmoid(logit)`` to the label (as in
    ``lrjax.polytope.pruning``; the decision stays ``logit >= 0``)."""
    return ((jax.nn.sigmoid(forward(params, data["x"])) - data["y"]) ** 2).mean()


LOSSES = {"bce": bce, "mse": mse}
