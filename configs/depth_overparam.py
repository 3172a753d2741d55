"""Why depth in linear layers: an MLP on Fashion-MNIST whose every kernel is deep(L), L = 1..4 (collapsed to
one matrix at test time), 5 seeds per depth vmapped: test accuracy and effective rank against L.

    lrjax run configs/depth_overparam.py         # CPU: several minutes
    lrjax run configs/depth_overparam.py:quick   # digits, smoke test
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "depth_overparam"
    c.dataset = "fashion_mnist"
    c.widths = (200, 200)
    c.depths = (1, 2, 3, 4)
    c.scale = 1.0                    # every factor eps-scaled orthogonal with eps = scale
    c.optimizer = "momentum"
    c.lr = 0.01
    c.batch_size = 128
    c.steps = 3000
    c.seeds = 5
    c.eval_every = 500
    c.train_size = 0
    c.seed = 0
    c.checkpoint_every = 2
    if arg == "quick":
        c.dataset, c.widths, c.depths, c.steps, c.seeds, c.eval_every, c.batch_size = \
            "digits", (32,), (1, 2), 200, 2, 100, 32
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'quick' or nothing")
    return c
