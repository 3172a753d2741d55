"""Compressed vs original deep matrix factorization (Yaras et al. ICML 2024, equivalence figure).

d = 1000, r* = 10, L = 3, eps = 1e-3, GD with eta = 1e3 on 1/2 mean((W - Phi)^2), gamma = 0 (outer
factors frozen): loss against iterations and wall time, and both trajectories on the original's PCs.
Kwon et al.'s spectral init is run beside them.

    lrjax run configs/compressed_mf.py          # paper size (GPU: seconds; CPU: ~1 h for the original)
    lrjax run configs/compressed_mf.py:small    # d = 200 (CPU: about a minute)
    lrjax run configs/compressed_mf.py:quick
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "compressed_dynamics"
    c.task = "factorization"         # factorization | completion | sensing
    c.d = 1000
    c.rank = 10                      # r* (compressed width 2 r*)
    c.depth = 3
    c.eps = 1e-3
    c.eta = 1e3
    c.fraction = 0.2                 # completion only
    c.measurements = 0               # sensing only (0: 4 d r*)
    c.methods = "original,compressed,spectral"
    c.gammas = (0.0,)                # outer-factor rate gamma * eta of the compressed runs
    c.steps = 20000
    c.tol = 1e-12                    # stop when the train loss reaches it
    c.reach = 1e-12                  # time-to-reach level: max(original's final test error, reach)
    c.chunk_size = 200
    c.record_every = 100             # PCA trajectory
    c.pca_entries = 4096
    c.authors_steps = 1000           # time the papers' loop pattern for this many steps (0: skip)
    c.seed = 0
    c.dtype = "float64"
    if arg == "small":
        c.d, c.eta, c.steps, c.authors_steps = 200, 150.0, 40000, 2000
    elif arg == "quick":
        c.d, c.rank, c.eta, c.steps, c.chunk_size, c.record_every, c.authors_steps = 40, 2, 20.0, 400, 100, 50, 200
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'small', 'quick' or nothing")
    return c
