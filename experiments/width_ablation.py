"""Experiment: ablation of the outer-factor rate gamma, and compressed width 2 r^ against a randomly
initialised narrow network of the same width (Yaras et al. ICML 2024, iteration/time comparison).

Every setting runs ``seeds`` seeds as one vmapped program (seed = original init, hence compressed init;
data shared). Reported per setting: iterations to ``tol`` (train loss) per seed, ms per step of the
batched program, the time to ``tol`` (``iterations * ms``), and the success rate within ``steps``.
"""
from __future__ import annotations

import jax
import numpy as np

from lrjax import tasks
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.process import DTYPES
from lrjax.harness.schema import Choice, Float, Int, Rule, Schema, Seq
from lrjax.studies import matrix_recovery, recipe

SCHEMA = Schema(
    d=Int(min=2), rank=Int(min=1), fraction=Float(gt=0, le=1), depth=Int(min=2), eps=Float(gt=0), eta=Float(gt=0),
    gamma=Float(ge=0), gammas=Seq(Float(ge=0)), gammas_zero_at=Float(gt=0, resume="any"), rhats=Seq(Int(min=1)),
    seeds=Int(min=1), steps=Int(min=1, resume="grow"), tol=Float(gt=0, resume="any"), chunk_size=Int(min=1),
    seed=Int(min=0), dtype=Choice(*DTYPES),
    checks=[Rule(("rank", "d"), lambda r, d: 2 * r <= d, "the compressed width 2 rank must be <= d"),
           Rule(("rhats", "d"), lambda rh, d: 2 * max(rh) <= d, "every compressed width 2 rhat must be <= d")],
)


def summarize(f: recipe.Training) -> dict:
    it = np.asarray(f.steps_to_tol)
    ok = it >= 0
    return {"label": f.label, "num_params": f.num_params, "ms_per_step_batch": f.ms_per_step,
            "iterations": it.tolist(), "success_rate": float(ok.mean()),
            "median_iterations": float(np.median(it[ok])) if ok.any() else None,
            "median_time_s": float(np.median(it[ok]) * f.ms_per_step / 1e3) if ok.any() else None,
            "final_test_error_median": float(np.median(f.evaluation[:, -1]))}


def run(config, ctx) -> dict:
    dtype = ctx.dtype
    task = tasks.make_task("completion", jax.random.key(config.seed), config.d, config.rank,
                           fraction=config.fraction, dtype=dtype)
    keys = jax.random.split(jax.random.key(config.seed + 1), config.seeds)

    def train(m, section):
        return summarize(matrix_recovery.fit(m, task, config.eta, config.steps, tol=config.tol,
                                      chunk_size=config.chunk_size, batched=True,
                                      checkpoint=ctx.checkpoints(f"{section} {m.label}")))

    def orig(k):
        return matrix_recovery.original(task, config.depth, config.eps, k)

    gamma_rows = [train(matrix_recovery.batched(keys, lambda k, g=g: matrix_recovery.compressed(task, orig(k), config.rank, float(g))), "gamma")
                  for g in config.gammas]
    width_rows = []
    for rh in config.rhats:
        comp = train(matrix_recovery.batched(keys, lambda k, rh=rh: matrix_recovery.compressed(task, orig(k), rh, config.gamma)), "width")
        narrow = train(matrix_recovery.batched(keys, lambda k, rh=rh: matrix_recovery.narrow(task, config.depth, config.eps, k, 2 * rh)), "width")
        width_rows.append({"rhat": rh, "compressed": comp, "narrow": narrow})
    plot(config, gamma_rows, width_rows, ctx.figure("gamma_and_width"))
    return {"gamma_ablation": gamma_rows, "width_comparison": width_rows}


def plot(config, gamma_rows, width_rows, path):
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for row, g in zip(gamma_rows, config.gammas):
        it = np.asarray(row["iterations"], float)
        it[it < 0] = np.nan
        a.scatter([g if g > 0 else config.gammas_zero_at] * len(it), np.where(np.isnan(it), config.steps, it),
                  marker="o", c=["C0" if v == v else "C3" for v in it])
    a.set_xscale("log")
    a.set_xlabel(f"gamma (gamma = 0 drawn at {config.gammas_zero_at:g})")
    a.set_ylabel(f"iterations to train loss {config.tol:g}")
    a.set_title(f"gamma ablation, width 2r*={2 * config.rank}, {config.seeds} seeds (red: not reached)")
    for key, color in (("compressed", "C0"), ("narrow", "C1")):
        for r in width_rows:
            it = np.asarray(r[key]["iterations"], float)
            b.scatter([2 * r["rhat"]] * len(it), np.where(it < 0, config.steps, it), c=color, s=14,
                      marker="o" if key == "compressed" else "s")
        b.plot([2 * r["rhat"] for r in width_rows],
               [r[key]["median_iterations"] or np.nan for r in width_rows], color=color,
               label=f"{key} (gamma={config.gamma:g})" if key == "compressed" else "narrow, random init")
    b.axhline(config.steps, color="k", ls=":", lw=0.8)
    b.set_xlabel("width 2 r^")
    b.set_ylabel("iterations to tolerance (dotted: budget)")
    b.set_title(f"completion d={config.d}, r*={config.rank}, p={config.fraction}")
    b.legend(fontsize=8)
    save_figure(fig, path)
