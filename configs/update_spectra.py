"""The updates W(t) - W(0) of trained networks are low rank: a deep linear network (MSE), an MLP and a small
CNN (cross-entropy) on Fashion-MNIST, plain SGD, singular values of every layer's update over training.

    lrjax run configs/update_spectra.py          # CPU: a few minutes
    lrjax run configs/update_spectra.py:quick    # digits, smoke test
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "update_spectra"
    c.dataset = "fashion_mnist"
    c.networks = ("linear", "mlp", "cnn")
    c.mlp_widths = (200, 200)        # linear and mlp
    c.cnn_widths = (16, 32, 128)     # conv channels, dense units
    c.optimizer = "sgd"
    c.lrs = (0.01, 0.1, 0.05)        # one per network (the linear network diverges at 0.05)
    c.batch_size = 128
    c.steps = 3000
    c.seeds = 2
    c.eval_every = 250
    c.train_size = 0
    c.seed = 0
    c.checkpoint_every = 2
    if arg == "quick":
        c.dataset, c.mlp_widths, c.cnn_widths, c.steps, c.eval_every, c.batch_size = \
            "digits", (32, 32), (4, 16), 200, 50, 32
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'quick' or nothing")
    return c
