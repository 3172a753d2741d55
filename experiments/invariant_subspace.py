"""Experiment: the invariant-subspace theorem checked on a recorded GD run (see configs/theorem_simulation.py)."""
from __future__ import annotations

import dataclasses

import numpy as np

from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.process import DTYPES
from lrjax.harness.schema import Choice, Either, Float, Int, Rule, Schema, Seq
from lrjax.studies import theorem_simulation

SCHEMA = Schema(
    d=Int(min=1), rank=Int(min=1), depth=Int(min=1),
    eps=Either(Float(gt=0), Seq(Float(gt=0), length=lambda c: c.depth)),
    eta=Float(gt=0), weight_decay=Float(ge=0), steps=Int(min=1), record_every=Int(min=1), dtype=Choice(*DTYPES),
    init=Choice("orthogonal", "gaussian"), seed=Int(min=0), compression_subspace=Choice("invariant", "random"),
    checks=[Rule(("rank", "d"), lambda r, d: r <= d, "the target's rank must be <= d"),
           Rule(("steps", "record_every"), lambda s, r: s % r == 0, "steps must be a multiple of record_every")],
)


def run(config, ctx) -> dict:
    setup = theorem_simulation.Setup(**{f.name: config[f.name] for f in dataclasses.fields(theorem_simulation.Setup)})
    check, traj = theorem_simulation.simulate(setup)
    ctx.save_arrays(**traj)
    plot_spectra(traj, config, ctx.figure("singular_values"))
    plot_subspaces(traj, config, ctx.figure("subspaces"))
    plot_prop2(traj, check, config, ctx.figure("prop2_gap"))
    verdict = "PASS" if check.passed else "FAIL"
    print(f"\ninvariant-subspace theorem (d={config.d}, r*={config.rank}, L={config.depth}, "
          f"eps={config.eps}, init={config.init}, compression subspace={config.compression_subspace}, "
          f"{config.dtype}): {verdict}")
    print(f"  {'check':<52} {'max error':>11}   tolerance")
    print(f"  {'1. d-2r* singular values equal |rho_l(t)| (relative)':<52} {check.singular_value_error:>11.3e}"
          f"   {check.tolerance:.0e}")
    print(f"  {'2. bulk subspaces fixed: structure residual':<52} {check.subspace_residual:>11.3e}"
          f"   {check.tolerance:.0e}")
    print(f"  {'3. Prop. 2: max_(t>=1) gap / bound(t) - 1':<52} {check.prop2_ratio_max - 1:>11.3e}"
          f"   {check.tolerance + check.prop2_tolerance:.0e} (rounding)")
    print(f"     gap = ||W(t) - W_C(t)||_F^2, bound(t) = (d - 2r*) prod_l rho_l(t)^2")
    print(f"  {check.notes}")
    return {**check.as_dict(), "verdict": verdict, "final_loss": float(traj["loss"][-1]),
            "steps": int(traj["step"][-1])}


def plot_spectra(traj, config, path):
    plt = pyplot()
    s, rho, step = traj["singular_values"], traj["rho"], traj["step"]
    fig, axes = plt.subplots(1, config.depth, figsize=(4.2 * config.depth, 3.6), squeeze=False)
    for l, ax in enumerate(axes[0]):
        ax.plot(step, s[:, l, :], color="tab:blue", lw=0.8, alpha=0.8)
        ax.plot(step, np.abs(rho[:, l]), "--", color="tab:red", lw=2, label=r"predicted $|\rho_l(t)|$")
        ax.set_yscale("log")
        ax.set_title(f"layer {l + 1}: singular values")
        ax.set_xlabel("GD step")
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(f"d={config.d}, r*={config.rank}, init={config.init}: "
                 f"{max(config.d - 2 * config.rank, 1)} values should follow the red line")
    save_figure(fig, path)


def plot_prop2(traj, check, config, path):
    """Prop. 2 on one log plot: the gap ``||W(t) - W_C(t)||_F^2`` and its bound ``(d - 2r*) prod rho_l(t)^2``."""
    plt = pyplot()
    step = traj["step"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].plot(step, traj["compression_gap"], lw=2, label=r"gap $||W(t) - W_C(t)||_F^2$")
    axes[0].plot(step, traj["compression_bound"], "--", color="tab:red", label=r"bound $(d-2r^*)\prod_l \rho_l(t)^2$")
    axes[0].plot(step, traj["product_norm"] ** 2, color="0.6", label=r"scale: $||W(t)||_F^2$")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("squared Frobenius norm")
    later = slice(1, None)
    tiny = 1e-18
    axes[1].plot(step[later], np.maximum(np.abs(traj["compression_gap"][later] / traj["compression_bound"][later] - 1.0),
                                         tiny))
    axes[1].axhline(check.tolerance + check.prop2_tolerance, color="tab:red", ls="--", label="allowed (rounding)")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("|gap / bound - 1|")
    for ax in axes:
        ax.set_xlabel("GD step")
        ax.legend(fontsize=8)
    verdict = "holds" if check.prop2_passed else "FAILS"
    fig.suptitle(f"Prop. 2 {verdict}: eps={config.eps}, compression subspace {config.compression_subspace}, "
                 f"max gap/bound = {check.prop2_ratio_max:.10g}")
    save_figure(fig, path)


def plot_subspaces(traj, config, path):
    plt = pyplot()
    step = traj["step"]
    tiny = 1e-18
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for l in range(config.depth):
        axes[0].plot(step, np.maximum(traj["subspace_residual"][:, l], tiny), label=f"layer {l + 1}")
        axes[1].plot(step, np.maximum(traj["top_direction_leak"][:, l], tiny), label=f"layer {l + 1}")
    axes[0].set_title("check 2: residual of the block structure")
    axes[1].set_title(f"sin angle: top-{config.rank} directions vs\ninvariant {2 * config.rank}-dim subspace")
    axes[2].plot(step, traj["compression_gap"], label=r"$||W(t) - W_C(t)||_F^2$")
    axes[2].plot(step, traj["compression_bound"], color="tab:red", ls="--", label="Prop. 2 bound")
    axes[2].set_title("check 3: compressed vs original")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xlabel("GD step")
        ax.legend(fontsize=8)
    save_figure(fig, path)
