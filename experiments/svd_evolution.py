"""Experiment: the evolution of the SVD of a deep linear network ``W = F_1 ... F_L`` trained on
``1/2 ||X W - Y||_F^2`` (row convention: ``X (n, d)``, ``Y = X W* (n, d)``), for a low-rank target ``W*``
(rank ``rank``) and a wide (full-rank) one, with plain GD and with heavy-ball momentum (0.9).

Recorded every ``record_every`` steps: the top ``k`` singular values of ``W(t)`` and, for each of them,
``|cos|`` of the angle between its left (right) singular vector and the same-index vector of ``W(0)``.
Init: small Gaussian factors (``eps`` times ``N(0, 1/fan_in)``), so ``W(0)`` has distinct singular values
and well-defined vectors. Metrics per run: final loss, the step at which each of the top ``k`` singular
values first reaches 90% of its final value (incremental learning: they are learned one after another),
the numerical rank of ``W`` at the end, and the final ``|cos|`` values.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import analysis, dynamics, param, tasks
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.schema import Choice, Float, Int, Rule, Schema, Seq

TARGETS = ("lowrank", "wide")
OPTIMIZERS = ("gd", "momentum")

DTYPE = "float64"   # the run context enables 64-bit types for this experiment

SCHEMA = Schema(
    d=Int(min=2), samples=Int(min=1), depth=Int(min=1), rank=Int(min=1), targets=Seq(Choice(*TARGETS)),
    optimizers=Seq(Choice(*OPTIMIZERS)), eps=Float(gt=0), lr=Float(gt=0), steps=Int(min=1),
    record_every=Int(min=1), top=Int(min=1), seed=Int(min=0),
    checks=[Rule(("rank", "d"), lambda r, d: r <= d, "rank must be <= d"),
            Rule(("top", "d"), lambda k, d: k <= d, "top must be <= d"),
            Rule(("record_every", "steps"), lambda r, s: r <= s, "record_every must be <= steps")],
)


def run(config, ctx) -> dict:
    kx, kt, kw = jax.random.split(jax.random.key(config.seed), 3)
    x = jax.random.normal(kx, (config.samples, config.d), jnp.float64)
    p = param.deep(config.depth, init="gaussian", scale=config.eps)
    theta = p.init(kw, (config.d, config.d), jnp.float64)
    rows, recs = {}, {}
    for kind in config.targets:
        w_star = tasks.graded_target(kind, kt, config.d, config.rank)
        y = x @ w_star

        def loss(th, dat):
            return 0.5 * jnp.sum((dat["x"] @ p.materialize(th) - dat["y"]) ** 2)

        for opt in config.optimizers:
            tx = optax.sgd(config.lr, momentum=0.9 if opt == "momentum" else None)
            res = dynamics.run(loss, theta, tx, config.steps, data={"x": x, "y": y}, record_every=config.record_every,
                               recorders={"svd": analysis.SVDTracker(p, config.top)}, chunk_size=config.record_every * 10,
                               desc=f"{kind} {opt}")
            sv, final = res.records["svd/sv"], res.records["svd/sv"][-1]
            reach = [int(res.records["step"][np.argmax(sv[:, i] >= 0.9 * final[i])]) for i in range(config.top)]
            s_all = np.linalg.svd(np.asarray(p.materialize(res.params)), compute_uv=False)
            rows[f"{kind}/{opt}"] = {"final_loss": float(res.scalars["loss"][-1]),
                                     "initial_loss": float(res.scalars["loss"][0]), "steps_to_90pct": reach,
                                     "numerical_rank": int(np.sum(s_all > 1e-3 * s_all[0])),
                                     "final_cos_u": res.records["svd/cos_u"][-1].tolist(),
                                     "final_cos_v": res.records["svd/cos_v"][-1].tolist()}
            recs[f"{kind}/{opt}"] = res.records
    ctx.save_arrays(**{f"{k}/{n}": v for k, r in recs.items() for n, v in r.items()})
    plot(recs, config, ctx.figure("svd_evolution"))
    return {"runs": rows}


def plot(recs, config, path):
    plt = pyplot()
    fig, axes = plt.subplots(2, len(recs), figsize=(4.2 * len(recs), 6.4), squeeze=False)
    for c, (name, rec) in enumerate(recs.items()):
        step = rec["step"]
        axes[0, c].plot(step, rec["svd/sv"], lw=1)
        axes[0, c].set_title(f"{name}: top {config.top} singular values", fontsize=9)
        for i in range(config.top):
            line, = axes[1, c].plot(step, rec["svd/cos_u"][:, i], lw=1, label=f"u_{i + 1}" if i < 5 else None)
            axes[1, c].plot(step, rec["svd/cos_v"][:, i], lw=1, ls="--", color=line.get_color())
        axes[1, c].set_ylim(-0.02, 1.02)
        axes[1, c].set_title("|cos| vs W(0)'s vectors (solid u, dashed v)", fontsize=9)
        axes[1, c].set_xlabel("step")
    axes[1, 0].legend(fontsize=7)
    fig.suptitle(f"deep linear network L={config.depth}, d={config.d}, n={config.samples}, lr={config.lr:g}",
                 fontsize=10)
    save_figure(fig, path)
