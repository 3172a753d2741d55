"""The width-m upper bound for one convex polytope with m faces (Lee, Mammadov, Ye, ICML 2024): the
constructed width-m 2-layer ReLU network separates exactly; trained networks of widths m - 2 .. m + 2 (10
seeds each, one vmapped program) separate at the rate measured, for random polytopes in d = 2..8.

    lrjax run configs/polytope_bound.py
    lrjax run configs/polytope_bound.py --set faces=16 --set dims="(2, 6, 10)"   # 16 faces
    lrjax run configs/polytope_bound.py:quick                       # smoke test
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "polytope_bound"
    c.dims = (2, 4, 6, 8)             # d = 10 with 12 faces: bounded with probability 0.006 (Wendel)
    c.faces = 12                     # m: facets of every random polytope (>= max(dims) + 1)
    c.polytopes = 2                  # random polytopes per dimension
    c.width_offsets = (-2, -1, 0, 2)   # trained widths m + offset
    c.n = 1000                       # points near the boundary, half inside (and as many test points)
    c.spread = 0.3                   # radial scale s ~ U(1 - spread, 1 + spread) of the boundary distance
    c.lr = 3e-2                      # Adam, full batch, BCE with logits
    c.steps = 5000
    c.seeds = 10
    c.seed = 0
    c.checkpoint_every = 0
    if arg == "quick":
        c.dims, c.faces, c.polytopes, c.width_offsets, c.n, c.steps, c.seeds = (2, 3), 5, 1, (-2, 0), 400, 1500, 2
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'quick' or nothing")
    return c
