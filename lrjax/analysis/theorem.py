"""The invariant-subspace theorem of deep matrix factorization, checked numerically.

Setting (Yaras, Wang, Balzano, Qu, "Compressible dynamics in deep overparameterized low-rank learning &
adaptation", ICML 2024, arXiv 2406.04112: Theorem 1 and Proposition 2; README "Analysis"): target
``Phi: (d, d)`` of rank ``r*``, ``W = F_1 ... F_L`` with ``F_l(0) = eps_l Q_l`` orthogonal, loss
``1/2 ||W - Phi||_F^2``, GD with weight decay ``F_l <- (1 - eta lam) F_l - eta dloss/dF_l``. If
``d > 2 r*``, for all ``t``: ``F_l(t) = A_l diag(F~_l(t), rho_l(t) I_{d-2r*}) A_{l+1}^T`` with fixed
orthogonal ``A_l`` and ``rho_l(t+1) = rho_l(t) (1 - eta lam - eta prod_{k != l} rho_k(t)^2)``.

Three checks over a recorded run (``lrjax.studies.theorem_simulation.simulate`` records everything they need;
this module holds only the pure checks):

1. ``d - 2r*`` singular values of every ``F_l(t)`` equal ``|rho_l(t)|`` (the ones nearest to it);
   error relative to ``max(|rho_l(t)|, eps_machine ||F_l(t)||_2)``.
2. The subspaces do not move: with the active input subspace ``V`` from the initial gradient
   (``compression.invariant_input_subspace``) carried through the layers (``B = F_l(0)^T A / eps_l``),
   ``F_l(t) - P_{A_a} F_l(t) P_{B_a} - rho_l(t) A_perp B_perp^T`` must vanish; reported as
   ``||residual||_F / ||F_l(t)||_F``. No per-step SVD is involved.
3. Proposition 2: the compressed run (``[V, eps_l I_{2r}, V^T W(0) / prod eps]``, outer factors fixed)
   satisfies ``||W(t) - W_C(t)||_F^2 <= (d - 2r*) prod_l rho_l(t)^2`` (equality when the theorem holds:
   the gap is the bulk ``prod rho_l(t) I_{d-2r*}`` the compressed network leaves out); reported as
   ``prop2_ratio_max`` = max gap / bound over ``t >= 1`` (at ``t = 0`` the gap equals the bound by
   construction). ``compression_gap_ratio`` is the weaker ratio to the initial bound ``(d - 2r*) prod eps_l^2``.
   The gap is a difference of two ``O(||W||)`` matrices, so rounding alone moves the ratio by about
   ``4 sqrt(d) eps_machine max ||W||_F / sqrt(min bound)`` (``prop2_tolerance``, added to the dtype's
   tolerance); where that exceeds 1e-2 the bound is below the dtype's rounding and the check fails as
   uninformative (run in float64).

Negative controls: Gaussian init (``F_l F_l^T != eps^2 I``) or ``d <= 2 r*`` (then a bulk of one value is
tested): the errors are large and ``passed`` is False. A random compression subspace ``V`` (the original run
still satisfies checks 1-2) must fail check 3.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from lrjax.analysis.compression import invariant_input_subspace
from lrjax.analysis.spectra import orthogonal_complement

TOLERANCE = {"float64": 1e-8, "float32": 2e-3}
UNINFORMATIVE_ROUNDING = 1e-2   # prop2_tolerance above this: the bound lies below the dtype's rounding


def rho_trajectory(eps, eta: float, weight_decay: float, steps: int) -> np.ndarray:
    """``(steps + 1, L)`` values of ``rho_l(t)`` from the recursion (float64, numpy)."""
    rho = np.array(eps, np.float64)
    out = [rho.copy()]
    for _ in range(steps):
        prod_sq = np.array([np.prod(np.delete(rho, l) ** 2) for l in range(len(rho))])
        rho = rho * (1.0 - eta * weight_decay - eta * prod_sq)
        out.append(rho.copy())
    return np.stack(out)


def theorem_bases(factors0, grad_first, rank: int, bulk: int):
    """Per layer ``(A_a, A_perp, B_a, B_perp)``: active/bulk input and output bases, ``d - bulk`` active."""
    d = factors0[0].shape[0]
    a_active = invariant_input_subspace(factors0[0], grad_first, rank, d - bulk)
    bases = []
    for f in factors0:
        eps = jnp.sqrt(jnp.mean(jnp.sum(f * f, axis=1)))  # rows of eps Q have norm eps
        a_perp = orthogonal_complement(a_active)
        b_active, b_perp = f.T @ a_active / eps, f.T @ a_perp / eps
        bases.append((a_active, a_perp, b_active, b_perp))
        a_active = b_active
    return bases


def structure_residual(f, rho, bases) -> jax.Array:
    """``||F - P_{A_a} F P_{B_a} - rho A_perp B_perp^T||_F / ||F||_F`` for one layer (check 2)."""
    a_a, a_p, b_a, b_p = bases
    predicted = a_a @ (a_a.T @ f @ b_a) @ b_a.T + rho * (a_p @ b_p.T)
    return jnp.linalg.norm(f - predicted) / jnp.linalg.norm(f)


@dataclasses.dataclass
class TheoremCheck:
    """Maximum errors of the three checks, the tolerance and the verdict."""

    singular_value_error: float   # check 1, relative
    subspace_residual: float      # check 2, relative
    compression_gap_ratio: float  # max_{t >= 1} ||W - W_C||_F^2 / ((d - 2r) prod eps^2), the initial bound
    prop2_ratio_max: float        # check 3, max_{t >= 1} ||W(t) - W_C(t)||_F^2 / ((d - 2r) prod rho_l(t)^2)
    prop2_tolerance: float        # the rounding floor of that ratio (module docstring)
    tolerance: float
    hypotheses_hold: bool
    notes: str

    @property
    def prop2_passed(self) -> bool:
        return bool(self.prop2_tolerance <= UNINFORMATIVE_ROUNDING
                    and self.prop2_ratio_max <= 1.0 + self.tolerance + self.prop2_tolerance)

    @property
    def passed(self) -> bool:
        return bool(self.hypotheses_hold and self.singular_value_error <= self.tolerance
                    and self.subspace_residual <= self.tolerance and self.prop2_passed)

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "prop2_passed": self.prop2_passed, "passed": self.passed}


def prop2_bound(rho: np.ndarray, d: int, rank: int) -> np.ndarray:
    """``(T,)`` Proposition 2's bound ``(d - 2r) prod_l rho_l(t)^2`` from ``rho: (T, L)``; 0 where ``d <= 2r``."""
    rho = np.asarray(rho, np.float64)
    return max(d - 2 * rank, 0) * np.prod(rho * rho, axis=-1)


def check_invariant_subspace(singular_values: np.ndarray, rho: np.ndarray, residuals: np.ndarray,
                             gap: np.ndarray, d: int, rank: int, dtype: str, orthogonal_init: bool,
                             product_norm: float, random_subspace: bool = False) -> TheoremCheck:
    """Evaluate checks 1-3 on recorded arrays.

    ``singular_values: (T, L, d)``, ``rho: (T, L)`` predicted at the same steps (the first at ``t = 0``),
    ``residuals: (T, L)`` (check 2), ``gap: (T,)`` of ``||W(t) - W_C(t)||_F^2`` at the same steps,
    ``product_norm = max_t ||W(t)||_F`` (for the rounding floor of check 3).
    """
    bulk = max(d - 2 * rank, 1)
    s = np.asarray(singular_values, np.float64)
    r = np.abs(np.asarray(rho, np.float64))[..., None]
    dist = np.sort(np.abs(s - r), axis=-1)[..., :bulk]                   # the bulk nearest to |rho|
    scale = np.maximum(r[..., 0], np.finfo(dtype).eps * s[..., 0])[..., None]
    err1 = float(np.max(dist / scale))
    err2 = float(np.max(residuals))
    bound_t = prop2_bound(rho, d, rank)
    gap_later, bound_later = np.asarray(gap, np.float64)[1:], bound_t[1:]
    if bound_t[0] > 0 and len(gap_later):
        ratio, prop2 = float(np.max(gap_later / bound_t[0])), float(np.max(gap_later / bound_later))
        rounding = 4 * np.sqrt(d) * np.finfo(dtype).eps * product_norm / np.sqrt(np.min(bound_later))
    else:
        ratio = prop2 = rounding = float("inf")
    notes = []
    if rounding > UNINFORMATIVE_ROUNDING:
        notes.append(f"Prop. 2's bound lies below {dtype} rounding of W (floor {rounding:.1e}): check 3 cannot "
                     "say anything; run in float64")
    if random_subspace:
        notes.append("the compression subspace is random (negative control): check 3 must fail")
    if d <= 2 * rank:
        notes.append(f"d = {d} <= 2 r* = {2 * rank}: the theorem does not apply (a bulk of 1 value was tested)")
    if not orthogonal_init:
        notes.append("init is not eps-scaled orthogonal: the theorem does not apply")
    return TheoremCheck(err1, err2, ratio, prop2, float(rounding), TOLERANCE[dtype],
                        d > 2 * rank and orthogonal_init, "; ".join(notes) or "hypotheses hold")
