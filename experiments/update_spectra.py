"""Experiment: the updates of trained networks are low rank (the observation behind LoRA and the
compressible-dynamics papers; the talk's opening figure: singular values of ``Delta W_{L-1}(t) =
W_{L-1}(t) - W_{L-1}(0)``, the penultimate layer's update, over iterations). Networks: a deep linear network
(MSE against one-hot targets) and an MLP (cross-entropy) on MNIST-5k, a small VGG-style CNN and a small ViT
(cross-entropy) on Fashion-MNIST (the talk uses CIFAR-10, which is not available offline), plus the
older small ``cnn``; all trained by the same optimizer from their default Flax inits. ``batch_size=0``
trains on the whole training set every step (gradient descent, ``:gd``).

The authors' settings for this figure (depths, widths, learning rates, steps) were not found: the talk's
slide (seed 003, lines 156-163) names only the networks, losses, datasets and "gradient descent", and the
authors' repositories hold no such experiment (searched: cjyaras/law-of-parsimony, cjyaras/deep-lora-
transformers, soominkwon/comp-deep-nets). Every setting here is lrjax's.

Metrics per network: test accuracy (median over seeds); per layer, the numerical rank (singular values
above ``rank_rtol`` of the largest) and effective rank of the final update; for the penultimate layer,
the numerical rank, the energy rank (the fewest singular values holding ``energy_fraction`` of
``||Delta W||_F^2``) and the share ``sum_{i <= top_k} s_i^2 / sum_i s_i^2`` over time (medians over seeds).
"""
from __future__ import annotations

import numpy as np

from lrjax import data, models
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.schema import Choice, Float, Int, Rule, Schema, Seq, data_checks
from lrjax.studies import classification

NETWORKS = ("linear", "mlp", "cnn", "vgg", "vit")

SCHEMA = Schema(
    networks=Seq(Choice(*NETWORKS), distinct=True), datasets=Seq(Choice(*data.available()), length=lambda c: len(c.networks)),
    mlp_widths=Seq(Int(min=1), min_len=1), cnn_widths=Seq(Int(min=1), min_len=2), vgg_channels=Seq(Int(min=1), min_len=1),
    vgg_dense=Seq(Int(min=1), min_len=1), vit_dim=Int(min=1), vit_depth=Int(min=1), vit_heads=Int(min=1),
    vit_patch=Int(min=1), vit_mlp=Int(min=1), optimizer=Choice(*classification.OPTIMIZERS),
    lrs=Seq(Float(gt=0), length=lambda c: len(c.networks)), batch_size=Int(min=0), steps=Int(min=1, resume="grow"),
    seeds=Int(min=1), eval_every=Int(min=1), train_size=Int(min=0), seed=Int(min=0),
    rank_rtol=Float(gt=0, lt=1, resume="any"), top_k=Int(min=1, resume="any"),
    energy_fraction=Float(gt=0, lt=1, resume="any"), checkpoint_every=Int(min=0, resume="any"),
    checks=[Rule(("vit_dim", "vit_heads"), lambda d, h: d % h == 0, "vit_dim must be a multiple of vit_heads"),
            Rule(("datasets", "train_size"), lambda ds, n: all(n <= data.TRAIN_SIZES[d] for d in ds),
                 "train_size exceeds a dataset's training examples"),
            Rule(("networks", "datasets", "vit_patch"),
                 lambda ns, ds, p: all(data.IMAGE_SHAPES[d][0] % p == 0 for n, d in zip(ns, ds) if n == "vit"),
                 "vit_patch must divide the ViT dataset's image size")],
)


def network(name: str, config):
    """``(model, loss)`` of one of ``NETWORKS``."""
    if name == "linear":
        return models.MLP(tuple(config.mlp_widths), act="identity"), "mse"
    if name == "mlp":
        return models.MLP(tuple(config.mlp_widths), act="relu"), "cross_entropy"
    if name == "vgg":
        return models.VGG(tuple(config.vgg_channels), tuple(config.vgg_dense)), "cross_entropy"
    if name == "vit":
        return models.ViT(config.vit_dim, config.vit_depth, config.vit_heads, config.vit_patch,
                          config.vit_mlp), "cross_entropy"
    return models.make("cnn", config.cnn_widths), "cross_entropy"


def penultimate(name: str, config) -> str:
    """The kernel ``W_{L-1}`` feeding the output layer (for the ViT: the last block's MLP output)."""
    return {"linear": f"Dense_{len(config.mlp_widths) - 1}/kernel", "mlp": f"Dense_{len(config.mlp_widths) - 1}/kernel",
            "cnn": "Dense_0/kernel", "vgg": f"Dense_{len(config.vgg_dense) - 1}/kernel",
            "vit": f"block_{config.vit_depth - 1}/mlp_out/kernel"}[name]


def rank_over_time(sv: np.ndarray, rtol: float, top_k: int, energy_fraction: float = 0.9) -> dict:
    """``sv: (seeds, T, k)`` (descending) -> per step the medians over seeds of the numerical rank (values
    above ``rtol`` x the largest), the energy rank (the fewest ``i`` with ``sum_{j <= i} s_j^2 >=
    energy_fraction * sum_j s_j^2``) and the top-``k`` share of ``sum_j s_j^2``."""
    sv = np.asarray(sv, np.float64)
    largest = np.maximum(sv[..., :1], np.finfo(np.float64).tiny)
    rank = np.sum(sv > rtol * largest, axis=-1)
    energy = np.maximum(np.sum(sv ** 2, axis=-1), np.finfo(np.float64).tiny)
    share = np.sum(sv[..., :top_k] ** 2, axis=-1) / energy
    cumulative = np.cumsum(sv ** 2, axis=-1) / energy[..., None]
    energy_rank = 1 + np.sum(cumulative < energy_fraction * (1 - 1e-12), axis=-1)
    return {"numerical_rank": np.median(rank, axis=0).tolist(), "energy_rank": np.median(energy_rank, axis=0).tolist(),
            "top_share": np.median(share, axis=0).tolist()}


def run(config, ctx) -> dict:
    splits = {d: data.load_splits(d, config.train_size) for d in dict.fromkeys(config.datasets)}
    out, spectra, steps = {}, {}, None
    for name, dataset, lr in zip(config.networks, config.datasets, config.lrs):
        model, loss = network(name, config)
        batch = config.batch_size or len(splits[dataset]["train"]["y"])
        tr = classification.train(model, ".*=dense()", splits[dataset], optimizer_name=config.optimizer, lr=lr,
                                  batch_size=batch, steps=config.steps, seeds=config.seeds,
                                  eval_every=config.eval_every, seed=config.seed, loss=loss,
                                  checkpoint=ctx.checkpoints(name, network=name), desc=name)
        sv = classification.update_spectra(tr)
        layer = penultimate(name, config)
        over_time = rank_over_time(sv[layer][:, 1:], config.rank_rtol, config.top_k, config.energy_fraction)
        out[name] = {"dataset": dataset, "loss": loss, "lr": lr, "batch_size": batch,
                     "test_accuracy_median": float(np.median(tr.evaluation[:, -1])),
                     "update_ranks": classification.update_ranks(sv),
                     "penultimate": {"layer": layer, "full_rank": int(sv[layer].shape[-1]),
                                     "steps": [int(s) for s in tr.step[1:]], **over_time}}
        spectra[name], steps = sv, tr.step
    ctx.save_arrays(step=steps, **{f"{n}/{k}": v for n, s in spectra.items() for k, v in s.items()})
    plot_penultimate(steps, spectra, out, config, ctx.figure("penultimate_update_spectra"))
    plot(steps, spectra, out, config, ctx.figure("update_spectra_over_training"))
    largest = {n: max(r["effective_rank_median"] / r["full_rank"] for r in row["update_ranks"].values())
               for n, row in out.items()}
    return {"networks": out, "max_effective_rank_fraction": largest, "rank_rtol": config.rank_rtol,
            "top_k": config.top_k, "energy_fraction": config.energy_fraction,
            "penultimate_numerical_rank": {n: row["penultimate"]["numerical_rank"][-1] for n, row in out.items()},
            "penultimate_energy_rank": {n: row["penultimate"]["energy_rank"][-1] for n, row in out.items()},
            "penultimate_top_share": {n: row["penultimate"]["top_share"][-1] for n, row in out.items()}}


def plot_penultimate(steps, spectra, out, config, path):
    """The talk's form: per network, the singular values of ``Delta W_{L-1}(t)`` over iterations (seed 0, top
    20), and below, its numerical rank and top-k share over time."""
    plt = pyplot()
    names = list(spectra)
    fig, axes = plt.subplots(2, len(names), figsize=(3.8 * len(names), 6.2), squeeze=False)
    for c, name in enumerate(names):
        row = out[name]
        pen = row["penultimate"]
        sv = spectra[name][pen["layer"]]
        ax = axes[0, c]
        ax.semilogy(steps[1:], sv[0, 1:, :20], lw=0.9)
        ax.set_title(f"{name} ({row['loss']}), {row['dataset']}\n{pen['layer']}, full rank {pen['full_rank']}",
                     fontsize=8)
        ax.set_xlabel("iteration", fontsize=8)
        ax.set_ylabel(r"singular values of $\Delta W_{L-1}(t)$", fontsize=8)
        ax2 = axes[1, c]
        ax2.plot(pen["steps"], pen["numerical_rank"], color="C0", label=f"numerical rank (rtol {config.rank_rtol:g})")
        ax2.plot(pen["steps"], pen["energy_rank"], color="C0", ls="--",
                 label=f"energy rank ({config.energy_fraction:g} of $||\\Delta W||_F^2$)")
        ax2.legend(fontsize=7, loc="center right")
        ax2.set_ylabel("rank (solid: numerical, dashed: energy)", fontsize=8, color="C0")
        ax2.set_xlabel("iteration", fontsize=8)
        ax2.set_ylim(0, pen["full_rank"] * 1.05)
        share = ax2.twinx()
        share.plot(pen["steps"], pen["top_share"], color="C3")
        share.set_ylim(0, 1.02)
        share.set_ylabel(f"top-{config.top_k} share of $||\\Delta W||_F^2$", fontsize=8, color="C3")
    batch = "full batch (GD)" if config.batch_size == 0 else f"batch {config.batch_size}"
    gap = (", ", " ") if len(names) > 2 else ("\n", "\n")   # one or two panels: too narrow for one line
    fig.suptitle(f"penultimate-layer updates{gap[0]}{config.optimizer}, {batch}, {config.steps} steps{gap[1]}"
                 f"(medians over {config.seeds} seed{'s' if config.seeds > 1 else ''} below)", fontsize=10)
    save_figure(fig, path)


MAX_LAYERS_SHOWN = 6   # per network in the all-layers figure: its last ones (the ViT has 10 kernels)


def plot(steps, spectra, out, config, path):
    """One row per network, one column per layer (its last ``MAX_LAYERS_SHOWN``): the top 20 singular values of
    the update (seed 0)."""
    plt = pyplot()
    shown = {n: list(layers.items())[-MAX_LAYERS_SHOWN:] for n, layers in spectra.items()}
    cols = max(len(s) for s in shown.values())
    fig, axes = plt.subplots(len(spectra), cols, figsize=(3.6 * cols, 2.9 * len(spectra)), squeeze=False)
    for r, (name, layers) in enumerate(shown.items()):
        for c, ax in enumerate(axes[r]):
            if c >= len(layers):
                ax.axis("off")
                continue
            layer, sv = layers[c]
            ax.semilogy(steps[1:], sv[0, 1:, :20], lw=0.8)
            rank = out[name]["update_ranks"][layer]
            ax.set_title(f"{name}: {layer}\neff. rank {rank['effective_rank_median']:.1f} of {rank['full_rank']}",
                         fontsize=8)
            ax.set_xlabel("step", fontsize=8)
    fig.suptitle(f"singular values of W(t) - W(0), {config.optimizer}", fontsize=10)
    save_figure(fig, path)
