"""Intrinsic dimension (Li et al. 2018): train Li et al.'s 784-200-200-10 MLP (D = 199,210) on MNIST-5k only in a
random d-dimensional subspace (Fastfood projection), sweep d, bisect for d_int90 (90% of direct training).

    lrjax run configs/intrinsic_dimension.py                       # MNIST-5k MLP, Fastfood (CPU: minutes)
    lrjax run configs/intrinsic_dimension.py --set dataset=fashion_mnist
    lrjax run configs/intrinsic_dimension.py --set model=cnn        # conv 6, conv 16, dense 120
    lrjax run configs/intrinsic_dimension.py --set projection=sparse --set dims="(10, 50, 200)"
    lrjax run configs/intrinsic_dimension.py:quick                 # digits, smoke test

Needs the dataset installed (`make data`).
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "intrinsic_dimension"
    c.dataset = "mnist5k"            # digits | mnist5k | fashion_mnist
    c.model = "mlp"                  # mlp | cnn
    c.widths = None                  # None: mlp (200, 200), cnn (6, 16, 120); cnn: (conv channels..., dense units)
    c.projection = "fastfood"        # dense | sparse | fastfood
    c.dims = (100, 200, 400, 800, 1600)   # the coarse sweep
    c.bisect = 3                     # bisection steps between the largest failing and smallest passing d
    c.said = False                   # SAID: one learned scale per parameter tensor (Aghajanyan et al.)
    c.optimizer = "adam"
    c.lr = 0.1                       # subspace training (z: Adam steps move theta by ~lr sqrt(d), not lr sqrt(D))
    c.baseline_lr = 1e-3             # direct training
    c.batch_size = 128
    c.steps = 2000
    c.seeds = 3
    c.eval_every = 500
    c.train_size = 0                 # 0: the whole training split
    c.seed = 0
    c.checkpoint_every = 2           # chunks
    if arg == "quick":
        c.dataset, c.widths, c.dims, c.bisect = "digits", (32,), (8, 32, 128), 1
        c.steps, c.seeds, c.eval_every, c.batch_size = 200, 2, 100, 32
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'quick' or nothing")
    return c
