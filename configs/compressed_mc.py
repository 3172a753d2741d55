"""Compressed vs original deep matrix completion with gamma = 0 and 0.01 (Yaras et al. ICML 2024).

d = 1000, r* = 5, p = 0.2 observed, L = 3, eps = 1e-3, GD with eta = 5e3 on 1/2 mean(M * (W - Phi)^2):
recovery error (unobserved entries) against iterations and wall time; the original also timed in the
papers' loop pattern. Paper: gamma = 0 stalls near 4e-4, gamma = 0.01 reaches 1e-12 ~7x sooner.

    lrjax run configs/compressed_mc.py          # paper size (GPU: ~10 s; CPU: ~1 h for the original)
    lrjax run configs/compressed_mc.py:small    # d = 200, eta scaled by (d / 1000)^(4/3)
    lrjax run configs/compressed_mc.py:quick
    lrjax run configs/compressed_mc.py:failure  # the talk's failure case: d = 1000, r* = 3, |Omega| = 20,000

`:failure` (the IMSI talk by Yaras et al., seed 003 line 429: "Our theorem doesn't hold since Omega (.) Phi is not
low-rank for arbitrary Omega, and the method fails. (d = 1000, r = 3, |Omega| = 20000)"): p = 0.02, and eta
scaled by 0.2 / 0.02 so that eta p (the step on the mean-over-d^2 loss) matches the paper's p = 0.2 runs;
the talk's learning rate is not stated. CPU: the original takes ~120-270 ms/step at d = 1000 and
needs ~18,000 steps here (81 min at the 266 ms/step measured on a shared 2-core CPU).
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "compressed_dynamics"
    c.task = "completion"            # factorization | completion | sensing
    c.d = 1000
    c.rank = 5
    c.depth = 3
    c.eps = 1e-3
    c.eta = 5e3
    c.fraction = 0.2
    c.measurements = 0
    c.methods = "original,compressed,spectral"
    c.gammas = (0.0, 0.01)
    c.steps = 40000
    c.tol = 1e-14
    c.reach = 1e-12
    c.chunk_size = 200
    c.record_every = 100
    c.pca_entries = 4096
    c.authors_steps = 1000
    c.seed = 0
    c.dtype = "float64"
    if arg == "small":
        c.d, c.eta, c.gammas, c.authors_steps = 200, 500.0, (0.0, 0.01, 0.1), 2000
    elif arg == "failure":
        c.rank, c.fraction, c.eta, c.methods, c.authors_steps = 3, 0.02, 5e4, "original,compressed", 0
    elif arg == "quick":
        c.d, c.rank, c.eta, c.steps, c.chunk_size, c.record_every, c.authors_steps = 40, 2, 60.0, 400, 100, 50, 200
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'small', 'failure', 'quick' or nothing")
    return c
