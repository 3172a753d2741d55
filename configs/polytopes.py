"""The polytope structure of a trained ReLU network on a toy 2-D dataset (Lee, Mammadov, Ye, ICML 2024):
train 10 seeds (one vmapped program), compress each, extract its decision region exactly.

    lrjax run configs/polytopes.py                                  # hexagon with a pentagonal hole
    lrjax run configs/polytopes.py --set dataset=two_triangles
    lrjax run configs/polytopes.py --set dataset=swiss_roll         # 2 -> 20 -> 4 -> 1
    lrjax run configs/polytopes.py:quick                            # smoke test

datasets: hexagon_hole | two_triangles | two_circles | xor | moons | swiss_roll
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "polytopes"
    c.dataset = "hexagon_hole"
    c.widths = None                  # None: (16, 4) (the paper's worked example), swiss_roll (20, 4)
    c.n = 1000                       # training points (and as many test points)
    c.lr = 1e-3                      # Adam, full batch, BCE with logits (the authors: 1e-4)
    c.steps = 10000
    c.seeds = 10
    c.seed = 0
    c.min_weight = 0.1               # compression: neurons with |outgoing| * |incoming| below this go
    c.checkpoint_every = 2           # chunks
    if arg == "quick":
        c.dataset, c.steps, c.seeds, c.n = "two_triangles", 1500, 2, 400
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'quick' or nothing")
    return c
