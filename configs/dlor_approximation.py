"""DLoR networks approximating a dense MLP and a sawtooth as h -> 0, deep and wide, for tanh, GELU,
softplus, sigmoid and ReLU (DLoR paper, Fig. 2-3; constructions in lrjax.studies.dlor_approximation).

    lrjax run configs/dlor_approximation.py         # CPU: seconds
    lrjax run configs/dlor_approximation.py:quick
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "dlor_approximation"
    c.n = 16                          # teacher input / hidden width (A is n x n)
    c.out = 2
    c.rank = 1                        # rank of the DLoR factors / additive terms
    c.beta = 0.5                      # linearisation point of the hidden activations
    c.samples = 1024
    c.activations = ("tanh", "gelu", "softplus", "sigmoid", "relu")
    c.hs = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
    c.slope_max_h = 1e-3              # fit the log-log slope on h <= this (asymptotic range)
    c.exact_tolerance = 1e-9          # ReLU: every error below this counts as exact
    c.sawtooth_levels = (3, 5)
    c.sawtooth_activations = ("softplus", "gelu", "silu")
    c.sawtooth_hs = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
    c.sawtooth_points = 4097
    c.seed = 0
    if arg == "quick":
        c.n, c.samples, c.hs, c.sawtooth_levels, c.sawtooth_hs = 6, 64, (1e-4, 1e-3, 1e-2), (3,), (1e-3, 1e-2)
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'quick' or nothing")
    return c
