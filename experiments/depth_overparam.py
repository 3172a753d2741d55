"""Experiment: why depth in linear layers. A hybrid network (an MLP, nonlinear between layers) whose every
kernel is overparameterized by depth, ``deep(L)`` (``W = F_1 ... F_L``, eps-scaled orthogonal factors), for
each ``L`` in ``depths``; at test time each kernel is collapsed to one matrix (``materialize``), so every
``L`` is the same function class. ``seeds`` seeds per depth run as one vmapped program.

Metrics per depth: final test accuracy (median, min, max over seeds) and the effective rank of each
collapsed kernel (median over seeds), against the dense baseline ``L = 1``.
"""
from __future__ import annotations

import jax
import numpy as np

from lrjax import analysis, data, models
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.schema import Choice, Float, Int, Schema, Seq, data_checks
from lrjax.studies import classification

SCHEMA = Schema(
    dataset=Choice(*data.available()), widths=Seq(Int(min=1)), depths=Seq(Int(min=1, max=8), distinct=True),
    scale=Float(gt=0), optimizer=Choice(*classification.OPTIMIZERS), lr=Float(gt=0), batch_size=Int(min=1),
    steps=Int(min=1, resume="grow"), seeds=Int(min=1), eval_every=Int(min=1), train_size=Int(min=0),
    seed=Int(min=0), checkpoint_every=Int(min=0, resume="any"),
    checks=data_checks(),
)


def run(config, ctx) -> dict:
    splits = data.load_splits(config.dataset, config.train_size)
    model = models.MLP(tuple(config.widths), act="relu")
    rows, curves = {}, {}
    for depth in config.depths:
        rules = f".*kernel=deep({depth}, scale={config.scale!r})"
        tr = classification.train(model, rules, splits, optimizer_name=config.optimizer, lr=config.lr,
                              batch_size=config.batch_size, steps=config.steps, seeds=config.seeds,
                              eval_every=config.eval_every, seed=config.seed,
                              checkpoint=ctx.checkpoints(f"L{depth}", depth=depth), desc=f"L={depth}")
        final = tr.evaluation[:, -1]
        ranks = {name: float(np.median(jax.vmap(lambda w: analysis.effective_rank(analysis.singular_values(w)))(w)))
                 for name, w in classification.final_kernels(tr).items()}
        rows[str(depth)] = {"test_accuracy": final.tolist(), "test_accuracy_median": float(np.median(final)),
                            "test_accuracy_min": float(final.min()), "test_accuracy_max": float(final.max()),
                            "effective_rank_of_collapsed_kernels": ranks}
        curves[depth] = (tr.step, tr.evaluation)
    plot(rows, curves, config, ctx.figure("accuracy_vs_depth"))
    best = max(rows, key=lambda d: rows[d]["test_accuracy_median"])
    return {"depths": rows, "best_depth": int(best),
            "gain_of_best_over_L1": rows[best]["test_accuracy_median"] - rows[str(config.depths[0])]["test_accuracy_median"]}


def plot(rows, curves, config, path):
    plt = pyplot()
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 3.8))
    depths = [int(d) for d in rows]
    for d in depths:
        acc = rows[str(d)]["test_accuracy"]
        a.scatter([d] * len(acc), acc, s=12, c="gray")
    a.plot(depths, [rows[str(d)]["test_accuracy_median"] for d in depths], "o-")
    a.set_xticks(depths)
    a.set_xlabel("depth L of every kernel")
    a.set_ylabel("final test accuracy")
    a.set_title(f"{config.dataset}, MLP {tuple(config.widths)}, {config.seeds} seeds")
    for d, (step, acc) in curves.items():
        b.plot(step, np.median(acc, axis=0), label=f"L = {d}")
    b.set_xlabel("step")
    b.set_title("test accuracy (median over seeds)")
    b.legend(fontsize=8)
    names = list(rows[str(depths[0])]["effective_rank_of_collapsed_kernels"])
    for name in names:
        c.plot(depths, [rows[str(d)]["effective_rank_of_collapsed_kernels"][name] for d in depths], "o-", label=name)
    c.set_xticks(depths)
    c.set_xlabel("depth L")
    c.set_title("effective rank of the collapsed kernels")
    c.legend(fontsize=8)
    save_figure(fig, path)
