"""Experiment: exact reconstruction of random full-rank n x n matrices by DLoR components, additively
(sums of rank-r terms: width) and multiplicatively (products of DLoR factors D + U V^T: depth), with
parameter counts, and the spectra of the factors (constructions: ``lrjax.param.decompose``)."""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import param
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.process import DTYPES
from lrjax.harness.schema import Choice, Float, Int, Rule, Schema, Seq

SCHEMA = Schema(
    sizes=Seq(Int(min=2)), ranks=Seq(Int(min=1)), tolerance=Float(gt=0, resume="any"), spectra_n=Int(min=2),
    spectra_rank=Int(min=1), seed=Int(min=0), dtype=Choice(*DTYPES),
    checks=[Rule(("spectra_rank", "spectra_n"), lambda r, n: r < n, "spectra_rank must be < spectra_n"),
           Rule(("ranks", "sizes"), lambda rs, ns: min(rs) < max(ns), "some rank must be < some size")],
)


def reconstruct(a: np.ndarray, rank: int) -> dict:
    """Relative Frobenius errors, parameter counts and term/factor counts of both decompositions."""
    out = {}
    for kind, fn, key in (("additive", param.decompose_additive, "terms"),
                          ("multiplicative", param.decompose_multiplicative, "factors")):
        t0 = time.perf_counter()
        dec = fn(a, rank)
        w = np.asarray(dec.param.materialize(dec.theta))
        out[kind] = {"relative_error": float(np.linalg.norm(w - a) / np.linalg.norm(a)),
                     "num_params": dec.num_params(), "components": len(dec.theta[key]),
                     "seconds": time.perf_counter() - t0}
    return out


def run(config, ctx) -> dict:
    dtype = ctx.dtype
    rows = []
    for n in config.sizes:
        a = np.asarray(jax.random.normal(jax.random.key(config.seed + n), (n, n), dtype)) / np.sqrt(n)
        for r in [r for r in config.ranks if r < n]:
            rows.append({"n": n, "rank": r, "condition_number": float(np.linalg.cond(a)), **reconstruct(a, r)})
    worst = {kind: max(row[kind]["relative_error"] for row in rows) for kind in ("additive", "multiplicative")}
    plot_scaling(config, rows, ctx.figure("reconstruction_error_and_params"))
    spectra = factor_spectra(config)
    plot_spectra(config, spectra, ctx.figure("factor_spectra"))
    return {"rows": rows, "max_relative_error": worst, "exact": bool(max(worst.values()) < config.tolerance),
            "tolerance": config.tolerance}


def factor_spectra(config) -> dict:
    """Singular values of every multiplicative factor and every additive term for one ``(n, rank)``."""
    n, r = config.spectra_n, config.spectra_rank
    a = np.asarray(jax.random.normal(jax.random.key(config.seed + n), (n, n), jnp.float64)) / np.sqrt(n)
    mul, add = param.decompose_multiplicative(a, r), param.decompose_additive(a, r)
    sv = lambda w: np.linalg.svd(np.asarray(w), compute_uv=False)  # noqa: E731
    return {"target": sv(a),
            "multiplicative": np.stack([sv(p.materialize(t)) for p, t in zip(mul.param.parts, mul.theta["factors"])]),
            "additive": np.stack([sv(p.materialize(t)) for p, t in zip(add.param.parts, add.theta["terms"])])}


def plot_scaling(config, rows, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for r in config.ranks:
        rs = [row for row in rows if row["rank"] == r]
        if not rs:
            continue
        ns = [row["n"] for row in rs]
        for kind, marker in (("additive", "o--"), ("multiplicative", "s-")):
            axes[0].plot(ns, [max(row[kind]["relative_error"], 1e-17) for row in rs], marker, label=f"{kind}, r={r}")
            axes[1].plot(ns, [row[kind]["num_params"] for row in rs], marker, label=f"{kind}, r={r}")
            axes[2].plot(ns, [row[kind]["components"] for row in rs], marker, label=f"{kind}, r={r}")
    ns = sorted(config.sizes)
    axes[1].plot(ns, [n * n for n in ns], "k:", label="dense n^2")
    for ax, title in zip(axes, ("relative error ||W - A||_F / ||A||_F", "parameters",
                                "components (terms: width / factors: depth)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("n")
        ax.set_title(title)
    axes[0].axhline(config.tolerance, color="k", ls=":", lw=0.8)
    axes[1].legend(fontsize=7)
    save_figure(fig, path)


def plot_spectra(config, spectra, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    m = spectra["multiplicative"]
    im = axes[0].imshow(np.log10(np.maximum(m.T, 1e-16)), aspect="auto", cmap="viridis", origin="lower")
    fig.colorbar(im, ax=axes[0], label="log10 singular value")
    axes[0].set_xlabel("factor j (x @ A = x M_1 ... M_K)")
    axes[0].set_ylabel("index i (descending)")
    axes[0].set_title(f"deep: spectra of the {len(m)} DLoR factors D + UV^T (n={config.spectra_n}, r={config.spectra_rank})")
    add = spectra["additive"]
    for j, s in enumerate(add):
        axes[1].semilogy(np.arange(1, len(s) + 1), np.maximum(s, 1e-17), ".-", lw=0.8, label=f"term {j + 1}" if j < 8 else None)
    axes[1].semilogy(np.arange(1, len(spectra["target"]) + 1), spectra["target"], "k--", lw=1, label="A")
    axes[1].set_xlabel("index i")
    axes[1].set_title(f"wide: spectra of the {len(add)} rank-{config.spectra_rank} terms (SVD blocks of A)")
    axes[1].legend(fontsize=7, ncol=2)
    save_figure(fig, path)
