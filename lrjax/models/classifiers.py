"""Image classifiers in Flax linen, inputs ``(n, h, w, c)`` in ``[0, 1]``, outputs ``(n, classes)`` logits.

- ``MLP(widths)``: flatten, then ``Dense(w) -> act`` per width, then ``Dense(classes)``;
  ``MLP((200, 200))`` is Li et al.'s 784-200-200-10 network. ``act="identity"`` gives a deep linear
  network.
- ``CNN(channels, dense)``: per channel count ``Conv(c, 3x3, SAME) -> relu -> avg_pool 2x2``, flatten,
  ``Dense(dense) -> relu``, ``Dense(classes)`` (the Flax MNIST example's network for ``(32, 64)``,
  ``256``).
- ``VGG(channels, dense)``: per channel count two ``Conv(c, 3x3, SAME) -> relu`` then ``max_pool 2x2``
  (VGG's block), flatten, ``Dense(w) -> relu`` per ``dense`` width, ``Dense(classes)``; a small VGG-style
  network (VGG-11 has 8 conv layers and two 4096-unit dense layers).
- ``ViT(dim, depth, heads, patch, mlp)``: non-overlapping ``patch x patch`` patches (a reshape) ->
  ``Dense(dim)`` + learned position embedding, ``depth`` pre-LayerNorm blocks (multi-head self-attention
  from one ``Dense(3 dim)`` and ``Dense(dim)``; MLP ``Dense(mlp) -> gelu -> Dense(dim)``), mean over
  tokens, LayerNorm, ``Dense(classes)``. Every kernel is a 2-D matrix.

Parameter paths (what binding rules match): ``Dense_0/kernel``, ``Conv_1/bias``, ...
"""
from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
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


class VGG(nn.Module):
    channels: Sequence[int] = (16, 32)
    dense: Sequence[int] = (128, 128)
    classes: int = 10

    @nn.compact
    def __call__(self, x):
        for c in self.channels:
            x = nn.relu(nn.Conv(c, (3, 3), padding="SAME")(x))
            x = nn.relu(nn.Conv(c, (3, 3), padding="SAME")(x))
            if min(x.shape[1:3]) >= 2:
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        for w in self.dense:
            x = nn.relu(nn.Dense(w)(x))
        return nn.Dense(self.classes)(x)


class ViTBlock(nn.Module):
    """Pre-LayerNorm transformer block on ``(n, tokens, dim)``."""

    heads: int
    mlp: int

    @nn.compact
    def __call__(self, x):
        n, t, dim = x.shape
        qkv = nn.Dense(3 * dim, name="qkv")(nn.LayerNorm()(x)).reshape(n, t, 3, self.heads, dim // self.heads)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]                  # (n, t, heads, head_dim)
        att = nn.softmax(jnp.einsum("nthd,nshd->nhts", q, k) / jnp.sqrt(dim // self.heads), axis=-1)
        x = x + nn.Dense(dim, name="attention_out")(jnp.einsum("nhts,nshd->nthd", att, v).reshape(n, t, dim))
        h = nn.gelu(nn.Dense(self.mlp, name="mlp_in")(nn.LayerNorm()(x)))
        return x + nn.Dense(dim, name="mlp_out")(h)


class ViT(nn.Module):
    dim: int = 64
    depth: int = 2
    heads: int = 4
    patch: int = 7
    mlp: int = 128
    classes: int = 10

    @nn.compact
    def __call__(self, x):
        n, h, w, c = x.shape
        p = self.patch
        if h % p or w % p or self.dim % self.heads:
            raise ValueError(f"ViT: image {h}x{w} must split into {p}x{p} patches and dim={self.dim} into "
                             f"heads={self.heads}")
        x = x.reshape(n, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, -1, p * p * c)
        x = nn.Dense(self.dim, name="patch_embed")(x)
        x = x + self.param("position", nn.initializers.normal(0.02), (1, x.shape[1], self.dim))
        for i in range(self.depth):
            x = ViTBlock(self.heads, self.mlp, name=f"block_{i}")(x)
        return nn.Dense(self.classes, name="head")(nn.LayerNorm()(x.mean(axis=1)))


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
