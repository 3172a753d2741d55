"""Diagonal plus low-rank (DLoR) weights (arXiv 2605.05659): ``W = D + U V^T``.

``D`` is ``(m, n)`` with non-zeros only on the leading diagonal ``D[i, i]``, ``i < min(m, n)``:

- ``diag="full"``: ``d`` has ``min(m, n)`` free entries;
- ``diag="scalar"``: ``D = alpha I`` (one free scalar ``d`` of shape ``()``);
- ``diag=k`` (an int): sparse-k, the first ``k`` diagonal entries are free, the rest are 0.

Init: ``d = diag_init`` (1.0: an identity-like layer), ``U, V`` as ``lowrank`` (``Var (UV^T)_ij = 1/m``).
``apply(x) = x[..., :k] * d (padded to n) + (x U) V^T`` never forms ``W``.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lrjax.param.base import (Parameterization, check_finite, check_matrix_shape, check_positive_int, check_rank,
                              gaussian)
from lrjax.param.registry import register


@dataclasses.dataclass(frozen=True)
class DLoR(Parameterization):
    """``W = D + U V^T``; theta ``{"d": (k,) or (), "u": (m, r), "v": (n, r)}``."""

    rank: int
    diag: str | int = "full"
    diag_init: float = 1.0

    def __post_init__(self):
        check_positive_int("dlor: rank", self.rank)
        check_finite("dlor: diag_init", self.diag_init)
        if self.diag not in ("full", "scalar"):
            if isinstance(self.diag, bool) or not isinstance(self.diag, int) or self.diag <= 0:
                raise ValueError(f"dlor: diag must be 'full', 'scalar' or a positive int k, got {self.diag!r}")

    def _diag_len(self, m: int, n: int) -> int:
        if self.diag == "full" or self.diag == "scalar":
            return min(m, n)
        if self.diag > min(m, n):
            raise ValueError(f"dlor: diag={self.diag} exceeds min(shape)={min(m, n)}")
        return self.diag

    def init(self, key, shape, dtype=jnp.float32):
        m, n = check_matrix_shape("dlor", shape)
        check_rank("dlor", self.rank, shape)
        k = self._diag_len(m, n)
        ku, kv = jax.random.split(key)
        std = (m * self.rank) ** -0.25
        d_shape = () if self.diag == "scalar" else (k,)
        return {"d": jnp.full(d_shape, self.diag_init, dtype),
                "u": gaussian(ku, (m, self.rank), dtype, std),
                "v": gaussian(kv, (n, self.rank), dtype, std)}

    def _diagonal(self, theta) -> jax.Array:
        m, n = theta["u"].shape[0], theta["v"].shape[0]
        k = self._diag_len(m, n)
        return jnp.broadcast_to(theta["d"], (k,))

    def materialize(self, theta):
        u, v = theta["u"], theta["v"]
        d = self._diagonal(theta)
        idx = jnp.arange(d.shape[0])
        return (u @ v.T).at[idx, idx].add(d)

    def apply(self, theta, x):
        u, v = theta["u"], theta["v"]
        n = v.shape[0]
        d = self._diagonal(theta)
        k = d.shape[0]
        diag_part = x[..., :k] * d
        if k < n:
            diag_part = jnp.pad(diag_part, [(0, 0)] * (x.ndim - 1) + [(0, n - k)])
        return diag_part + (x @ u) @ v.T


def dlor(rank: int, diag: str | int = "full", diag_init: float = 1.0) -> DLoR:
    return DLoR(rank=rank, diag=diag, diag_init=diag_init)


register("dlor", dlor)
