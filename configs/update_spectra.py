"""The updates W(t) - W(0) of trained networks are low rank (the talk's opening figure: singular values of
the penultimate layer's update over iterations): a deep linear network (MSE) and an MLP (cross-entropy) on
MNIST-5k, a small VGG-style CNN and a small ViT (cross-entropy) on Fashion-MNIST (CIFAR-10, the talk's
set for these two, is not available offline), plain SGD from default Flax inits. The authors' settings
for the figure were not found (experiments/update_spectra.py says where we looked): these are lrjax's.

    lrjax run configs/update_spectra.py          # minibatch SGD (batch 128); CPU: ~1 h (VGG 2 seeds)
    lrjax run configs/update_spectra.py:gd       # gradient descent (full batch) on MNIST-5k, linear and mlp
    lrjax run configs/update_spectra.py:quick    # digits, smoke test

Needs the datasets installed (`make data`).
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.experiment = "update_spectra"
    c.networks = ("linear", "mlp", "vgg", "vit")
    c.datasets = ("mnist5k", "mnist5k", "fashion_mnist", "fashion_mnist")   # one per network
    c.mlp_widths = (200, 200)        # linear and mlp: 784-200-200-10, Delta W_{L-1} is 200 x 200
    c.cnn_widths = (16, 32, 128)     # the small cnn: conv channels, dense units
    c.vgg_channels = (16, 32)        # two 3x3 convs per block, 2x2 max pooling
    c.vgg_dense = (128, 128)         # Delta W_{L-1} is the second dense layer, 128 x 128
    c.vit_dim, c.vit_depth, c.vit_heads, c.vit_patch, c.vit_mlp = 64, 2, 4, 7, 128   # Delta W_{L-1}: 128 x 64
    c.optimizer = "sgd"
    c.lrs = (0.01, 0.1, 0.05, 0.1)   # one per network (the linear network diverges at 0.05)
    c.batch_size = 128               # 0: the whole training set every step (gradient descent)
    c.steps = 3000
    c.seeds = 2
    c.eval_every = 100
    c.train_size = 0                 # 0: the whole training split
    c.rank_rtol = 1e-3               # numerical rank: singular values above rank_rtol x the largest
    c.top_k = 5                      # top_share: the top-k singular values' share of ||Delta W||_F^2
    c.energy_fraction = 0.9          # energy rank: the fewest singular values holding this share of ||Delta W||_F^2
    c.seed = 0
    c.checkpoint_every = 2
    if arg == "gd":   # VGG and ViT at full batch cost ~15 s / ~2.5 s a step on 2 CPU cores: not in this variant
        c.networks, c.datasets, c.lrs = ("linear", "mlp"), ("mnist5k", "mnist5k"), (0.01, 0.1)
        c.batch_size, c.steps = 0, 3000
    elif arg == "quick":
        c.datasets = ("digits",) * 4
        c.mlp_widths, c.vgg_channels, c.vgg_dense, c.vit_dim, c.vit_patch, c.vit_mlp = (32, 32), (4,), (16,), 16, 4, 32
        c.steps, c.eval_every, c.batch_size = 200, 50, 32
    elif arg not in (None, ""):
        raise ValueError(f"unknown config argument {arg!r}; use 'gd', 'quick' or nothing")
    return c
