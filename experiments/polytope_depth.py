"""Experiment: which combinations of hidden widths let a deeper ReLU network separate one convex polytope
(Lee, Mammadov, Ye, ICML 2024 state a lower bound on the combination of widths; its inequality was not
readable offline, see ``docs/results.md``), against the necessary condition of Beise, Dias Da Cruz and
Schröder (arXiv 1807.01194): if no hidden layer is wider than the input dimension ``d``, every connected
component of a decision region is unbounded, so no such network has the bounded polytope as its positive
region.

For ``polytopes`` random polytopes ``{x : A x <= 1}`` in ``R^d`` with ``faces`` facets and ``n`` points near
their boundary (half inside; a fresh draw for testing), every architecture in ``architectures`` (hidden
widths ``(n_1, ..., n_k)``) is trained, ``seeds`` per architecture as one vmapped program (PyTorch-default
init, full batch, BCE with logits, Adam ``lr``). Per run:

- ``train_accuracy``, ``test_accuracy``;
- ``reaches_far``: whether the network is positive (``logit >= 0``, the decision) anywhere on the spheres
  of radii ``far_scales`` times the largest norm of a training or test point (``far_points`` directions
  each: equally spaced angles for ``d = 2``, random directions above), or its recession function (the same
  network with every bias zero, ``lim f(R u) / R``) is > 0 in one of those directions, which makes the
  positive region unbounded in that direction. An unbounded connected component that holds a point inside
  such a sphere crosses it, so a miss of the sampled directions can only report a bounded region as
  unbounded, never the reverse. Positive regions that are unbounded only along a thin strip and only beyond
  the largest sphere are not seen;
- ``separates``: training accuracy exactly 1 and not ``reaches_far``.

``narrow``: ``max(widths) <= d``. The check (``passed``): every narrow run that is positive at some inside
point (training or test) reaches far, as an unbounded component must; a failure means the network or the
far test is wrong, not the theorem.
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
from lrjax.polytope.compress import logits
from lrjax.polytope.construct import MIN_BOUNDED_PROBABILITY, bounded_probability
from lrjax.polytope.training import bce, init

SCHEMA = Schema(
    d=Int(min=2), faces=Int(min=3), polytopes=Int(min=1), architectures=Seq(Seq(Int(min=1)), distinct=True),
    n=Int(min=10), spread=Float(gt=0, lt=1), lr=Float(gt=0), steps=Int(min=1), seeds=Int(min=1),
    far_scales=Seq(Float(gt=1)), far_points=Int(min=8), seed=Int(min=0), checkpoint_every=Int(min=0, resume="any"),
    checks=[Rule(("faces", "d"), lambda m, d: m >= d + 1, "a bounded polytope in R^d needs faces >= d + 1"),
            Rule(("faces", "d"), lambda m, d: bounded_probability(m, d) >= MIN_BOUNDED_PROBABILITY,
                 f"a random polytope with this many faces is bounded with probability < {MIN_BOUNDED_PROBABILITY} "
                 "in R^d (Wendel): raise faces or lower d")],
)


def sphere_points(key, d: int, radii, count: int) -> np.ndarray:
    """``count`` directions on the unit sphere of ``R^d`` (``d = 2``: equally spaced angles; else Gaussian,
    normalised) times each radius: ``(len(radii) * count, d)`` float64."""
    if d == 2:
        t = np.linspace(0, 2 * np.pi, count, endpoint=False)
        u = np.stack([np.cos(t), np.sin(t)], axis=1)
    else:
        u = np.random.default_rng(np.asarray(jax.random.key_data(key)).tolist()).normal(size=(count, d))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
    return np.concatenate([r * u for r in radii])


def recession(params, u) -> np.ndarray:
    """``lim_{R -> inf} f(R u) / R`` for directions ``u (k, d)``: the network with every bias zero
    (positively homogeneous). ``> 0`` at ``u`` means ``f(R u) > 0`` for every large ``R``."""
    return logits(tuple((w, np.zeros_like(np.asarray(b, np.float64))) for w, b in params), u)


def reaches_far(params, far, directions) -> bool:
    """Positive anywhere on the sampled spheres ``far``, or positive at infinity along ``directions``."""
    return bool((logits(params, far) >= 0).any() or (recession(params, directions) > 0).any())


def run(config, ctx) -> dict:
    d, m, key = config.d, config.faces, jax.random.key(config.seed)
    rows = []
    for p in range(config.polytopes):
        k = jax.random.fold_in(key, p)
        a, b = polytope.random_polytope(jax.random.fold_in(k, 0), m, d)
        x, y = toys.polytope_points(jax.random.fold_in(k, 1), a, b, config.n, config.spread)
        xt, yt = toys.polytope_points(jax.random.fold_in(k, 2), a, b, config.n, config.spread)
        radius = float(max(np.linalg.norm(x, axis=1).max(), np.linalg.norm(xt, axis=1).max()))
        far = sphere_points(jax.random.fold_in(k, 3), d, [radius * c for c in config.far_scales], config.far_points)
        directions = far[:config.far_points] / np.linalg.norm(far[:config.far_points], axis=1, keepdims=True)
        inside = np.concatenate([np.asarray(x)[np.asarray(y) == 1], np.asarray(xt)[np.asarray(yt) == 1]])
        for i, widths in enumerate(config.architectures):
            params = jax.vmap(lambda s: init(s, tuple(widths), d))(
                jax.random.split(jax.random.fold_in(k, 100 + i), config.seeds))
            res = dynamics.run(bce, params, optax.adam(config.lr), config.steps,
                               data={"x": x, "y": y.astype(jnp.float32)}, batched=True,
                               chunk_size=min(config.steps, 1000),
                               checkpoint=ctx.checkpoints(f"p{p}_{'x'.join(map(str, widths))}", polytope=p,
                                                          widths=list(widths)),
                               desc=f"polytope {p} widths {tuple(widths)}")
            for s in range(config.seeds):
                net = jax.tree.map(lambda t: t[s], res.params)
                train = compress.accuracy(net, x, y)
                inside_positive = bool((logits(net, inside) >= 0).any())
                far_positive = reaches_far(net, far, directions)
                rows.append({"polytope": p, "widths": list(widths), "seed": s, "narrow": max(widths) <= d,
                             "train_accuracy": train, "test_accuracy": compress.accuracy(net, xt, yt),
                             "inside_positive": inside_positive, "reaches_far": far_positive,
                             "separates": train == 1.0 and not far_positive})
            if p == 0:
                rows[-config.seeds]["_net"] = jax.tree.map(lambda t: np.asarray(t[0]), res.params)
    examples = [(r["widths"], r["train_accuracy"], r.pop("_net")) for r in rows if "_net" in r]
    summary = {}
    for widths in config.architectures:
        mine = [r for r in rows if r["widths"] == list(widths)]
        summary["x".join(map(str, widths))] = {
            "narrow": max(widths) <= d, "parameters": sum((a + 1) * b for a, b in zip((d, *widths), (*widths, 1))),
            "separates_rate": float(np.mean([r["separates"] for r in mine])),
            "train_accuracy_median": float(np.median([r["train_accuracy"] for r in mine])),
            "test_accuracy_median": float(np.median([r["test_accuracy"] for r in mine])),
            "reaches_far_rate": float(np.mean([r["reaches_far"] for r in mine]))}
    contradictions = [r for r in rows if r["narrow"] and r["inside_positive"] and not r["reaches_far"]]
    a0, _ = polytope.random_polytope(jax.random.fold_in(jax.random.fold_in(key, 0), 0), m, d)
    plot(config, summary, examples if d == 2 else [], a0, ctx.figure("width_combinations"))
    return {"faces": m, "d": d, "architectures": summary, "narrow_bounded_runs": len(contradictions),
            "passed": not contradictions, "rows": rows}


def plot(config, summary, examples, a, path):
    """Left: the fraction of runs that separate (bounded positive region, training accuracy 1) and that are
    positive beyond the data, per architecture, narrow ones (every width <= d) in grey. Right (d = 2): seed 0's
    positive region per architecture on polytope 0 (orange; all orange: the run predicts "inside" everywhere
    on the window), the polytope's boundary in black."""
    from matplotlib.patches import Patch

    plt = pyplot()
    cols = (len(examples) + 1) // 2
    fig = plt.figure(figsize=(5.2 + 1.9 * cols, 4.6))
    grid = fig.add_gridspec(2, 1 + cols, width_ratios=[2.6] + [1] * cols)
    ax = fig.add_subplot(grid[:, 0])
    names = list(summary)
    pos = np.arange(len(names))
    ax.bar(pos - 0.2, [summary[k]["separates_rate"] for k in names], 0.4,
           color=["0.6" if summary[k]["narrow"] else "tab:blue" for k in names])
    ax.bar(pos + 0.2, [summary[k]["reaches_far_rate"] for k in names], 0.4, color="tab:red", alpha=0.6)
    ax.plot(pos, [summary[k]["train_accuracy_median"] for k in names], "k.", label="median training accuracy")
    ax.set_xticks(pos)
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1.45)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("fraction of runs (bars); accuracy (dots)")
    ax.set_title(f"d = {config.d}, m = {config.faces} faces, {config.polytopes} polytope(s) x {config.seeds} seeds",
                 fontsize=9)
    ax.legend(handles=[Patch(color="tab:blue", label="separates (some width > d)"),
                       Patch(color="0.6", label="separates (every width <= d)"),
                       Patch(color="tab:red", alpha=0.6, label="positive beyond the data (unbounded)"),
                       *ax.get_legend_handles_labels()[0]], fontsize=7, loc="upper left")
    g = np.linspace(-3, 3, 241)
    xx, yy = np.meshgrid(g, g)
    pts = np.stack([xx.ravel(), yy.ravel()], axis=1)
    inside = np.all(pts @ a.T <= 1, axis=1).reshape(xx.shape)
    for i, (widths, train_accuracy, net) in enumerate(examples):
        ax = fig.add_subplot(grid[i // cols, 1 + i % cols])
        ax.contourf(xx, yy, (logits(net, pts) >= 0).reshape(xx.shape), levels=[0.5, 1.5], colors=["tab:orange"],
                    alpha=0.6)
        ax.contour(xx, yy, inside.astype(float), levels=[0.5], colors="k", linewidths=1)
        ax.set_title(f"{tuple(widths)}: train acc. {train_accuracy:.3f}", fontsize=7)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    save_figure(fig, path)
