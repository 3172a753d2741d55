"""Seed x init-scale sweep of deep matrix completion as one sharded program, in one process or several.

    lrjax run configs/completion_sweep.py                           # d = 300, compressed, 8 seeds x 3 eps
    lrjax run configs/completion_sweep.py --set method=original --set "eps_values=(1e-3,)"
    lrjax run configs/completion_sweep.py:quick                     # smoke test

Across processes (here two on one machine; on several hosts use process 0's address and a free port there),
every process runs the same command with its own --process-id; only process 0 writes the work directory:

    lrjax run configs/completion_sweep.py --coordinator 127.0.0.1:8476 --num-processes 2 --process-id 0 &
    lrjax run configs/completion_sweep.py --coordinator 127.0.0.1:8476 --num-processes 2 --process-id 1
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "completion_sweep"
    c.d = 300
    c.rank = 3                       # r* of the target
    c.observed = 18_000              # |Omega| (p = 0.2)
    c.held_out = 0                   # 0: every unobserved entry (exact)
    c.spectrum = "gaussian_scale"    # gaussian_scale | spread | flat
    c.method = "compressed"          # original | compressed | spectral | two_factor
    c.depth = 3
    c.eps_values = (1e-3, 1e-2, 1e-1)
    c.gamma = 0.01                   # compressed: outer factors at gamma * eta
    c.eta = None                     # None: 5e3 (d / 1000)^(4/3) (0.2 / p)
    c.seeds = 8                      # init seeds seed, seed + 1, ...; the task is drawn from seed
    c.seed = 0
    c.steps = 4000
    c.record_every = 50
    c.dtype = "float64"
    if arg == "quick":
        c.d, c.rank, c.observed, c.seeds, c.steps, c.eps_values, c.eta = 40, 2, 600, 2, 1500, (1e-2, 1e-1), 150.0
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'quick' or nothing")
    return c
