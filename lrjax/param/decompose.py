"""Exact decompositions of a full-rank matrix into DLoR components (the DLoR paper's structural claims).

The paper (arXiv 2605.05659) does not publish its constructions; lrjax implements these, both exact in
exact arithmetic, so ``materialize(theta) == A`` to round-off:

Additive (width), ``decompose_additive(A, rank)``: the SVD ``A = sum_i s_i u_i v_i^T`` cut into
``k = ceil(min(m, n) / r)`` blocks of ``r`` consecutive triplets; term ``b`` is
``lowrank(r)`` with ``U_b = [u_i sqrt(s_i)]``, ``V_b = [v_i sqrt(s_i)]`` (the last block zero-padded).
Pure low rank suffices; parameters ``k r (m + n)`` (``2 n^2`` for ``r | n``, square).

Multiplicative (depth), ``decompose_multiplicative(A, rank)``, square invertible ``A``: LU with partial
pivoting, ``A = P L D U`` (``L``, ``U`` unit triangular), then

- ``P = S_1 ... S_t`` (row swaps, ``t <= n - 1``). Each swap is ``I - w w^T`` with ``w = e_k - e_p``,
  and a product of ``r`` consecutive swaps is ``I + W C`` with ``W = [w ...]`` of rank ``<= r``;
- ``L = prod_{b increasing} (I + N_b E_b^T)``, ``N_b`` = the columns of ``L - I`` in block ``b`` of ``r``
  columns, ``E_b`` the matching identity columns (cross terms vanish: ``E_b^T N_c = 0`` for ``b < c``);
- ``D U = (D + D E_B R_B) prod_{b decreasing, b < B} (I + E_b R_b)``, ``R_b`` the rows of ``U - I``
  in block ``b`` (cross terms vanish: ``R_b E_c = 0`` for ``b > c``).

Every factor is ``dlor(r)``: identity diagonal except the one carrying ``D``. The diagonal is necessary:
a product of pure rank-``r < n`` factors has rank ``<= r``. Depth ``ceil(t/r) + 2 ceil((n-1)/r)``,
parameters ``depth * (n + 2 n r)``.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from lrjax.param.base import Parameterization, check_positive_int, check_rank
from lrjax.param.combinators import plus, product
from lrjax.param.dlor import dlor
from lrjax.param.lowrank import lowrank


class Decomposition(NamedTuple):
    """A parameterization and a theta whose ``param.materialize(theta)`` reproduces the input."""

    param: Parameterization
    theta: Any
    shape: tuple[int, int]

    def num_params(self) -> int:
        """Number of scalars in ``theta`` (nothing is frozen)."""
        return self.param.num_params(self.shape)


def _as_matrix(name: str, a) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name}: A must be a matrix, got shape {a.shape}")
    return a


def _pad_cols(x: np.ndarray, r: int) -> np.ndarray:
    return np.pad(x, [(0, 0), (0, r - x.shape[1])])


def _blocks(count: int, r: int) -> list[range]:
    return [range(s, min(s + r, count)) for s in range(0, count, r)]


def decompose_additive(a, rank: int) -> Decomposition:
    """``A = sum_b U_b V_b^T`` with ``ceil(min(m,n)/rank)`` rank-``rank`` terms (see module docstring)."""
    check_positive_int("decompose_additive: rank", rank)
    a = _as_matrix("decompose_additive", a)
    check_rank("decompose_additive", rank, a.shape)
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    root = np.sqrt(s)
    terms = []
    for blk in _blocks(len(s), rank):
        idx = np.array(blk)
        terms.append({"u": jnp.asarray(_pad_cols(u[:, idx] * root[idx], rank), a.dtype),
                      "v": jnp.asarray(_pad_cols(vt[idx].T * root[idx], rank), a.dtype)})
    return Decomposition(plus(*[lowrank(rank)] * len(terms)), {"terms": terms}, a.shape)


def lu_partial_pivoting(a: np.ndarray):
    """``(swaps, L, U)`` with ``A = S_1 ... S_t L U``; ``S_j`` swaps rows ``swaps[j] = (k, p)``, ``p > k``."""
    a = np.array(a, dtype=np.float64 if a.dtype.itemsize >= 8 else np.float32)
    n = a.shape[0]
    swaps = []
    for k in range(n):
        p = k + int(np.argmax(np.abs(a[k:, k])))
        if a[p, k] == 0:
            raise ValueError("decompose_multiplicative: A is singular (a zero pivot in column "
                             f"{k}); only invertible matrices are products of DLoR factors with this construction")
        if p != k:
            a[[k, p]] = a[[p, k]]
            swaps.append((k, p))
        a[k + 1:, k] /= a[k, k]
        a[k + 1:, k + 1:] -= np.outer(a[k + 1:, k], a[k, k + 1:])
    return swaps, np.tril(a, -1) + np.eye(n), np.triu(a)


def decompose_multiplicative(a, rank: int) -> Decomposition:
    """``A = M_1 M_2 ... M_K`` with every ``M_j = D_j + U_j V_j^T`` of rank ``rank`` (module docstring)."""
    check_positive_int("decompose_multiplicative: rank", rank)
    a = _as_matrix("decompose_multiplicative", a)
    n = a.shape[0]
    if a.shape != (n, n):
        raise ValueError(f"decompose_multiplicative: A must be square, got shape {a.shape}")
    check_rank("decompose_multiplicative", rank, a.shape)
    swaps, lower, upper = lu_partial_pivoting(a)
    eye = np.eye(n)
    factors = []  # (d, u, v) with M = diag(d) + u v^T

    for blk in _blocks(len(swaps), rank):
        group = [swaps[j] for j in blk]
        m = eye.copy()
        for k, p in group:  # m <- m S(k, p): swap columns k and p
            m[:, [k, p]] = m[:, [p, k]]
        w = np.stack([eye[k] - eye[p] for k, p in group], axis=1)
        c = np.linalg.lstsq(w, m - eye, rcond=None)[0]
        factors.append((np.ones(n), w, c.T))

    for blk in _blocks(n - 1, rank):
        idx = np.array(blk)
        factors.append((np.ones(n), (lower - eye)[:, idx], eye[:, idx]))

    diag = np.diagonal(upper).copy()
    unit_upper = upper / diag[:, None]
    upper_blocks = _blocks(n - 1, rank)[::-1]
    if not upper_blocks:
        factors.append((diag, np.zeros((n, 0)), np.zeros((n, 0))))
    for j, blk in enumerate(upper_blocks):
        idx = np.array(blk)
        rows = (unit_upper - eye)[idx].T
        if j == 0:  # D (I + E_B R_B) = D + (D E_B) R_B
            factors.append((diag, eye[:, idx] * diag[None, :][:, idx], rows))
        else:
            factors.append((np.ones(n), eye[:, idx], rows))

    thetas = [{"d": jnp.asarray(d, a.dtype), "u": jnp.asarray(_pad_cols(u, rank), a.dtype),
               "v": jnp.asarray(_pad_cols(v, rank), a.dtype)} for d, u, v in factors]
    return Decomposition(product(*[dlor(rank)] * len(thetas)), {"factors": thetas}, a.shape)

