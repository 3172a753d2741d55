"""Experiment: training deep DLoR, wide low-rank and dense networks from scratch on a fixed budget
(DLoR paper, Fig. 4 and 6).

Target: a random dense tanh teacher ``R^2 -> R^2`` (``teacher_width`` hidden units, two hidden layers).
Students (tanh): *deep* ``(2, w, ..., w, 2)`` with ``dlor(rank)`` hidden-to-hidden layers; *wide*: ``branches``
parallel ``(2, w, w, 2)`` networks with ``lowrank(rank)`` hidden layers, outputs summed; *dense*: a dense
MLP whose width is chosen so its parameter count matches the deep network's. Adam, full batch (one step =
one epoch), ``seeds`` seeds per architecture in one vmapped program. Reported: train MSE after each budget,
epochs to ``threshold`` (and to each of ``extra_thresholds``), success rate within the run, test MSE on
held-out points.
"""
from __future__ import annotations

import jax
import numpy as np

from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.schema import Float, Int, Rule, Schema, Seq
from lrjax.models import param_mlp
from lrjax.studies import regression

DTYPE = "float64"   # the run context enables 64-bit types for this experiment

SCHEMA = Schema(
    teacher_width=Int(min=1), teacher_gain=Float(gt=0), width=Int(min=1), deep_hidden=Int(min=1),
    branches=Int(min=1), rank=Int(min=1), train_points=Int(min=1), test_points=Int(min=1), epochs=Int(min=1),
    budgets=Seq(Int(min=1)), threshold=Float(gt=0, resume="any"), extra_thresholds=Seq(Float(gt=0), min_len=0,
                                                                                        resume="any"),
    lr=Float(gt=0), seeds=Int(min=1), record_every=Int(min=1), seed=Int(min=0),
    checks=[Rule(("rank", "width"), lambda r, w: r <= w, "rank must be <= width"),
           Rule(("record_every", "epochs"), lambda r, e: r <= e, "record_every must be <= epochs")],
)


def matched_dense_width(params: int, depth: int) -> int:
    """Width ``w`` of a dense ``(2, w x depth, 2)`` MLP whose parameter count is closest to ``params``."""
    guess = int((params / max(depth - 1, 1)) ** 0.5) if depth > 1 else params // 5
    counts = {w: param_mlp.mlp((2,) + (w,) * depth + (2,)).num_params() for w in range(max(1, guess - 12), guess + 13)}
    return min(counts, key=lambda w: abs(counts[w] - params))


def architectures(config) -> dict:
    w = config.width
    deep = param_mlp.mlp((2,) + (w,) * config.deep_hidden + (2,), f"dlor({config.rank})", "tanh",
                    first="dense()", last="dense()")
    wide = param_mlp.Wide(param_mlp.mlp((2, w, w, 2), f"lowrank({config.rank})", "tanh", first="dense()", last="dense()"),
                     config.branches)
    dense = param_mlp.mlp((2,) + (matched_dense_width(deep.num_params(), 2),) * 2 + (2,), "dense()", "tanh")
    return {"deep DLoR": deep, "wide low-rank": wide, "dense (param-matched)": dense}


def run(config, ctx) -> dict:
    dtype = ctx.dtype
    kt, kx, kxt = jax.random.split(jax.random.key(config.seed), 3)
    teacher = param_mlp.mlp((2, config.teacher_width, config.teacher_width, 2), "dense()", "tanh")
    t_theta = teacher.init(kt, dtype)
    t_theta = jax.tree.map(lambda a: a * config.teacher_gain, t_theta)
    x, x_test = regression.uniform_inputs(kx, config.train_points, 2), regression.uniform_inputs(kxt, config.test_points, 2)
    data = {"x": x, "y": teacher.apply(t_theta, x), "x_test": x_test, "y_test": teacher.apply(t_theta, x_test)}
    target_var = float(np.var(np.asarray(data["y"])))
    results, curves = {}, {}
    for name, net in architectures(config).items():
        tr = regression.train(net, data, config.epochs, seeds=config.seeds, lr=config.lr, key=config.seed + 1,
                              record_every=config.record_every, desc=name)
        epochs = tr.steps_to(config.threshold, "loss")
        row = {"num_params": net.num_params(), "epochs_to_threshold": epochs.tolist(),
               "success_rate": float(np.mean(epochs >= 0)),
               "median_epochs_to_threshold": float(np.median(epochs[epochs >= 0])) if (epochs >= 0).any() else None,
               "final_test_mse_median": float(np.median(tr.evaluation[:, -1])), "seconds": tr.seconds}
        for level in config.extra_thresholds:  # a stricter level separates architectures that all reach 1e-3
            ep = tr.steps_to(level, "loss")
            row[f"success_rate_at_{level:g}"] = float(np.mean(ep >= 0))
            row[f"median_epochs_to_{level:g}"] = float(np.median(ep[ep >= 0])) if (ep >= 0).any() else None
        for b in config.budgets:
            if b <= config.epochs:
                row[f"train_mse_at_{b}"] = tr.loss[:, b - 1].tolist()
                row[f"train_mse_at_{b}_median"] = float(np.median(tr.loss[:, b - 1]))
        results[name], curves[name] = row, tr
    plot(config, results, curves, ctx.figure("fixed_budget_training"))
    return {"target_variance": target_var, "threshold": config.threshold, "architectures": results}


def plot(config, results, curves, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(19, 4))
    names = list(results)
    for name, tr in curves.items():
        med = np.median(tr.loss, axis=0)
        line, = axes[0].loglog(np.arange(1, len(med) + 1), med, label=f"{name} ({results[name]['num_params']} params)")
        axes[0].fill_between(np.arange(1, len(med) + 1), tr.loss.min(0), tr.loss.max(0), color=line.get_color(), alpha=0.15)
        axes[3].semilogy(tr.step, np.median(tr.evaluation, axis=0), color=line.get_color(), label=name)
    axes[0].axhline(config.threshold, color="k", ls=":", lw=0.8)
    for b in config.budgets:
        axes[0].axvline(b, color="gray", ls="--", lw=0.6)
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel(f"train MSE (median, band: {config.seeds} seeds)")
    axes[0].legend(fontsize=7)
    for i, b in enumerate(b for b in config.budgets if b <= config.epochs):
        for j, name in enumerate(names):
            v = results[name][f"train_mse_at_{b}"]
            axes[1].scatter(np.full(len(v), j + 0.15 * (2 * i - 1)), v, s=12, c=f"C{i}",
                            label=f"{b} epochs" if j == 0 else None)
    axes[1].set_yscale("log")
    axes[1].set_xticks(range(len(names)), [n.split(" (")[0] for n in names], fontsize=8)
    axes[1].axhline(config.threshold, color="k", ls=":", lw=0.8)
    axes[1].set_title("train MSE after each budget (per seed)")
    axes[1].legend(fontsize=8)
    rates = [results[n]["success_rate"] for n in names]
    med = [results[n]["median_epochs_to_threshold"] or np.nan for n in names]
    axes[2].bar(range(len(names)), rates, color=[f"C{j}" for j in range(len(names))])
    for j, m in enumerate(med):
        axes[2].text(j, rates[j] + 0.02, f"median {m:.0f} ep" if m == m else "never", ha="center", fontsize=8)
    axes[2].set_xticks(range(len(names)), [n.split(" (")[0] for n in names], fontsize=8)
    axes[2].set_ylim(0, 1.15)
    axes[2].set_title(f"success rate: MSE <= {config.threshold:g} within {config.epochs} epochs")
    axes[3].set_xlabel("epoch")
    axes[3].set_title("test MSE (median)")
    axes[3].legend(fontsize=7)
    save_figure(fig, path, dpi=100)
