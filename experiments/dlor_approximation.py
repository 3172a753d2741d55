"""Experiment: DLoR networks approximating a dense MLP and a sawtooth as h -> 0 (DLoR paper, Fig. 2-3).

Constructions and what h means: ``lrjax.studies.dlor_approximation`` (module docstring). Part 1: a dense teacher
``act(x A + b) C`` against its deep (multiplicative DLoR factors of ``A``) and wide (rank-r terms) network
approximants for each activation; the relative sup error over ``samples`` inputs in ``[-1, 1]^n`` and its
fitted log-log slope in h. Part 2: the k-level sawtooth, exact for ReLU, against deep and wide networks
with the smooth activation ``h s(z / h)``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import param
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.schema import Choice, Float, Int, Rule, Schema, Seq
from lrjax.models import param_mlp
from lrjax.studies import dlor_approximation as ap

DTYPE = "float64"   # the run context enables 64-bit types for this experiment

SCHEMA = Schema(
    n=Int(min=1), out=Int(min=1), rank=Int(min=1), beta=Float(gt=0), samples=Int(min=1),
    activations=Seq(Choice(*sorted(set(param_mlp.ACTIVATIONS) - {"identity"}))), hs=Seq(Float(gt=0)),
    slope_max_h=Float(gt=0), exact_tolerance=Float(gt=0, resume="any"), sawtooth_levels=Seq(Int(min=1, max=12)),
    sawtooth_activations=Seq(Choice("softplus", "gelu", "silu")), sawtooth_hs=Seq(Float(gt=0), min_len=2),
    sawtooth_points=Int(min=2), seed=Int(min=0),
    checks=[Rule(("rank", "n"), lambda r, n: r <= n, "rank must be <= n"),
           Rule(("hs", "slope_max_h"), lambda hs, m: sum(h <= m for h in hs) >= 2,
                "at least two h must be <= slope_max_h (the slope is fitted there)")],
)


def teacher_part(config):
    dtype = jnp.float64
    teacher = ap.dense_teacher(jax.random.key(config.seed), config.n, config.out, dtype)
    x = jax.random.uniform(jax.random.key(config.seed + 1), (config.samples, config.n), dtype, -1.0, 1.0)
    a = np.asarray(teacher["a"])
    decs = {"deep": param.decompose_multiplicative(a, config.rank), "wide": param.decompose_additive(a, config.rank)}
    build = {"deep": ap.deep_approximant, "wide": ap.wide_approximant}
    hs = np.asarray(config.hs, float)
    fit = hs <= config.slope_max_h  # the asymptotic range; larger h is pre-asymptotic for deep networks
    out = {}
    for act in config.activations:
        f = ap.teacher_apply(teacher, x, act)
        row = {}
        for kind, dec in decs.items():
            err = [ap.relative_sup_error(f, build[kind](teacher, dec, act, float(h), config.beta)(x)) for h in hs]
            if act == "relu":  # phi_h is exactly linear: only cancellation round-off ~ eps / h is left
                row[kind] = {"errors": err, "slope": None, "exact": bool(max(err) < config.exact_tolerance)}
            else:
                row[kind] = {"errors": err, "slope": ap.loglog_slope(hs[fit], np.asarray(err)[fit])}
        out[act] = row
    params = {"dense_A": a.size, "deep_A": decs["deep"].num_params(), "wide_A": decs["wide"].num_params(),
              "deep_hidden_layers": len(decs["deep"].theta["factors"]) - 1, "wide_branches": len(decs["wide"].theta["terms"])}
    return hs, out, params


def sample_points(k: int, h: float, n: int):
    """A uniform grid on ``[0, 1]`` plus points within ``8 h`` of every kink ``j / 2^k`` (where the
    smooth networks' error peaks: a plain grid coarser than h would miss it)."""
    kinks = np.arange(2 ** k + 1) / 2 ** k
    near = (kinks[:, None] + h * np.linspace(-8, 8, 65)[None]).ravel()
    return jnp.asarray(np.concatenate([np.linspace(0, 1, n), near[(near >= 0) & (near <= 1)]]))


def sawtooth_part(config):
    hs = np.asarray(config.sawtooth_hs, float)
    out = {}
    for k in config.sawtooth_levels:
        row = {"params": ap.sawtooth_params(k)}
        for kind, net in (("deep", ap.deep_sawtooth), ("wide", ap.wide_sawtooth)):
            xs = sample_points(k, 0.0, config.sawtooth_points)
            row[f"{kind}_relu_error"] = float(jnp.max(jnp.abs(net(xs, k, ap.smooth_relu("relu", 0.0)) - ap.sawtooth(xs, k))))
            for act in config.sawtooth_activations:
                err = []
                for h in hs:
                    xs = sample_points(k, float(h), config.sawtooth_points)
                    err.append(float(jnp.max(jnp.abs(net(xs, k, ap.smooth_relu(act, float(h))) - ap.sawtooth(xs, k)))))
                row[f"{kind}_{act}"] = {"errors": err, "slope": ap.loglog_slope(hs, err)}
        out[k] = row
    xs = jnp.linspace(0.0, 1.0, config.sawtooth_points, dtype=jnp.float64)
    return xs, hs, out


def run(config, ctx) -> dict:
    hs, teacher, params = teacher_part(config)
    xs, saw_hs, saw = sawtooth_part(config)
    plot_teacher(config, hs, teacher, ctx.figure("dense_mlp_error_vs_h"))
    plot_sawtooth(config, xs, saw_hs, saw, ctx.figure("sawtooth_vs_h"))
    slopes = {f"{kind}/{act}": teacher[act][kind]["slope"] for act in teacher for kind in ("deep", "wide")
              if act != "relu"}
    return {"teacher": teacher, "h": hs, "params": params, "slopes": slopes, "sawtooth": {str(k): v for k, v in saw.items()},
            "sawtooth_h": saw_hs, "relu_exact": {kind: teacher["relu"][kind]["exact"] for kind in ("deep", "wide")}
            if "relu" in teacher else None}


def plot_teacher(config, hs, teacher, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, kind in zip(axes, ("deep", "wide")):
        for act, row in teacher.items():
            s = row[kind]["slope"]
            note = f"slope {s:.2f}" if s is not None else ("exact: round-off only" if row[kind]["exact"] else "not exact")
            ax.loglog(hs, np.maximum(row[kind]["errors"], 1e-17), "o-", label=f"{act} ({note})")
        ax.loglog(hs, hs, "k:", lw=0.8, label="h")
        ax.axvspan(hs.min(), config.slope_max_h, color="gray", alpha=0.08)
        ax.set_xlabel("h (shaded: range of the slope fit)")
        ax.set_title(f"{kind}: {'DLoR factors (depth)' if kind == 'deep' else 'rank-r terms (width)'}, n={config.n}, r={config.rank}")
    axes[0].set_ylabel("relative sup error to the dense MLP")
    axes[0].legend(fontsize=8)
    save_figure(fig, path)


def plot_sawtooth(config, xs, hs, saw, path):
    plt = pyplot()
    k = max(saw)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(xs, ap.sawtooth(xs, k), "k", lw=2.5, alpha=0.4, label=f"saw_{k} (= deep ReLU net)")
    for act in config.sawtooth_activations:
        h = float(hs[-1])
        axes[0].plot(xs, ap.deep_sawtooth(xs, k, ap.smooth_relu(act, h)), lw=1, label=f"deep, {act}, h={h:.0e}")
    axes[0].set_title(f"sawtooth, {2 ** (k - 1)} teeth")
    axes[0].legend(fontsize=8)
    for kk, row in saw.items():
        for act in config.sawtooth_activations:
            for kind, ls in (("deep", "-"), ("wide", "--")):
                r = row[f"{kind}_{act}"]
                axes[1].loglog(hs, r["errors"], ls, marker="o", ms=3,
                               label=f"k={kk} {kind} {act} ({row['params'][kind]} params, slope {r['slope']:.2f})")
    axes[1].set_xlabel("h")
    axes[1].set_ylabel("sup error")
    axes[1].set_title("deep (6k params) vs wide (3 * 2^k params)")
    axes[1].legend(fontsize=6)
    save_figure(fig, path)
