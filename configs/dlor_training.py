"""Fixed-budget training from scratch: deep DLoR vs wide low-rank vs a parameter-matched dense MLP on a
random dense teacher R^2 -> R^2 (DLoR paper, Fig. 4 and 6), 10 seeds per architecture vmapped.

    lrjax run configs/dlor_training.py          # 50,000 epochs (CPU: several minutes)
    lrjax run configs/dlor_training.py:quick
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "dlor_training"
    c.teacher_width = 32
    c.teacher_gain = 1.5              # teacher weights scaled by this (a less linear target)
    c.width = 32                      # student width
    c.deep_hidden = 4                 # hidden layers of the deep DLoR student
    c.branches = 2                    # branches of the wide student
    c.rank = 1
    c.train_points = 256
    c.test_points = 1024
    c.epochs = 50000
    c.budgets = (5000, 50000)
    c.threshold = 1e-3                # train MSE counted as success
    c.extra_thresholds = (1e-5,)      # stricter levels also reported
    c.lr = 1e-3
    c.seeds = 10
    c.record_every = 500
    c.seed = 0
    if arg == "quick":
        c.epochs, c.budgets, c.seeds, c.record_every, c.width, c.deep_hidden = 300, (100, 300), 2, 100, 8, 2
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'quick' or nothing")
    return c
