"""Image classifiers in Flax linen, inputs ``(n, h, w, c)`` in ``[0, 1]``, outputs ``(n, classes)`` logits.

- ``MLP(widths)``: flatten, then ``Dense(w) -> act`` per width, then ``Dense(classes)``;
  ``MLP((200, 200))`` is Li et al.'s 784-200-200-10 network. ``act="identity"`` gives a deep linear
  network.
- ``CNN(channels, dense)``: per channel count ``Conv(c, 3x3, SAME) -> relu -> avg_pool 2x2``, flatten,
  ``Dense(dense) -> relu``, ``Dense(classes)`` (the Flax MNIST example's network for ``(32, 64)``,
  ``256``).

Parameter paths (what binding rules match): ``Dense_0/kernel``, ``Conv_1/bias``, ...
"""
from __future__ import annotations

from typing import Sequence

from flax import linen as nn

from lrjax.models.param_mlp import activation


class MLP(nn.Module):
    widths: Sequence[int] = (200, 200)
    classes: int = 10
    act: str = "relu"

    @nn.compact
    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        f = activation(self.act)
        for w in self.widths:
            x = f(nn.Dense(w)(x))
        return nn.Dense(self.classes)(x)


class CNN(nn.Module):
    channels: Sequence[int] = (32, 64)
    dense: int = 256
    classes: int = 10

    @nn.compact
    def __call__(self, x):
        for c in self.channels:
            x = nn.relu(nn.Conv(c, (3, 3), padding="SAME")(x))
            if min(x.shape[1:3]) >= 2:
                x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(self.dense)(x))
        return nn.Dense(self.classes)(x)


def make(name: str, widths: Sequence[int], classes: int = 10, act: str = "relu") -> nn.Module:
    """``"mlp"`` with hidden ``widths``, or ``"cnn"`` with conv ``widths[:-1]`` and dense ``widths[-1]``."""
    widths = tuple(int(w) for w in widths)
    if name == "mlp":
        return MLP(widths, classes, act)
    if name == "cnn":
        if len(widths) < 2:
            raise ValueError(f"cnn widths are (conv channels..., dense units): need at least 2, got {widths}")
        return CNN(widths[:-1], widths[-1], classes)
    raise ValueError(f"unknown model {name!r}; use 'mlp' or 'cnn'")
