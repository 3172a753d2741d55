"""Experiment: the width-``m`` upper bound for separating a convex polytope with ``m`` faces (Lee, Mammadov,
Ye, ICML 2024), checked by construction and by training.

For each dimension ``d`` in ``dims`` and ``polytopes`` random polytopes ``{x : A x <= 1}`` with ``faces = m``
facets (``polytope.random_polytope``: unit normals, every face touching the unit ball), ``n`` points near the
boundary (``toys.polytope_points``, half inside):

- the constructed separator (``polytope.separator``, width ``m``) is checked to classify every point exactly;
- 2-layer ReLU networks ``d -> w -> 1`` of widths ``w = m + offset`` (``width_offsets``) are trained, ``seeds``
  per width as one vmapped program (PyTorch-default init, full batch, BCE with logits, Adam). A run
  *separates* when its training accuracy is exactly 1.

Metrics: ``constructed_accuracy`` (the minimum over all polytopes; 1.0 when the construction is exact),
``success_rate[d][offset]`` (fraction of seeds x polytopes that separate), ``train_accuracy[d][offset]`` and
``test_accuracy[d][offset]`` (medians; test: a fresh draw), and ``rows`` with every (d, polytope, width).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import dynamics, polytope
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.schema import Float, Int, Rule, Schema, Seq
from lrjax.polytope import compress, toys
from lrjax.polytope.construct import MIN_BOUNDED_PROBABILITY, bounded_probability
from lrjax.polytope.training import bce, init


SCHEMA = Schema(
    checks=[Rule(("faces", "dims"), lambda m, dims: all(bounded_probability(m, d) >= MIN_BOUNDED_PROBABILITY
                                                        for d in dims),
                 f"a random polytope with this many faces is bounded with probability < {MIN_BOUNDED_PROBABILITY} "
                 "for some d in dims (Wendel): raise faces or lower dims"),
            Rule(("faces", "dims"), lambda m, dims: m >= max(dims) + 1,
                 "a bounded polytope in R^d needs faces >= d + 1 for every d in dims"),
            Rule(("faces", "width_offsets"), lambda m, offsets: m + min(offsets) >= 1,
                 "every trained width faces + offset must be >= 1")],
    dims=Seq(Int(min=2)), faces=Int(min=3), polytopes=Int(min=1), width_offsets=Seq(Int()),
    n=Int(min=10), spread=Float(gt=0, lt=1), lr=Float(gt=0), steps=Int(min=1), seeds=Int(min=1),
    seed=Int(min=0), checkpoint_every=Int(min=0, resume="any"),
)


def run(config, ctx) -> dict:
    m, key = config.faces, jax.random.key(config.seed)
    rows = []
    constructed = []
    for d in config.dims:
        for p in range(config.polytopes):
            k = jax.random.fold_in(jax.random.fold_in(key, d), p)
            a, b = polytope.random_polytope(jax.random.fold_in(k, 0), m, d)
            x, y = toys.polytope_points(jax.random.fold_in(k, 1), a, b, config.n, config.spread)
            xt, yt = toys.polytope_points(jax.random.fold_in(k, 2), a, b, config.n, config.spread)
            constructed.append(compress.accuracy(polytope.separator(a, b, dtype=None), np.asarray(x, np.float64), y))
            for offset in config.width_offsets:
                w = m + offset
                params = jax.vmap(lambda s: init(s, (w,), d))(jax.random.split(jax.random.fold_in(k, 3 + w),
                                                                               config.seeds))
                res = dynamics.run(bce, params, optax.adam(config.lr), config.steps,
                                   data={"x": x, "y": y.astype(jnp.float32)}, batched=True,
                                   chunk_size=min(config.steps, 1000),
                                   checkpoint=ctx.checkpoints(f"d{d}_p{p}_w{w}", d=d, polytope=p, width=w),
                                   desc=f"d={d} polytope {p} width {w}")
                nets = [jax.tree.map(lambda t: t[s], res.params) for s in range(config.seeds)]
                rows.append({"d": d, "polytope": p, "width": w, "offset": offset,
                             "train_accuracy": [compress.accuracy(net, x, y) for net in nets],
                             "test_accuracy": [compress.accuracy(net, xt, yt) for net in nets]})
    summary = {name: {str(d): {str(o): float(fn([v for r in rows if r["d"] == d and r["offset"] == o
                                                  for v in r[key]]))
                               for o in config.width_offsets} for d in config.dims}
               for name, key, fn in (("success_rate", "train_accuracy", lambda v: np.mean(np.asarray(v) == 1.0)),
                                     ("train_accuracy", "train_accuracy", np.median),
                                     ("test_accuracy", "test_accuracy", np.median))}
    plot(summary, float(min(constructed)), config, ctx.figure("upper_bound"))
    return {"faces": m, "constructed_accuracy": float(min(constructed)), **summary, "rows": rows}


def plot(summary, constructed: float, config, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    offsets = list(config.width_offsets)
    for d in config.dims:
        for ax, name in zip(axes, ("success_rate", "train_accuracy")):
            ax.plot(offsets, [summary[name][str(d)][str(o)] for o in offsets], "o-", label=f"d = {d}")
    for ax, label in zip(axes, ("fraction of runs that separate exactly", "median training accuracy")):
        ax.axvline(0, c="k", lw=0.8, ls=":")
        ax.set_xlabel(f"width - faces (faces m = {config.faces}; 0: the width-m bound)")
        ax.set_ylabel(label)
        ax.set_xticks(offsets)
    axes[0].legend(fontsize=8)
    axes[0].set_title(f"{config.polytopes} random polytope(s) x {config.seeds} seeds per point", fontsize=9)
    axes[1].set_title(f"trained networks; the constructed width-m network: accuracy {constructed:.4f} on every "
                      "sample", fontsize=9)
    save_figure(fig, path)
