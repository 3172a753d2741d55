"""Deep matrix completion from observed entries only (never a d x d mask or target): compressed, spectral,
original, or a rank-r two-factor baseline (Yaras et al. ICML 2024; Kwon et al. AISTATS 2024).

    lrjax run configs/sparse_completion.py                          # d = 1000, p = 0.2, compressed (the paper's setting)
    lrjax run configs/sparse_completion.py:d10k                     # d = 10,000, |Omega| = 1e6
    lrjax run configs/sparse_completion.py:d100k --set steps=300    # d = 100,000, |Omega| = 1e7
    lrjax run configs/sparse_completion.py:fashion                  # 60,000 x 784 Fashion-MNIST images, 20% observed
    lrjax run configs/sparse_completion.py:fashion --set method=two_factor --set rank=20 --set eps=0.1 --set eta=6.5e4 --set steps=200
    lrjax run configs/sparse_completion.py:quick
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "sparse_completion"
    c.matrix = "low_rank"            # low_rank | fashion_mnist
    c.d = 1000
    c.rank = 5
    c.observed = 200_000             # |Omega|
    c.held_out = 0                   # 0: every unobserved entry (exact); else a uniform sample of that size
    c.spectrum = "gaussian"          # gaussian (needs a d x d SVD) | gaussian_scale | spread | flat
    c.method = "compressed"          # original | compressed | spectral | two_factor
    c.depth = 3
    c.eps = 1e-3
    c.gamma = 0.01                   # compressed: outer factors at gamma * eta
    c.eta = None                     # None: 5e3 (d / 1000)^(4/3) (0.2 / p)
    c.evaluation = "auto"            # auto | gather | product (see tasks.sparse_completion.resolve_evaluation)
    c.steps = 30_000
    c.tol = 1e-14                    # stop when the training loss reaches it
    c.chunk_size = 500
    c.record_every = 100
    c.svd_iters = 30
    c.oversample = 10
    c.seed = 0
    c.dtype = "float64"
    if arg == "d10k":
        c.d, c.observed, c.held_out, c.spectrum, c.tol = 10_000, 1_000_000, 100_000, "gaussian_scale", 1e-12
    elif arg == "d100k":
        c.d, c.observed, c.held_out, c.spectrum, c.tol = 100_000, 10_000_000, 100_000, "gaussian_scale", 1e-12
        c.steps, c.chunk_size = 2000, 100
    elif arg == "fashion":  # depth 3, spectral init at width 20 and scale 3 (W(0) = 27 U V^T): past its saddle
        c.matrix, c.observed, c.held_out, c.rank, c.tol = "fashion_mnist", 9_408_000, 100_000, 10, None
        c.method, c.eps, c.eta, c.steps, c.chunk_size, c.record_every = "spectral", 3.0, 3e3, 600, 100, 50
    elif arg == "quick":
        c.d, c.rank, c.observed, c.steps, c.chunk_size, c.record_every, c.eta = 100, 3, 2000, 10_000, 1000, 100, 800.0
        c.tol = 1e-12
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'd10k', 'd100k', 'fashion', 'quick' or nothing")
    return c
