"""Experiment: the polytope structure a trained ReLU network finds in a toy 2-D dataset, and its compression
(Lee, Mammadov, Ye, ICML 2024). ``seeds`` networks ``2 -> widths -> 1`` (PyTorch-default uniform init)
train as one vmapped program, full batch, BCE with logits, Adam; each is then compressed on its training
data (``lrjax.polytope.compress``: remove, merge, redundant, rescale) and its decision region extracted
exactly (``lrjax.polytope.components``).

Metrics, per seed: ``accuracy`` / ``accuracy_compressed`` (training points), the same on a fresh test draw,
``compressed_widths``, and the parts of the compressed decision region (faces per part, convex or not);
where the theory gives the minimal cover (``toys.GEOMETRY``: two triangles 3 + 3 faces / 2 polytopes,
hexagon with a pentagonal hole 6 + 5 / 2), ``success_rate``: the fraction of seeds whose compressed widths
are exactly (total faces, polytopes) with the compressed accuracy within 0.01 of the trained one.
"""
from __future__ import annotations

import dataclasses
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import dynamics, polytope
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.schema import Choice, Float, Int, Schema, Seq
from lrjax.polytope import compress, toys
from lrjax.polytope.training import bce, init

DEFAULT_WIDTHS = {"swiss_roll": (20, 4)}          # others: the paper's worked example 2 -> 16 -> 4 -> 1
BOX = (-2.0, 2.0, -2.0, 2.0)

SCHEMA = Schema(
    dataset=Choice(*toys.NAMES), widths=Seq(Int(min=1), optional=True), n=Int(min=10), lr=Float(gt=0),
    steps=Int(min=1), seeds=Int(min=1), seed=Int(min=0), min_weight=Float(ge=0),
    checkpoint_every=Int(min=0, resume="any"),
)


def run(config, ctx) -> dict:
    widths = tuple(config.widths or DEFAULT_WIDTHS.get(config.dataset, (16, 4)))
    key = jax.random.key(config.seed)
    x, y = toys.make(config.dataset, config.n, jax.random.fold_in(key, 0))
    xt, yt = toys.make(config.dataset, config.n, jax.random.fold_in(key, 1))
    params = jax.vmap(lambda k: init(k, widths))(jax.random.split(jax.random.fold_in(key, 2), config.seeds))
    res = dynamics.run(bce, params, optax.adam(config.lr), config.steps,
                       data={"x": x, "y": y.astype(jnp.float32)}, batched=True,
                       chunk_size=min(config.steps, 1000), checkpoint=dataclasses.replace(ctx.checkpoints(), directory=ctx.workdir / "checkpoints"),  # where
                       # runs before the run context kept them: W/checkpoints/checkpoints
                       desc=config.dataset)
    theory = toys.GEOMETRY.get(config.dataset)
    rows, nets = [], []
    for s in range(config.seeds):
        trained = jax.tree.map(lambda a: np.asarray(a[s], np.float64), res.params)
        small, report = compress.compress(trained, x, y, config.min_weight)
        parts = polytope.components(small, BOX)
        acc = lambda p, a, b: float(np.mean(np.asarray(polytope.inside(p, np.asarray(a, np.float64))) == (np.asarray(b) > 0)))
        row = {"accuracy": acc(trained, x, y), "accuracy_compressed": acc(small, x, y),
               "test_accuracy": acc(trained, xt, yt), "test_accuracy_compressed": acc(small, xt, yt),
               "compressed_widths": compress.widths(small), "stages": report,
               "parts": [{"faces": len(c.faces), "convex": c.convex, "area": c.area} for c in parts]}
        if theory:
            row["matches_theory"] = (row["compressed_widths"] == [sum(theory["faces"]), theory["polytopes"]]
                                     and row["accuracy_compressed"] >= row["accuracy"] - 0.01)
        rows.append(row)
        nets.append((trained, small))
    plot(nets[:4], rows, x, y, config, widths, ctx.figure("regions"))
    out = {k: [r[k] for r in rows] for k in ("accuracy", "accuracy_compressed", "test_accuracy",
                                             "test_accuracy_compressed", "compressed_widths")}
    out.update({"widths": list(widths), "final_loss_median": float(np.median(res.scalars["loss"][:, -1])),
                "stages_seed0": rows[0]["stages"], "parts": [r["parts"] for r in rows],
                "accuracy_median": float(np.median(out["accuracy"])),
                "accuracy_compressed_median": float(np.median(out["accuracy_compressed"]))})
    if theory:
        out["theory"] = {"widths": [sum(theory["faces"]), theory["polytopes"]], "faces": theory["faces"]}
        out["success_rate"] = float(np.mean([r["matches_theory"] for r in rows]))
    return out


def _draw(ax, params, x, y, title):
    g = np.linspace(BOX[0], BOX[1], 300)
    gx, gy = np.meshgrid(g, g)
    grid = np.stack([gx.ravel(), gy.ravel()], 1)
    inside = np.asarray(polytope.inside(params, grid)).reshape(gx.shape)
    ax.contourf(gx, gy, inside, levels=[-0.5, 0.5, 1.5], colors=["#f3d9d9", "#d6e6f5"])
    w, b = params[0]
    for j in range(w.shape[1]):                       # first-layer hyperplanes w . x + b = 0
        wj, bj = np.asarray(w[:, j]), float(b[j])
        if abs(wj[1]) > abs(wj[0]):
            ax.plot(g, -(bj + wj[0] * g) / wj[1], c="k", lw=0.7, alpha=0.7)
        else:
            ax.plot(-(bj + wj[1] * g) / wj[0], g, c="k", lw=0.7, alpha=0.7)
    y = np.asarray(y)
    ax.scatter(*np.asarray(x)[y == 1].T, s=3, c="C0")
    ax.scatter(*np.asarray(x)[y == 0].T, s=3, c="C3")
    ax.set_xlim(BOX[0], BOX[1])
    ax.set_ylim(BOX[2], BOX[3])
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=8)


def plot(nets, rows, x, y, config, widths, path):
    plt = pyplot()
    fig, axes = plt.subplots(2, len(nets), figsize=(3.2 * len(nets), 6.6), squeeze=False)
    for s, (trained, small) in enumerate(nets):
        r = rows[s]
        _draw(axes[0, s], trained, x, y, f"seed {s}: trained {list(widths)}, acc {r['accuracy']:.3f}")
        _draw(axes[1, s], small, x, y, f"compressed {r['compressed_widths']}, acc {r['accuracy_compressed']:.3f}\n"
                                       f"parts: faces {[p['faces'] for p in r['parts']]}")
    fig.suptitle(f"{config.dataset}: decision region (blue), first-layer hyperplanes (black)", fontsize=9)
    save_figure(fig, path)
