"""Matrix factorization with any parameterization: GD dynamics over vmapped seeds, with spectra.

Fits a random rank-r* target Phi (d x d) by minimizing 1/2 ||W - Phi||_F^2 with W given by the
`param` spec (deep factorization by default), one compiled program for all `seeds`. Records the
singular values of W every `record_every` steps, stops when every seed reaches `tol`, checkpoints
to the work directory (re-run the same command with the same --workdir to resume).

    lrjax run configs/deep_mf.py                                   # d=100, 8 seeds, float32
    lrjax run configs/deep_mf.py --set param="deep(4, scale=1e-2)"
    lrjax run configs/deep_mf.py --set param="lowrank(5)" --set eta=0.05
    lrjax run configs/deep_mf.py:quick
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "deep_mf"
    c.d = 100
    c.rank = 5                       # r* of the target
    c.param = "deep(3, scale=0.03)"  # any lrjax spec
    c.eta = 0.1
    c.weight_decay = 0.0
    c.steps = 3000
    c.seeds = 8
    c.record_every = 10
    c.chunk_size = 500
    c.tol = 1e-6
    c.dtype = "float32"
    c.checkpoint_every = 2           # chunks
    if arg == "quick":
        c.d, c.steps, c.seeds, c.record_every, c.chunk_size = 16, 200, 2, 20, 100
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'quick' or nothing")
    return c
