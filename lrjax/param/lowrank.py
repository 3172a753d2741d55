"""Low-rank weights and LoRA.

- ``lowrank(rank)``: ``W = U V^T`` with ``U: (m, r)``, ``V: (n, r)`` (Burer-Monteiro factorization).
  Init ``N(0, (m r)^{-1/2})`` entries in both factors, so that ``Var W_ij = 1/m`` (LeCun).
- ``lora(rank, alpha, rslora, init)``: ``W = W0 + s U V^T`` (Hu et al. 2021, arXiv 2106.09685) with ``W0``
  frozen, ``s = alpha / r`` (``alpha / sqrt(r)`` with ``rslora``, Kalajdzievski 2023; ``s = 1`` when
  ``alpha`` is None). ``U: (m, r)`` is input-side, ``V: (n, r)`` output-side (the kernel is ``(in, out)``);
  one factor is zero, so the adapted layer equals ``W0`` at init. ``init="peft"`` (default): ``U ~ N(0, 1/m)``,
  ``V = 0`` (in the paper's ``h = W0 x + B A x``, ``A = U^T`` Gaussian, ``B = V^T = 0``; the variance ``1/m``
  is lrjax's choice: PEFT's default draws ``A`` kaiming-uniform, ``U(+-1/sqrt(m))``, variance ``1/(3m)``,
  and its ``"gaussian"`` option ``N(0, 1/r^2)``; huggingface/peft 5d602fd ``src/peft/tuners/lora/layer.py``
  lines 335-340).
  ``init="dlt"``: ``U = 0``, ``V ~ N(0, 1)``, the Deep LoRA authors' vanilla LoRA
  (cjyaras/deep-lora-transformers ``dlt/models.py`` ``MatrixFactorization``, depth 2, commit 4ab3b09:
  ``W2`` (in, r) zeros, ``W1`` (r, out) standard normal, the update ``W2 @ W1`` unscaled).

``apply`` costs ``O(r (m + n))`` per row of ``x`` instead of ``O(m n)``.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lrjax.param.base import (Adapter, Parameterization, check_finite, check_matrix_shape, check_positive_int,
                              check_rank, gaussian)
from lrjax.param.registry import register


LORA_INITS = ("peft", "dlt")


@dataclasses.dataclass(frozen=True)
class LowRank(Parameterization):
    """``W = U V^T``; theta ``{"u": (m, r), "v": (n, r)}``."""

    rank: int

    def __post_init__(self):
        check_positive_int("lowrank: rank", self.rank)

    def init(self, key, shape, dtype=jnp.float32):
        m, n = check_matrix_shape("lowrank", shape)
        check_rank("lowrank", self.rank, shape)
        ku, kv = jax.random.split(key)
        std = (m * self.rank) ** -0.25
        return {"u": gaussian(ku, (m, self.rank), dtype, std),
                "v": gaussian(kv, (n, self.rank), dtype, std)}

    def materialize(self, theta):
        return theta["u"] @ theta["v"].T

    def apply(self, theta, x):
        return (x @ theta["u"]) @ theta["v"].T


@dataclasses.dataclass(frozen=True)
class LoRA(Adapter):
    """``W = base + s U V^T``; theta ``{"base": (m, n) frozen, "u": (m, r), "v": (n, r)}``; at init ``v = 0``
    (``init="peft"``) or ``u = 0`` (``init="dlt"``)."""

    rank: int
    alpha: float | None = None
    rslora: bool = False
    init_method: str = "peft"     # ``lora(init=...)``; not ``init``, the method's name

    def __post_init__(self):
        check_positive_int("lora: rank", self.rank)
        if self.alpha is not None:
            check_finite("lora: alpha", self.alpha)
        if not isinstance(self.rslora, bool):
            raise ValueError(f"lora: rslora must be True or False, got {self.rslora!r}")
        if self.init_method not in LORA_INITS:
            raise ValueError(f"lora: init must be one of {LORA_INITS}, got {self.init_method!r}")

    @property
    def scaling(self) -> float:
        if self.alpha is None:
            return 1.0
        return self.alpha / (self.rank ** 0.5 if self.rslora else self.rank)

    def init_delta(self, key, shape, dtype):
        m, n = check_matrix_shape("lora", shape)
        check_rank("lora", self.rank, shape)
        if self.init_method == "dlt":
            return {"u": jnp.zeros((m, self.rank), dtype), "v": gaussian(key, (n, self.rank), dtype, 1.0)}
        return {"u": gaussian(key, (m, self.rank), dtype, m ** -0.5), "v": jnp.zeros((n, self.rank), dtype)}

    def delta(self, theta):
        return self.scaling * (theta["u"] @ theta["v"].T)

    def apply_delta(self, theta, x):
        return self.scaling * ((x @ theta["u"]) @ theta["v"].T)


def lowrank(rank: int) -> LowRank:
    return LowRank(rank=rank)


def lora(rank: int, alpha: float | None = None, rslora: bool = False, init: str = "peft") -> LoRA:
    return LoRA(rank=rank, alpha=alpha, rslora=rslora, init_method=init)


register("lowrank", lowrank)
register("lora", lora)
