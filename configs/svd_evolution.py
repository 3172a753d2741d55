"""Evolution of the SVD of a deep linear network on 1/2 ||X W - Y||_F^2, low-rank vs wide (full-rank)
targets, plain GD vs momentum: singular values and the angles of their vectors against the initial ones.

    lrjax run configs/svd_evolution.py           # CPU: about 10 s
    lrjax run configs/svd_evolution.py:quick
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "svd_evolution"
    c.d = 30
    c.samples = 100
    c.depth = 3
    c.rank = 3                       # of the low-rank target
    c.targets = ("lowrank", "wide")
    c.optimizers = ("gd", "momentum")
    c.eps = 0.3                      # init scale of each factor
    c.lr = 2e-3
    c.steps = 600
    c.record_every = 5
    c.top = 6
    c.seed = 0
    if arg == "quick":
        c.d, c.samples, c.steps, c.record_every, c.top, c.rank = 10, 40, 400, 20, 4, 2
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'quick' or nothing")
    return c
