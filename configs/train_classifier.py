"""Train an MLP or CNN on an offline image dataset with any binding rules; seeds vmapped, minibatches on the
device. Default: Li et al.'s dense 784-200-200-10 MLP on Fashion-MNIST (Adam 1e-3, batch 128).

    lrjax run configs/train_classifier.py                       # Fashion-MNIST MLP (CPU: about 2 min)
    lrjax run configs/train_classifier.py --set model=cnn --set widths="(32, 64, 256)"
    lrjax run configs/train_classifier.py --set rules=".*kernel=deep(2, scale=0.1)"
    lrjax run configs/train_classifier.py --set rules=".*kernel=lora(8)" --set dataset=mnist5k
    lrjax run configs/train_classifier.py:quick                 # digits, smoke test

Needs the dataset installed (`make data`); rules are "regex=spec; ..." over parameter paths such as
Dense_0/kernel (first match wins, then .*=dense()).
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "train_classifier"
    c.dataset = "fashion_mnist"      # digits | mnist5k | fashion_mnist
    c.model = "mlp"                  # mlp | cnn
    c.widths = (200, 200)            # mlp: hidden widths; cnn: (conv channels..., dense units)
    c.act = "relu"
    c.rules = ".*=dense()"
    c.loss = "cross_entropy"         # cross_entropy | mse (against one-hot targets)
    c.optimizer = "adam"             # sgd | momentum | adam
    c.lr = 1e-3
    c.batch_size = 128
    c.steps = 6000                   # 12.8 epochs of Fashion-MNIST
    c.seeds = 3
    c.eval_every = 500
    c.train_size = 0                 # 0: the whole training split
    c.seed = 0
    c.checkpoint_every = 2           # chunks
    if arg == "quick":
        c.dataset, c.widths, c.batch_size, c.steps, c.seeds, c.eval_every = "digits", (32,), 32, 200, 2, 50
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'quick' or nothing")
    return c
