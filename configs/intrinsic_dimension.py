"""Intrinsic dimension (Li et al. 2018): train Li et al.'s 784-200-200-10 MLP (D = 199,210) on MNIST-5k only in a
random d-dimensional subspace (Fastfood projection), sweep d, bisect for d_int90 (90% of direct training); or
SAID on a pretrained language model (Aghajanyan et al. 2020): all-MiniLM-L6-v2 fine-tuned to Rotten Tomatoes.

    lrjax run configs/intrinsic_dimension.py                       # MNIST-5k MLP, Fastfood (CPU: minutes)
    lrjax run configs/intrinsic_dimension.py --set dataset=fashion_mnist
    lrjax run configs/intrinsic_dimension.py --set model=cnn        # conv 6, conv 16, dense 120
    lrjax run configs/intrinsic_dimension.py --set projection=sparse --set dims="(10, 50, 200)"
    lrjax run configs/intrinsic_dimension.py --set model=minilm --set dataset=sentiment --set said=true
                                                                   # SAID over all D = 22.6M (2-core CPU: ~20 min)
    lrjax run configs/intrinsic_dimension.py:quick                 # digits, smoke test
    lrjax run configs/intrinsic_dimension.py:minilm_quick          # MiniLM SAID, smoke test

Keys left None take the model's default (experiments/intrinsic_dimension.py MODEL_DEFAULTS): the MLP and CNN
subspace lr 0.1, direct 1e-3, batch 128, 2,000 steps, 3 seeds, dims 100-1600; MiniLM (model=minilm) its own,
sized for a 2-core CPU. Needs the dataset installed (`make data`; MiniLM and the snippets: `make install`).
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "intrinsic_dimension"
    c.dataset = "mnist5k"            # digits | mnist5k | fashion_mnist (mlp, cnn) | sentiment (minilm only)
    c.model = "mlp"                  # mlp | cnn | minilm (all-MiniLM-L6-v2 + linear head, pretrained)
    c.widths = None                  # None: mlp (200, 200), cnn (6, 16, 120); cnn: (conv channels..., dense units)
    c.projection = "fastfood"        # dense | sparse | fastfood
    c.normalize = None               # global: P's columns norm 1 over all D (Li et al.) | tensor: each tensor's
                                     # slice norm 1 (one Fastfood per tensor, as Aghajanyan et al.'s code);
                                     # None: mlp/cnn global, minilm tensor
    c.dims = None                    # the coarse sweep; None: mlp/cnn (100, 200, 400, 800, 1600), minilm its own
    c.bisect = 3                     # bisection steps between the largest failing and smallest passing d
    c.said = False                   # SAID: one learned scale per parameter tensor (Aghajanyan et al.)
    c.optimizer = "adam"
    c.lr = None                      # subspace training (z: Adam steps move theta by ~lr sqrt(d), not lr sqrt(D));
                                     # None: mlp/cnn 0.1, minilm its own
    c.baseline_lr = None             # direct training; None: mlp/cnn 1e-3, minilm its own (full fine-tuning)
    c.batch_size = None              # None: mlp/cnn 128, minilm its own
    c.steps = None                   # per d and for the baseline; None: mlp/cnn 2000, minilm its own
    c.seeds = None                   # None: mlp/cnn 3, minilm 1
    c.eval_every = None              # None: mlp/cnn 500, minilm its own
    c.train_size = 0                 # 0: the whole training split
    c.max_length = None              # minilm only: tokens per snippet (None: its default)
    c.test_size = None               # minilm only: held-out snippets (0: all 2,551; None: its default)
    c.seed = 0
    c.checkpoint_every = 2           # chunks
    if arg == "quick":
        c.dataset, c.widths, c.dims, c.bisect = "digits", (32,), (8, 32, 128), 1
        c.steps, c.seeds, c.eval_every, c.batch_size = 200, 2, 100, 32
    elif arg == "minilm_quick":
        c.model, c.dataset, c.said, c.dims, c.bisect = "minilm", "sentiment", True, (1000,), 0
        c.steps, c.seeds, c.eval_every, c.batch_size = 8, 1, 8, 8
        c.train_size, c.test_size, c.max_length, c.baseline_lr = 256, 64, 16, 1e-4
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'quick', 'minilm_quick' or nothing")
    return c
