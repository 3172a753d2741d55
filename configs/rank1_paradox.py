"""The rank-1 paradox: rank-1 networks interpolate scalar data exactly but cannot approximate a map
R^2 -> R^2; DLoR layers of the same rank can (DLoR paper, claim 1).

    lrjax run configs/rank1_paradox.py          # CPU: about a minute
    lrjax run configs/rank1_paradox.py:quick
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "rank1_paradox"
    c.interp_points = (16, 64, 256)   # part (a): N scalar data points
    c.interp_width = 8                # width of the first rank-1 layer
    c.width = 16                      # part (b) network (2, width, width, 2)
    c.rank = 1
    c.act = "tanh"
    c.train_points = 256
    c.grid = 41                       # test grid grid x grid
    c.steps = 20000
    c.lr = 3e-3
    c.seeds = 8
    c.record_every = 500
    c.seed = 0
    if arg == "quick":
        c.interp_points, c.steps, c.seeds, c.record_every, c.grid = (16,), 300, 2, 100, 11
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'quick' or nothing")
    return c
