"""Depth effect on matrix completion: L = 2 vs L = 3 over widths 10-100 (Yaras et al. ICML 2024).

d = 100, r* = 10, p = 0.3, eps = 1e-3, eta = 1e2 (L = 2) and 3e2 (L = 3), 600 x 100 GD steps.

    lrjax run configs/depth_effect.py           # CPU: several minutes
    lrjax run configs/depth_effect.py:quick
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "depth_effect"
    c.d = 100
    c.rank = 10
    c.fraction = 0.3
    c.depths = (2, 3)
    c.etas = (1e2, 3e2)
    c.widths = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
    c.eps = 1e-3
    c.seeds = 3
    c.steps = 60000
    c.chunk_size = 1000
    c.seed = 0
    c.dtype = "float64"
    if arg == "quick":
        c.d, c.rank, c.widths, c.seeds, c.steps, c.chunk_size, c.etas = 20, 2, (4, 20), 2, 200, 100, (5.0, 10.0)
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'quick' or nothing")
    return c
