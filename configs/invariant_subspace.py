"""The invariant-subspace theorem of deep matrix factorization, checked numerically (the main demo).

Yaras et al. ICML 2024 (arXiv 2406.04112), Theorem 1 and Proposition 2, at the theorem
figure's size: d = 30, r* = 3, L = 3, float64. Writes metrics.json (maximum errors of the three checks,
the verdict), trajectory.npz (step, singular_values (T, depth, d), rho, ...) and figures.

    lrjax run configs/invariant_subspace.py               # ~10 s on CPU; expected: PASS, errors ~1e-14
    lrjax run configs/invariant_subspace.py:quick         # the smoke-test variant
    lrjax run configs/invariant_subspace.py --set init=gaussian   # negative control: FAIL, errors ~1
    lrjax run configs/invariant_subspace.py --set d=8 --set rank=5  # negative control d <= 2 r*: FAIL
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "invariant_subspace"
    c.d = 30
    c.rank = 3            # r*, rank of the target
    c.depth = 3           # L
    c.eps = 1.0           # scale of the orthogonal init, W_l(0) W_l(0)^T = eps^2 I
    c.eta = 0.1           # GD step on 1/2 ||W - Phi||_F^2 (sum over entries)
    c.weight_decay = 0.0  # lambda
    c.steps = 300
    c.record_every = 1
    c.dtype = "float64"
    c.init = "orthogonal"  # or "gaussian" (negative control)
    c.seed = 0
    if arg == "quick":
        c.d, c.steps = 12, 40
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'quick' or nothing")
    return c
