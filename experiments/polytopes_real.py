"""Experiment: how many polytopes and faces cover each class of real images, one-vs-all (Lee, Mammadov, Ye,
ICML 2024, Sec. 5: "at most 2 polytopes of at most 30 faces" on MNIST and Fashion-MNIST).

Data: ``n`` training images of ``dataset`` (a fixed ``default_rng(0)`` subset; the authors
train on all 60,000: leeleesang/Defining_NN 3f58a74 ``real_world_random_label.ipynb`` cell 0, ``n = 60000``),
flattened and standardised by the training mean and std; the test split for test accuracy. For every
class ``c`` (labels ``y == c``, no resampling; the loss is the class-balanced BCE with logits, the mean over
class ``c`` plus the mean over the rest, the authors' lambda = 1) and every ``(polytopes K, faces m)`` of the
grid, a sign-constrained cover network (``lrjax.polytope.cover_net``: ``K`` polytopes of ``m`` faces) is
trained, all classes as one program (Adam ``lr``, ``steps``; full batch, or minibatches of ``batch_size``
drawn on the device, one draw shared by the classes). The classes' networks are stacked on a leading axis
and the loss is the sum of their losses: Adam is elementwise, so each class trains exactly as alone, and the
images are held once, not once per class. Every training run checkpoints and resumes.

- ``faces_needed[c]``: the smallest ``(K, m)`` (``m``: hidden units per polytope, its faces) (fewest polytopes first, then fewest faces) whose training
  accuracy reaches ``target``, or ``None``;
- ``rows``: per ``(K, m)`` and class, training / test accuracy, sign violations (``v >= 0``: the polytope
  constraint broken), and the widths and accuracy after ``compress.compress`` (remove, merge, redundant,
  rescale);
- ``sparsity``: at the largest grid point, first-layer weights pruned by magnitude to ``sparsity`` and
  retrained from their initial values under the mask (a lottery-ticket rewind), the kept weights starting
  with their initial signs (``kept``) or the opposite signs (``flipped``); plus the trained network pruned
  without retraining (``pruned``). Training accuracy per class for each.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import data, dynamics
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.schema import Choice, Float, Int, Rule, Schema, Seq
from lrjax.polytope import compress, cover_net

SCHEMA = Schema(
    dataset=Choice(*data.available()), n=Int(min=10), classes=Seq(Int(min=0, max=9), distinct=True),
    faces=Seq(Int(min=1), distinct=True), polytopes=Seq(Int(min=1, max=cover_net.MAX_POLYTOPES), distinct=True), lr=Float(gt=0), steps=Int(min=1), target=Float(gt=0, le=1),
    sparsity=Float(gt=0, lt=1), seed=Int(min=0), min_weight=Float(ge=0), batch_size=Int(min=0),
    checkpoint_every=Int(min=0, resume="any"),
    checks=[Rule(("dataset",), lambda d: bool(data.locate(d)), "the dataset must be installed"),
            Rule(("n", "dataset"), lambda n, d: n <= data.TRAIN_SIZES[d], "n must be <= the training split"),
            Rule(("batch_size", "n"), lambda b, n: b <= n, "batch_size must be <= n (0: full batch)")],
)


def balanced_bce(params, x, pos):
    """Mean BCE over the positives plus mean BCE over the negatives of one cover network: ``x (n, d)``,
    ``pos (n,)`` in {0, 1}."""
    loss = optax.sigmoid_binary_cross_entropy(cover_net.logits(params, x), pos)
    return jnp.sum(loss * pos) / jnp.maximum(pos.sum(), 1) + jnp.sum(loss * (1 - pos)) / jnp.maximum((1 - pos).sum(), 1)


def one_vs_all_loss(classes, mask=None):
    """``loss(stacked, batch)``: the sum over ``classes`` of ``balanced_bce`` of class ``c``'s network
    (``stacked``: every leaf with a leading class axis) on ``batch = {"x": (n, d), "y": (n,) labels}``;
    ``mask (classes, d, K m)`` multiplies the first-layer weights (pruning)."""
    ids = jnp.asarray(classes)

    def loss(stacked, batch, key=None):
        p = stacked if mask is None else {**stacked, "w": stacked["w"] * mask}
        per_class = jax.vmap(lambda q, c: balanced_bce(q, batch["x"], (batch["y"] == c).astype(jnp.float32)))
        return jnp.sum(per_class(p, ids))
    return loss


def accuracy(params, x, y) -> float:
    """Accuracy of a cover network on (x, y), through its plain layers (``compress.accuracy``, float64)."""
    return compress.accuracy(cover_net.layers(params), x, y)


def _load(config):
    x, y = data.load(config.dataset, "train")
    keep = np.sort(np.random.default_rng(0).permutation(len(y))[:config.n])
    x, y = x[keep].reshape(config.n, -1), y[keep]
    xt, yt = data.load(config.dataset, "test")
    mean, std = x.mean(0), x.std() + 1e-6
    return (x - mean) / std, y, (xt.reshape(len(yt), -1) - mean) / std, yt


def _train(params, x, y, config, checkpoint, mask=None, desc=""):
    """Train the stacked one-vs-all cover networks (leading class axis) on images ``x`` with labels ``y``."""
    loss = one_vs_all_loss(config.classes, None if mask is None else jnp.asarray(mask))
    options = dict(data={"x": x, "y": y})
    if config.batch_size:
        options = dict(data={"train": {"x": x, "y": y}}, batches=dynamics.Minibatches(config.batch_size),
                       key=jax.random.fold_in(jax.random.key(config.seed), 7))
    res = dynamics.run(loss, params, optax.adam(config.lr), config.steps, chunk_size=min(config.steps, 1000),
                       checkpoint=checkpoint, desc=desc, **options)
    return res.params


def run(config, ctx) -> dict:
    x, y, xt, yt = _load(config)
    classes = list(config.classes)
    ys, yts = np.stack([y == c for c in classes]), np.stack([yt == c for c in classes])
    key = jax.random.key(config.seed)
    rows, grid = [], [(kk, m) for kk in sorted(config.polytopes) for m in sorted(config.faces)]
    inits, trained = {}, {}
    for kk, m in grid:
        inits[kk, m] = jax.vmap(lambda k: cover_net.init(k, x.shape[1], m, kk))(
            jax.random.split(jax.random.fold_in(key, 1000 * kk + m), len(classes)))
        trained[kk, m] = _train(inits[kk, m], x, y, config, ctx.checkpoints(f"K{kk}_m{m}", polytopes=kk, faces=m),
                                desc=f"K={kk} faces={m}")
        for i, c in enumerate(classes):
            p = jax.tree.map(lambda a: a[i], trained[kk, m])
            small, _ = compress.compress(cover_net.layers(p), x, ys[i], config.min_weight)
            rows.append({"class": c, "polytopes": kk, "faces": m, "train_accuracy": accuracy(p, x, ys[i]),
                         "test_accuracy": accuracy(p, xt, yts[i]), "sign_violations": cover_net.sign_violations(p),
                         "compressed_widths": compress.widths(small),
                         "compressed_accuracy": compress.accuracy(small, x, ys[i])})
    needed = {}
    for c in classes:
        hit = [r for r in rows if r["class"] == c and r["train_accuracy"] >= config.target]
        needed[str(c)] = min(((r["polytopes"], r["faces"]) for r in hit), default=None)
    big = grid[-1]
    sparsity = _sparsity(inits[big], trained[big], x, y, ys, config, ctx)
    plot(rows, grid, classes, config, ctx.figure("faces_needed"))
    return {"faces_needed": needed, "rows": rows, "sparsity": sparsity, "sparsity_at": list(big),
            "train_accuracy_max": {str(c): max(r["train_accuracy"] for r in rows if r["class"] == c) for c in classes},
            "target": config.target, "n": config.n}


def _sparsity(init, trained, x, y, ys, config, ctx) -> dict:
    """Prune the first layer of ``trained`` to ``config.sparsity`` by magnitude; accuracies (module docstring)."""
    w = np.asarray(trained["w"])                                               # (classes, d, K m)
    cut = np.quantile(np.abs(w).reshape(w.shape[0], -1), config.sparsity, axis=1)[:, None, None]
    mask = (np.abs(w) > cut).astype(np.float32)
    acc = lambda params: [accuracy(jax.tree.map(lambda a: a[i], params), x, ys[i])  # noqa: E731
                          for i in range(len(config.classes))]
    out = {"sparsity": config.sparsity, "density": float(mask.mean()),
           "trained": acc(trained), "pruned": acc({**trained, "w": trained["w"] * mask})}
    for name, sign in (("kept", 1.0), ("flipped", -1.0)):
        start = {**init, "w": init["w"] * sign}
        final = _train(start, x, y, config, ctx.checkpoints(f"rewind_{name}", rewind=name), mask=mask,
                       desc=f"rewind, signs {name}")
        out[name] = acc({**final, "w": final["w"] * mask})
    return out


def plot(rows, grid, classes, config, path):
    plt = pyplot()
    fig, ax = plt.subplots(1, 1, figsize=(7, 4))
    for kk in sorted({k for k, _ in grid}):
        faces = sorted({m for k, m in grid if k == kk})
        for c in classes:
            accs = [next(r["train_accuracy"] for r in rows if r["class"] == c and r["polytopes"] == kk and r["faces"] == m)
                    for m in faces]
            ax.plot(faces, accs, "o-" if kk == 1 else "s--", ms=3, lw=0.8, c=f"C{c % 10}",
                    label=f"class {c}" if kk == min(k for k, _ in grid) else None)
    ax.axhline(config.target, c="k", lw=0.8, ls=":")
    ax.set_xlabel("faces per polytope (solid: 1 polytope, dashed: 2)")
    ax.set_ylabel("training accuracy (one vs all)")
    ax.set_title(f"{config.dataset}, {config.n} images: sign-constrained cover networks", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    save_figure(fig, path)
