"""Which combinations of hidden widths let deeper ReLU networks separate one convex polytope: networks with
every width <= d (below the necessary condition of Beise et al., arXiv 1807.01194: their decision regions
are unbounded) against wider ones, 2-layer width m (the paper's upper bound) among them.

    lrjax run configs/polytope_depth.py                              # d = 2, m = 8, 2 polytopes x 10 seeds (~25 min)
    lrjax run configs/polytope_depth.py --set d=3 --set faces=10 --set architectures="((3, 3), (3, 3, 3), (4, 4), (10,))"
    lrjax run configs/polytope_depth.py:quick                        # smoke test
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "polytope_depth"
    c.d = 2
    c.faces = 8                      # m: facets of every random polytope
    c.polytopes = 2
    c.architectures = ((2,), (2, 2), (2, 2, 2, 2), (2, 8), (3,), (3, 3), (3, 3, 3, 3), (3, 8), (4, 4), (4, 8),
                       (8,), (8, 2), (8, 8))
    c.n = 1000                       # points near the boundary, half inside (and as many test points)
    c.spread = 0.3
    c.lr = 3e-2                      # Adam, full batch, BCE with logits (as configs/polytope_bound.py)
    c.steps = 20000
    c.seeds = 10
    c.far_scales = (2.0, 5.0)        # spheres at these multiples of the data's radius (and the recession test)
    c.far_points = 65536
    c.seed = 0
    c.checkpoint_every = 0
    if arg == "quick":
        c.faces, c.polytopes, c.architectures, c.n, c.steps, c.seeds = 5, 1, ((2, 2), (5,)), 400, 1500, 2
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'quick' or nothing")
    return c
