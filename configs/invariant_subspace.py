"""The invariant-subspace theorem of deep matrix factorization, checked numerically (the main demo).

Yaras et al. ICML 2024 (arXiv 2406.04112), Theorem 1 and Proposition 2, at the theorem
figure's size: d = 30, r* = 3, L = 3, float64, init scale eps = 1e-3 (small init, as in the papers), run
until the target is fitted. Writes metrics.json (maximum errors of the three checks, `prop2_ratio_max`,
`prop2_passed`, the verdict), trajectory.npz (step, singular_values (T, depth, d), rho, compression_gap,
compression_bound, ...) and figures (prop2_gap.png: the gap and Prop. 2's bound on one log plot).

    lrjax run configs/invariant_subspace.py               # ~15 s on CPU; expected: PASS, gap = bound to ~1e-8
    lrjax run configs/invariant_subspace.py:quick         # the smoke-test variant
    lrjax run configs/invariant_subspace.py --set compression_subspace=random  # negative control: FAIL
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
    c.eps = 1e-3          # scale of the orthogonal init, W_l(0) W_l(0)^T = eps^2 I
    c.eta = 0.2           # GD step on 1/2 ||W - Phi||_F^2 (sum over entries)
    c.weight_decay = 0.0  # lambda
    c.steps = 6000        # at eps = 1e-3 the 3 target directions are learned at steps ~3,300, 3,700, 4,400
    c.record_every = 20
    c.dtype = "float64"
    c.init = "orthogonal"  # or "gaussian" (negative control)
    c.seed = 0
    c.compression_subspace = "invariant"   # or "random": negative control, Prop. 2 must fail
    if arg == "quick":
        c.d, c.eps, c.steps, c.record_every = 12, 0.1, 600, 20
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'quick' or nothing")
    return c
