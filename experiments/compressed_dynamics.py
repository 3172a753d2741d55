"""Experiment: compressed vs original deep factorization on a recovery task (Yaras et al. ICML 2024 Fig. 5-6,
Kwon et al. AISTATS 2024 spectral init), side by side in one run.

Each method (``lrjax.studies.matrix_recovery``) trains with plain GD from the same original init and data; the wall-time
axis is ``step * ms_per_step`` of that method's compiled run (compile excluded). The original run is also
timed in the papers' own pattern (Python loop over jitted ``fori_loop`` chunks of 100 steps) for
``authors_steps`` steps. Equivalence of trajectories: ``pca_entries`` fixed random entries of ``W(t)``
recorded every ``record_every`` steps, projected on the original run's two principal components;
``pca_path_distance_relative``: how far each run strays from the original's path there, over its extent.
``gamma0_unreachable_share``: the share of ``||Phi||_F^2`` that the compressed network cannot represent
while its outer factors stay at their init (gamma = 0; ``unreachable_share``): where the observed entries
``Omega * Phi`` are far from low rank, the subspaces taken from the gradient at init miss the target and
compression fails.
"""
from __future__ import annotations

import jax
import numpy as np

from lrjax import analysis, tasks
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.process import DTYPES
from lrjax.harness.schema import Choice, Float, Int, Names, Rule, Schema, Seq
from lrjax.param import CompressedDeep
from lrjax.studies import matrix_recovery

SCHEMA = Schema(
    task=Choice("factorization", "completion", "sensing"), d=Int(min=2), rank=Int(min=1), depth=Int(min=2),
    eps=Float(gt=0), eta=Float(gt=0), fraction=Float(gt=0, le=1), measurements=Int(min=0),
    methods=Names("original", "compressed", "spectral"), gammas=Seq(Float(ge=0)),
    steps=Int(min=1, resume="grow"), tol=Float(gt=0, optional=True, resume="any"), reach=Float(gt=0, resume="any"),
    chunk_size=Int(min=1), record_every=Int(min=1), pca_entries=Int(min=2), authors_steps=Int(min=0, resume="any"),
    seed=Int(min=0), dtype=Choice(*DTYPES),
    checks=[Rule(("rank", "d"), lambda r, d: 2 * r <= d, "the compressed width 2 rank must be <= d"),
           Rule(("record_every", "steps"), lambda r, s: r <= s, "record_every must be <= steps")],
)


def build_methods(config, task):
    """The config's ``methods`` (comma-separated: original, compressed, spectral) as ``Method`` s."""
    orig = matrix_recovery.original(task, config.depth, config.eps, jax.random.key(config.seed + 1))
    out = []
    for name in Names.split(config.methods):
        if name == "original":
            out.append(orig)
        elif name == "compressed":
            out += [matrix_recovery.compressed(task, orig, config.rank, float(g)) for g in config.gammas]
        elif name == "spectral":
            out.append(matrix_recovery.spectral(task, config.depth, config.eps, 2 * config.rank))
        else:
            raise ValueError(f"unknown method {name!r} in methods={config.methods!r}; "
                             "use original, compressed, spectral")
    return out


def run(config, ctx) -> dict:
    dtype = ctx.dtype
    task = tasks.make_task(config.task, jax.random.key(config.seed), config.d, config.rank,
                           fraction=config.fraction, measurements=config.measurements or None, dtype=dtype)
    methods = build_methods(config, task)
    idx = np.random.default_rng(0).choice(config.d * config.d, min(config.pca_entries, config.d ** 2),
                                          replace=False)
    fits = []
    for m in methods:
        def entries(theta, p=m.param):
            return p.materialize(theta).ravel()[idx]
        fits.append(matrix_recovery.fit(m, task, config.eta, config.steps, tol=config.tol, chunk_size=config.chunk_size,
                                 record_every=config.record_every, records={"w": entries},
                                 checkpoint=ctx.checkpoints(m.label)))
    authors_ms = None
    originals = [m for m in methods if m.label == "original"]
    if config.authors_steps and originals:
        authors_ms = matrix_recovery.authors_pattern_ms(originals[0], task, config.eta, config.authors_steps)

    base = fits[0]
    reach = max(float(base.evaluation[-1]), config.reach)
    per_method = {}
    base_final = float(base.evaluation[-1])
    for f in fits:
        row = {"num_params": f.num_params, "steps": f.steps, "ms_per_step": f.ms_per_step,
               "final_loss": float(f.loss[-1]), "final_test_error": float(f.evaluation[-1])}
        for name, level in (("reach", reach), ("first_final", base_final)):  # first_final: the reference's final error
            hit = int(f.steps_to(level))
            row[f"steps_to_{name}"] = hit
            row[f"time_to_{name}_s"] = hit * f.ms_per_step / 1e3 if hit >= 0 else None
        per_method[f.label] = row
    for label, row in per_method.items():
        for name in ("reach", "first_final"):
            t_base, t = per_method[base.label][f"time_to_{name}_s"], row[f"time_to_{name}_s"]
            row[f"speedup_to_{name}_vs_first"] = t_base / t if t_base and t else None

    mean, comps, ratio = analysis.trajectory_pca(base.records["w"], k=2)
    proj = {f.label: (np.asarray(f.records["w"], np.float64) - mean) @ comps.T for f in fits}
    extent = np.ptp(proj[base.label], axis=0).max()
    gaps = {f.label: analysis.path_distance(proj[f.label], proj[base.label]) / extent for f in fits[1:]}
    ctx.save_arrays(labels=np.array([f.label for f in fits]),
             **{f"loss/{f.label}": f.loss for f in fits}, **{f"test_error/{f.label}": f.evaluation for f in fits},
             **{f"test_step/{f.label}": f.step for f in fits},
             **{f"pca/{f.label}": proj[f.label] for f in fits})
    plot_curves(fits, config, reach, ctx.figure("error_vs_iterations_and_time"))
    plot_pca(fits, proj, ratio, ctx.figure("trajectory_pca"))
    compressed = [m for m in methods if isinstance(m.param, CompressedDeep)]   # (all gammas: the same init)
    return {"task": config.task, "reach_level": reach, "methods": per_method,
            "gamma0_unreachable_share": unreachable_share(compressed[0], task) if compressed else None,
            "authors_pattern_ms_per_step": authors_ms,
            "authors_over_runner": authors_ms / base.ms_per_step if authors_ms else None,
            "pca_explained_variance": ratio, "pca_path_distance_relative": gaps}


def unreachable_share(method, task) -> float:
    """The share of ``||Phi||_F^2`` that the compressed network cannot represent with its two outer factors
    frozen at their init (gamma = 0): ``analysis.energy_outside(V, Phi, Q)``, ``V`` the first factor, ``Q`` an
    orthonormal basis of the last factor's rows. A lower bound on gamma = 0's relative error over all entries."""
    first, last = method.theta["factors"][0], method.theta["factors"][-1]
    return float(analysis.energy_outside(first, task.data["target"], analysis.orthonormal_basis(last.T)))


def plot_curves(fits, config, reach, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for f in fits:
        steps = np.arange(len(f.loss))
        for ax, scale in zip(axes, (1.0, f.ms_per_step / 1e3)):
            line, = ax.plot(f.step * scale, f.evaluation, lw=1.5, label=f"{f.label} ({f.num_params:,} params)")
            ax.plot(steps * scale, f.loss, lw=0.8, ls="--", color=line.get_color())
    for ax, xl in zip(axes, ("GD iteration", "wall time (s, compile excluded)")):
        ax.axhline(reach, color="k", ls=":", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel(xl)
        ax.set_ylabel("test error (solid), train loss (dashed)")
    axes[0].legend(fontsize=8)
    axes[0].set_title(f"{config.task}: d={config.d}, r*={config.rank}, L={config.depth}, eps={config.eps:g}")
    axes[1].set_title(f"dotted: level {reach:.2e} used for time-to-reach")
    save_figure(fig, path)


def plot_pca(fits, proj, ratio, path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for i, f in enumerate(fits):
        p = proj[f.label]
        ax.plot(p[:, 0], p[:, 1], lw=4 if i == 0 else 1.5, alpha=0.5 if i == 0 else 1, marker=None if i == 0 else ".",
                ms=3, label=f.label)
    ax.set_xlabel(f"PC1 of original ({100 * ratio[0]:.1f}%)")
    ax.set_ylabel(f"PC2 of original ({100 * ratio[1]:.1f}%)")
    ax.set_title("end-to-end W(t) on the original run's PCs")
    ax.legend(fontsize=8)
    save_figure(fig, path)
