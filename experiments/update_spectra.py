"""Experiment: the updates of trained networks are low rank (the observation behind LoRA and the
compressible-dynamics papers): singular values of every layer's update ``W_l(t) - W_l(0)`` over training,
for a deep linear network (MSE against one-hot targets), an MLP (cross-entropy) and a small CNN
(cross-entropy) on the same dataset, all trained by the same optimizer from their default Flax inits.

Metrics per network: test accuracy (median over seeds) and, per layer, the numerical rank (singular
values above 1e-3 of the largest) and effective rank of the final update against the layer's full rank.
"""
from __future__ import annotations

import numpy as np

from lrjax import data, models
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.schema import Choice, Float, Int, Schema, Seq, data_checks
from lrjax.studies import classification

NETWORKS = ("linear", "mlp", "cnn")

SCHEMA = Schema(
    dataset=Choice(*data.available()), networks=Seq(Choice(*NETWORKS), distinct=True), mlp_widths=Seq(Int(min=1)),
    cnn_widths=Seq(Int(min=1), min_len=2), optimizer=Choice(*classification.OPTIMIZERS),
    lrs=Seq(Float(gt=0), length=lambda c: len(c.networks)), batch_size=Int(min=1), steps=Int(min=1, resume="grow"),
    seeds=Int(min=1), eval_every=Int(min=1), train_size=Int(min=0), seed=Int(min=0),
    checkpoint_every=Int(min=0, resume="any"),
    checks=data_checks(),
)


def network(name: str, config):
    """``(model, loss)`` of one of ``NETWORKS``."""
    if name == "linear":
        return models.MLP(tuple(config.mlp_widths), act="identity"), "mse"
    if name == "mlp":
        return models.MLP(tuple(config.mlp_widths), act="relu"), "cross_entropy"
    return models.make("cnn", config.cnn_widths), "cross_entropy"


def run(config, ctx) -> dict:
    splits = data.load_splits(config.dataset, config.train_size)
    out, spectra, steps = {}, {}, None
    for name, lr in zip(config.networks, config.lrs):
        model, loss = network(name, config)
        tr = classification.train(model, ".*=dense()", splits, optimizer_name=config.optimizer, lr=lr,
                              batch_size=config.batch_size, steps=config.steps, seeds=config.seeds,
                              eval_every=config.eval_every, seed=config.seed, loss=loss,
                              checkpoint=ctx.checkpoints(name, network=name), desc=name)
        out[name] = {"loss": loss, "lr": lr, "test_accuracy_median": float(np.median(tr.evaluation[:, -1])),
                     "update_ranks": classification.update_ranks(classification.update_spectra(tr))}
        spectra[name], steps = classification.update_spectra(tr), tr.step
    ctx.save_arrays(step=steps,
             **{f"{n}/{k}": v for n, s in spectra.items() for k, v in s.items()})
    plot(steps, spectra, out, config, ctx.figure("update_spectra_over_training"))
    largest = {n: max(r["effective_rank_median"] / r["full_rank"] for r in row["update_ranks"].values())
               for n, row in out.items()}
    return {"networks": out, "max_effective_rank_fraction": largest}


def plot(steps, spectra, out, config, path):
    """One row per network, one column per layer: the top 20 singular values of the update (seed 0)."""
    plt = pyplot()
    cols = max(len(s) for s in spectra.values())
    fig, axes = plt.subplots(len(spectra), cols, figsize=(3.6 * cols, 2.9 * len(spectra)), squeeze=False)
    for r, (name, layers) in enumerate(spectra.items()):
        for c, ax in enumerate(axes[r]):
            if c >= len(layers):
                ax.axis("off")
                continue
            layer, sv = list(layers.items())[c]
            ax.semilogy(steps[1:], sv[0, 1:, :20], lw=0.8)
            rank = out[name]["update_ranks"][layer]
            ax.set_title(f"{name}: {layer}\neff. rank {rank['effective_rank_median']:.1f} of {rank['full_rank']}",
                         fontsize=8)
            ax.set_xlabel("step", fontsize=8)
    fig.suptitle(f"singular values of W(t) - W(0), {config.dataset}, {config.optimizer}", fontsize=10)
    save_figure(fig, path)
