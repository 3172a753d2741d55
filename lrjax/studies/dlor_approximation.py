"""Constructions behind the DLoR universal-approximation claims (arXiv 2605.05659), as lrjax implements
them (the paper's own constructions are not public). Row-vector convention: a layer maps ``x -> x W``.

**Dense teacher** ``f(x) = act(x A + b) C`` with a dense full-rank ``A: (n, n)``.

**Through a nonlinearity, scale h** (``linearized``): ``phi_h(u) = (s(beta + h u) - s(beta)) / (h s'(beta))``
equals ``u + h s''(beta) u^2 / (2 s'(beta)) + O(h^2)``: one hidden layer with weight ``h M``, bias ``beta``
and activation ``s``, followed by the affine map ``(. - s(beta)) / (h s'(beta))``, which folds into the next
layer (a scalar multiple of a DLoR factor is a DLoR factor; the shift goes into the bias). So a network
whose hidden layers carry DLoR factors of ``A`` computes ``x A`` with error ``O(h)`` (``O(h^2)`` where
``s''(beta) = 0``). For ReLU with ``beta > 0``, ``phi_h(u) = u`` *exactly* once ``h max|u| < beta``: no
Taylor remainder, the error drops to round-off below that threshold instead of following a power law.

- deep (multiplicative), ``deep_approximant``: ``A = M_1 ... M_K`` with ``M_j = D_j + U_j V_j^T``
  (``param.decompose_multiplicative``); ``z <- phi_h(z M_j)`` for ``j < K``, then ``act(z M_K + b) C``:
  ``K - 1`` hidden DLoR layers of width ``n``;
- wide (additive), ``wide_approximant``: ``A = sum_k U_k V_k^T`` (``param.decompose_additive``); branch
  ``k`` is ``phi_h(x U_k)`` (width ``r``), the branches are summed through ``V_k^T`` into ``act(. + b) C``:
  ``K`` rank-``r`` branches, pure low rank.

**Sawtooth** ``saw_k(x) = 1 - |2 frac(2^{k-1} x) - 1|`` on ``[0, 1]`` (``2^{k-1}`` teeth), a function a
deep ReLU network represents exactly: ``saw_k = t o ... o t`` (``k`` times) with the tent map
``t(x) = 2 relu(x) - 4 relu(x - 1/2)`` (every hidden-to-hidden matrix ``[1, 1]^T [2, -4]`` is rank 1:
a rank-1 network, consistent with scalar inputs being the easy case). The wide (one hidden layer)
representation needs ``2^k`` units: ``saw_k(x) = sum_j c_j relu(x - j / 2^k)``. Replacing ReLU by a smooth
activation at scale h, ``rho_h(z) = h s(z / h)`` (``s`` = softplus, GELU or SiLU, each ``-> relu`` with
``sup |rho_h - relu| = c_s h``), gives networks whose error falls as ``O(h)``.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lrjax.models.param_mlp import activation
from lrjax.param import Decomposition


def dense_teacher(key, n: int, out: int, dtype=jnp.float64) -> dict:
    """``{"a": (n, n), "b": (n,), "c": (n, out)}`` Gaussian with ``Var = 1/fan_in`` (``a`` full rank a.s.)."""
    ka, kb, kc = jax.random.split(key, 3)
    return {"a": jax.random.normal(ka, (n, n), dtype) / n ** 0.5, "b": 0.1 * jax.random.normal(kb, (n,), dtype),
            "c": jax.random.normal(kc, (n, out), dtype) / n ** 0.5}


def teacher_apply(teacher: dict, x, act: str):
    return activation(act)(x @ teacher["a"] + teacher["b"]) @ teacher["c"]


def linearized(act: str, beta: float, h: float) -> Callable:
    """``phi_h(u) = (s(beta + h u) - s(beta)) / (h s'(beta))`` (module docstring)."""
    s = activation(act)
    slope = jax.grad(lambda z: s(z))(jnp.asarray(beta, jnp.float64))
    if not slope != 0:
        raise ValueError(f"linearized: {act}'(beta={beta}) = 0; pick beta where the activation has slope")
    return lambda u: (s(beta + h * u) - s(beta)) / (h * slope)


def deep_approximant(teacher: dict, dec: Decomposition, act: str, h: float, beta: float = 0.5) -> Callable:
    """``x -> act(phi_h(... phi_h(x M_1) ... M_{K-1}) M_K + b) C`` for ``dec`` multiplicative (``A``)."""
    phi = linearized(act, beta, h)
    parts, thetas = dec.param.parts, dec.theta["factors"]

    def f(x):
        for p, t in zip(parts[:-1], thetas[:-1]):
            x = phi(p.apply(t, x))
        return activation(act)(parts[-1].apply(thetas[-1], x) + teacher["b"]) @ teacher["c"]
    return f


def wide_approximant(teacher: dict, dec: Decomposition, act: str, h: float, beta: float = 0.5) -> Callable:
    """``x -> act(sum_k phi_h(x U_k) V_k^T + b) C`` for ``dec`` additive (``A = sum_k U_k V_k^T``)."""
    phi = linearized(act, beta, h)
    terms = dec.theta["terms"]

    def f(x):
        z = sum(phi(x @ t["u"]) @ t["v"].T for t in terms)
        return activation(act)(z + teacher["b"]) @ teacher["c"]
    return f


def relative_sup_error(f_values, g_values) -> float:
    """``max |f - g| / max |f|`` over the sample."""
    f_values, g_values = np.asarray(f_values), np.asarray(g_values)
    return float(np.max(np.abs(f_values - g_values)) / np.max(np.abs(f_values)))


def loglog_slope(h, err, floor: float = 1e-11) -> float:
    """Least-squares slope of ``log err`` against ``log h`` over the points with ``err > floor``
    (below it round-off dominates); ``nan`` with fewer than two such points."""
    h, err = np.asarray(h, float), np.asarray(err, float)
    keep = err > floor
    if keep.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(h[keep]), np.log(err[keep]), 1)[0])


def sawtooth(x, k: int):
    """``saw_k(x) = 1 - |2 frac(2^{k-1} x) - 1|`` (exact reference on ``[0, 1]``)."""
    return 1.0 - jnp.abs(2.0 * jnp.mod(2.0 ** (k - 1) * x, 1.0) - 1.0)


def smooth_relu(act: str, h: float) -> Callable:
    """``rho_h(z) = h s(z / h)``; ``act="relu"`` gives ReLU itself."""
    s = activation(act)
    return s if act == "relu" else (lambda z: h * s(z / h))


def deep_sawtooth(x, k: int, rho: Callable):
    """``t^k(x)``, ``t(x) = 2 rho(x) - 4 rho(x - 1/2)``: ``k`` layers of width 2, ``6k`` parameters."""
    for _ in range(k):
        x = 2.0 * rho(x) - 4.0 * rho(x - 0.5)
    return x


def wide_sawtooth(x, k: int, rho: Callable):
    """``sum_{j < 2^k} c_j rho(x - j / 2^k)`` with ``c_0 = 2^k``, ``c_j = (-1)^j 2^{k+1}``: one hidden layer
    of ``2^k`` units (``3 * 2^k`` parameters)."""
    m = 2 ** k
    knots = jnp.arange(m) / m
    c = jnp.where(jnp.arange(m) == 0, float(m), 2.0 * m * (-1.0) ** jnp.arange(m))
    return rho(x[..., None] - knots) @ c


def sawtooth_params(k: int) -> dict:
    """Parameter counts of the two exact ReLU representations (weights and biases)."""
    return {"deep": 6 * k, "wide": 3 * 2 ** k}
