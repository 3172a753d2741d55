"""Gamma ablation and compressed width 2 r^ vs a random narrow network of the same width (completion).

Paper (d = 1000, r* = 5, p = 0.2, L = 3, eps = 1e-3, eta = 5e3, 5 trials): compressed ~195 x 100
iterations for every r^ in 5..20, random narrow 450-620 x 100.

    lrjax run configs/width_ablation.py         # paper size (GPU; on the 2-core CPU, 2 seeds x 3 widths took 63 min:
                                                #   --set seeds=2 --set "gammas=(0.1,)" --set "rhats=(5, 11, 20)")
    lrjax run configs/width_ablation.py:small   # d = 200 (CPU: several minutes)
    lrjax run configs/width_ablation.py:quick
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "width_ablation"
    c.d = 1000
    c.rank = 5
    c.fraction = 0.2
    c.depth = 3
    c.eps = 1e-3
    c.eta = 5e3
    c.gamma = 0.01                    # rate of the compressed runs in the width comparison
    c.gammas = (0.0, 0.001, 0.01, 0.1)
    c.gammas_zero_at = 1e-4           # where gamma = 0 is drawn on the log axis
    c.rhats = (5, 8, 11, 14, 17, 20)
    c.seeds = 5
    c.steps = 80000
    c.tol = 1e-10
    c.chunk_size = 500
    c.seed = 0
    c.dtype = "float64"
    if arg == "small":
        c.d, c.eta, c.rhats, c.steps = 200, 500.0, (5, 10, 15, 20), 60000
    elif arg == "quick":
        c.d, c.rank, c.eta, c.rhats, c.gammas, c.seeds, c.steps, c.chunk_size = 30, 2, 40.0, (2, 4), (0.0, 0.1), 2, 300, 100
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'small', 'quick' or nothing")
    return c
