"""The polytope structure of a trained ReLU network on a toy 2-D dataset (Lee, Mammadov, Ye, ICML 2024):
train 10 seeds (one vmapped program), compress each, extract its decision region exactly.

    lrjax run configs/polytopes.py                                  # hexagon with a pentagonal hole
    lrjax run configs/polytopes.py --set dataset=two_triangles
    lrjax run configs/polytopes.py --set dataset=swiss_roll         # 2 -> 20 -> 4 -> 1
    lrjax run configs/polytopes.py:quick                            # smoke test
    lrjax run configs/polytopes.py --set compress_during_training=true   # the authors' pruning during training
    lrjax run configs/polytopes.py --set loss=mse

datasets: hexagon_hole | two_triangles | two_circles | xor | moons | swiss_roll
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "polytopes"
    c.dataset = "hexagon_hole"
    c.widths = None                  # None: (16, 4), swiss_roll (20, 4) (lrjax's choices)
    c.n = 1000                       # training points (and as many test points)
    c.lr = 1e-3                      # Adam, full batch, BCE with logits (the authors: 1e-4,
                                     # Defining_NN 3f58a74 polytope_in_order.ipynb cell 3)
    c.steps = 10000
    c.seeds = 10
    c.seed = 0
    c.min_weight = 0.1               # compression: neurons with |outgoing| * |incoming| below this go
    c.checkpoint_every = 2           # chunks
    c.loss = "bce"                   # bce | mse (squared error of sigmoid(logit) to the 0/1 label)
    # compression during training, the authors' Algorithm 4 (lrjax.polytope.pruning; widths/lr/steps unused)
    c.compress_during_training = False
    c.faces = 8                      # each polytope network's starting width (polytope_in_order: 8)
    c.prune_lr = 1e-4                # Adam, full batch, per polytope
    c.prune_steps = 150000           # at most, per polytope
    c.prune_every = 1000             # checks (sign flip, width 0, goal) and, after prune_start, pruning
    c.prune_start = 5555
    c.stop_after = 39990             # stop once the polytope encloses its class, after this step
    c.lam = 100.0                    # weight of the class the polytope encloses
    c.attempts = 8                   # polytopes tried per seed
    c.literal = True                 # the authors' redundant score and rescaling band as written
    if arg == "quick":
        c.dataset, c.steps, c.seeds, c.n = "two_triangles", 1500, 2, 400
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'quick' or nothing")
    return c
