"""Experiment: depth L = 2 vs L = 3 on matrix completion over network widths (Yaras et al. ICML 2024).

For each depth and width ``w`` a ``deep(L, width=w, scale=eps)`` network (eps-scaled orthogonal init)
is trained with plain GD, ``seeds`` seeds vmapped; the final recovery error (unobserved entries) is
reported. Paper (d = 100, r* = 10, p = 0.3): the L = 2 error grows with width to ~1e-3, L = 3 stays ~0.
"""
from __future__ import annotations

import jax
import numpy as np

from lrjax import tasks
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.process import DTYPES
from lrjax.harness.schema import Choice, Float, Int, Rule, Schema, Seq
from lrjax.studies import matrix_recovery

SCHEMA = Schema(
    d=Int(min=1), rank=Int(min=1), fraction=Float(gt=0, le=1), depths=Seq(Int(min=1)),
    etas=Seq(Float(gt=0), length=lambda c: len(c.depths)), widths=Seq(Int(min=1)), eps=Float(gt=0),
    seeds=Int(min=1), steps=Int(min=1, resume="grow"), chunk_size=Int(min=1), seed=Int(min=0),
    dtype=Choice(*DTYPES),
    checks=[Rule(("rank", "d"), lambda r, d: r <= d, "the target's rank must be <= d")],
)


def run(config, ctx) -> dict:
    dtype = ctx.dtype
    task = tasks.make_task("completion", jax.random.key(config.seed), config.d, config.rank,
                           fraction=config.fraction, dtype=dtype)
    keys = jax.random.split(jax.random.key(config.seed + 1), config.seeds)
    rows = []
    for depth, eta in zip(config.depths, config.etas):
        for w in config.widths:
            m = matrix_recovery.batched(keys, lambda k, w=w, depth=depth: matrix_recovery.narrow(task, depth, config.eps, k, w))
            f = matrix_recovery.fit(m, task, eta, config.steps, chunk_size=config.chunk_size, batched=True,
                             checkpoint=ctx.checkpoints(f"L{depth} {m.label}"))
            err = f.evaluation[:, -1]
            rows.append({"depth": depth, "width": w, "eta": eta, "test_error_median": float(np.median(err)),
                         "test_error": err.tolist(), "train_loss_median": float(np.median(f.loss[:, -1]))})
    plot(config, rows, ctx.figure("depth_effect"))
    summary = {f"L{d}_error_at_max_width": next(r["test_error_median"] for r in rows
                                                if r["depth"] == d and r["width"] == max(config.widths))
               for d in config.depths}
    return {"rows": rows, **summary}


def plot(config, rows, path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for depth in config.depths:
        rs = [r for r in rows if r["depth"] == depth]
        ax.plot([r["width"] for r in rs], [max(r["test_error_median"], 1e-32) for r in rs], "o-", label=f"L = {depth}")
        for r in rs:
            ax.scatter([r["width"]] * len(r["test_error"]), np.maximum(r["test_error"], 1e-32), s=6, c="gray")
    ax.set_yscale("log")
    ax.set_xlabel("width")
    ax.set_ylabel(f"recovery error after {config.steps} steps")
    ax.set_title(f"completion d={config.d}, r*={config.rank}, p={config.fraction}, eps={config.eps:g}")
    ax.legend()
    save_figure(fig, path)
