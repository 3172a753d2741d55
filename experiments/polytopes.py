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

``loss``: ``bce`` (default) or ``mse`` (squared error of ``sigmoid(logit)`` to the 0/1 label).

``compress_during_training=True`` (default False: the above) compresses *during* training as the authors'
notebooks do (``lrjax.polytope.pruning``, their Algorithm 4 of ``polytope_in_order.ipynb``): each seed
builds a polytope-basis cover one sign-constrained 2-layer polytope network at a time (``faces`` faces to
start, Adam ``prune_lr`` for up to ``prune_steps`` steps, the authors' ``pruning`` every ``prune_every``
steps after ``prune_start`` with a fresh Adam state, a polytope failing on a sign flip or on losing every face,
stopping once it encloses its class after ``stop_after``; ``lam``: the enclosed class's loss weight;
``attempts`` polytopes tried per seed; ``literal``: the authors' redundant-face score and rescaling band as
written). lrjax's 3-layer network is then that cover (``pruning.layers``): first width = the kept polytopes'
faces, second = the number of polytopes; ``widths`` is not used. ``compressed_widths`` are the widths it
reached; ``accuracy`` is the cover's own decision and ``accuracy_compressed`` its 3-layer network's (equal but
for points in the ``1e-3`` band around a face); ``matches_theory``: the theory's widths with training accuracy >= 0.99.
Extra metrics: ``polytope_faces`` (faces per kept polytope), ``complete`` (the cover ended with one class
left), ``failed_attempts``, ``train_seconds``. Datasets without a theory report ``reference_widths`` where
the authors show one (two circles: the quadrilateral of their README, leeleesang/Defining_NN 3f58a74
``README.md`` lines 19-20; Swiss roll: 2 -> 16 -> 4 -> 1, the README's Algorithm-4 example, line 61, whose
data set is not named there: Swiss roll is inferred from ``polytope_in_order.ipynb``, the Algorithm-4
notebook, whose cell 0 sets ``dataset = "Swiss"``). No checkpoints in this mode.
"""
from __future__ import annotations

import dataclasses
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import dynamics, polytope
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.schema import Bool, Choice, Float, Int, Schema, Seq
from lrjax.polytope import compress, pruning, toys
from lrjax.polytope.training import LOSSES, init

# swiss_roll: ../shared/REFERENCE.md section 4 (perhaps the paper's Fig. 1, unread here); others (16, 4)
DEFAULT_WIDTHS = {"swiss_roll": (20, 4)}
BOX = (-2.0, 2.0, -2.0, 2.0)
REFERENCE = {"two_circles": [4, 1], "swiss_roll": [16, 4]}   # the authors' README (module docstring)


SCHEMA = Schema(
    dataset=Choice(*toys.NAMES), widths=Seq(Int(min=1), optional=True), n=Int(min=10), lr=Float(gt=0),
    steps=Int(min=1), seeds=Int(min=1), seed=Int(min=0), min_weight=Float(ge=0),
    checkpoint_every=Int(min=0, resume="any"), loss=Choice(*LOSSES),
    compress_during_training=Bool(), faces=Int(min=1), prune_lr=Float(gt=0), prune_steps=Int(min=1),
    prune_every=Int(min=1), prune_start=Int(min=0), stop_after=Int(min=0), lam=Float(gt=0), attempts=Int(min=1),
    literal=Bool(),
)


def _accuracy(params, x, y) -> float:
    return float(np.mean(np.asarray(polytope.inside(params, np.asarray(x, np.float64))) == (np.asarray(y) > 0)))


def run(config, ctx) -> dict:
    if config.compress_during_training:
        return run_during(config, ctx)
    widths = tuple(config.widths or DEFAULT_WIDTHS.get(config.dataset, (16, 4)))
    key = jax.random.key(config.seed)
    x, y = toys.make(config.dataset, config.n, jax.random.fold_in(key, 0))
    xt, yt = toys.make(config.dataset, config.n, jax.random.fold_in(key, 1))
    params = jax.vmap(lambda k: init(k, widths))(jax.random.split(jax.random.fold_in(key, 2), config.seeds))
    res = dynamics.run(LOSSES[config.loss], params, optax.adam(config.lr), config.steps,
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
        acc = _accuracy
        row = {"accuracy": acc(trained, x, y), "accuracy_compressed": acc(small, x, y),
               "test_accuracy": acc(trained, xt, yt), "test_accuracy_compressed": acc(small, xt, yt),
               "compressed_widths": compress.widths(small), "stages": report,
               "parts": [{"faces": len(c.faces), "convex": c.convex, "area": c.area} for c in parts]}
        if theory:
            row["matches_theory"] = (row["compressed_widths"] == [sum(theory["faces"]), theory["polytopes"]]
                                     and row["accuracy_compressed"] >= row["accuracy"] - 0.01)
        rows.append(row)
        nets.append((trained, small))
    plot(nets[:4], rows, x, y, config, f"trained {list(widths)}", ctx.figure("regions"))
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


def plot(nets, rows, x, y, config, label, path):
    """Per seed the trained network (top) and the compressed one (bottom); ``small=None`` (pruned during
    training: the trained network is the compressed one) draws the bottom row only."""
    plt = pyplot()
    both = all(small is not None for _, small in nets)
    fig, axes = plt.subplots(1 + both, len(nets), figsize=(3.2 * len(nets), 3.3 * (1 + both) + 0.4 * (not both)), squeeze=False)
    for s, (trained, small) in enumerate(nets):
        r = rows[s]
        if both:
            _draw(axes[0, s], trained, x, y, f"seed {s}: {label}, acc {r['accuracy']:.3f}")
        prefix = "" if both else f"seed {s}, {label}\n"
        _draw(axes[-1, s], small if both else trained, x, y,
              f"{prefix}compressed {r['compressed_widths']}, "
              f"acc {r['accuracy_compressed']:.3f}\nparts: faces {[p['faces'] for p in r['parts']]}")
    fig.suptitle(f"{config.dataset}: decision region (blue), first-layer hyperplanes (black)", fontsize=9)
    save_figure(fig, path)


def run_during(config, ctx) -> dict:
    """``compress_during_training``: every seed's polytope-basis cover by the authors' Algorithm 4 (module
    docstring), all seeds one vmapped program per attempt."""
    key = jax.random.key(config.seed)
    x, y = toys.make(config.dataset, config.n, jax.random.fold_in(key, 0))
    xt, yt = toys.make(config.dataset, config.n, jax.random.fold_in(key, 1))
    sc = pruning.Schedule(steps=config.prune_steps, lr=config.prune_lr, every=config.prune_every,
                          start=config.prune_start, stop_after=config.stop_after, lam=config.lam,
                          literal=config.literal, loss=config.loss)
    keys = jax.random.split(jax.random.fold_in(key, 2), config.seeds)
    covers, seconds = pruning.find_covers(keys, x, y, config.faces, sc, config.attempts)
    theory = toys.GEOMETRY.get(config.dataset)
    yn = np.asarray(y) > 0
    rows, nets = [], []
    for cover in covers:
        net = pruning.layers(cover, x.shape[1])
        parts = polytope.components(net, BOX) if cover.polytopes else []
        row = {"accuracy": float(np.mean(cover.predict(x) == yn)), "accuracy_compressed": _accuracy(net, x, y),
               "test_accuracy": float(np.mean(cover.predict(xt) == (np.asarray(yt) > 0))),
               "test_accuracy_compressed": _accuracy(net, xt, yt), "compressed_widths": cover.widths,
               "polytope_faces": [len(q["v"]) for q in cover.polytopes],
               "enclosed_labels": [q["e"] for q in cover.polytopes], "complete": cover.complete,
               "attempts": cover.attempts, "failed_attempts": sum(not a["kept"] for a in cover.attempts),
               "parts": [{"faces": len(c.faces), "convex": c.convex, "area": c.area} for c in parts]}
        if theory:
            row["matches_theory"] = (row["compressed_widths"] == [sum(theory["faces"]), theory["polytopes"]]
                                     and row["accuracy"] >= 0.99)
        rows.append(row)
        nets.append((net, None))
    plot(nets[:4], rows, x, y, config, "pruned during training", ctx.figure("regions"))
    keys_out = ("accuracy", "accuracy_compressed", "test_accuracy", "test_accuracy_compressed", "compressed_widths",
                "polytope_faces", "enclosed_labels", "complete", "failed_attempts", "parts", "attempts")
    out = {k: [r[k] for r in rows] for k in keys_out}
    out.update({"faces_start": config.faces, "train_seconds": seconds,
                "accuracy_median": float(np.median(out["accuracy"])),
                "accuracy_compressed_median": float(np.median(out["accuracy_compressed"]))})
    if theory:
        out["theory"] = {"widths": [sum(theory["faces"]), theory["polytopes"]], "faces": theory["faces"]}
        out["success_rate"] = float(np.mean([r["matches_theory"] for r in rows]))
    if config.dataset in REFERENCE:
        out["reference_widths"] = REFERENCE[config.dataset]
    return out
