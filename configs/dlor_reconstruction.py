"""Exact reconstruction of random full-rank n x n matrices by DLoR components (DLoR paper, claim 2):
additive (sums of rank-r terms) and multiplicative (products of DLoR factors), errors, parameter counts,
and the spectra of the factors.

    lrjax run configs/dlor_reconstruction.py        # n = 8 .. 256 (CPU: about a minute)
    lrjax run configs/dlor_reconstruction.py:quick
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "dlor_reconstruction"
    c.sizes = (8, 16, 32, 64, 128, 256)
    c.ranks = (1, 4, 16)
    c.tolerance = 1e-10               # float64 relative error counted as exact
    c.spectra_n = 32
    c.spectra_rank = 4
    c.seed = 0
    c.dtype = "float64"
    if arg == "quick":
        c.sizes, c.ranks, c.spectra_n = (8, 16), (1, 4), 8
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'quick' or nothing")
    return c
