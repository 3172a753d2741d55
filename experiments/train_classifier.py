"""Experiment: train an image classifier (``lrjax.models``: MLP or CNN) on an offline dataset with any binding
rules, ``seeds`` seeds as one vmapped program with on-device minibatches.

Every weight is bound by ``rules`` (``"regex=spec; ..."``, first match wins; leaves no rule covers are
trained densely: ``.*=dense()`` is appended), e.g. ``".*kernel=deep(2, scale=0.1)"`` overparameterizes
every kernel by depth, ``".*kernel=lora(8)"`` trains rank-8 updates of a random init. Seed ``s`` draws the
model's init, the binding's init and the data order from ``fold_in(key(seed), s)``. Softmax
cross-entropy; the test set is evaluated every ``eval_every`` steps, when the singular values of every
weight's update ``W(t) - W(0)`` (kernels as materialized, conv kernels matricized) are recorded too.

Metrics: ``test_accuracy`` (final, one per seed) and its median, the best test accuracy over the
evaluations, the final train loss, and per weight the numerical rank (singular values above 1e-3 of the
largest) and effective rank of its final update (median over seeds).
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import analysis, binding, data, dynamics, models, tasks
from lrjax.nets import ACTIVATIONS
from lrjax.optim import optimizer
from lrjax.runs import figure_path, pyplot, save_figure
from lrjax.schema import Choice, Float, Int, Rule, Schema, Seq, Str

OPTIMIZERS = ("sgd", "momentum", "adam")
RANK_RTOL = 1e-3


def _rules(text: str) -> list[tuple[str, str]]:
    return binding.parse_rules(text) + [(".*", "dense()")]


def _model(config):
    return models.make(config.model, config.widths, classes=10, act=config.act)


def _check_binding(model_name, widths, act, dataset, rules) -> bool:
    """Bind the model's parameters abstractly (no arrays made): bad rules or ranks fail here."""
    data.locate(dataset)
    side = 8 if dataset == "digits" else 28
    model = models.make(model_name, widths, classes=10, act=act)
    x = jax.ShapeDtypeStruct((1, side, side, 1), jnp.float32)
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(x.shape, x.dtype))["params"])
    jax.eval_shape(lambda p: binding.bind(p, _rules(rules), key=0).theta, params)
    return True


SCHEMA = Schema(
    dataset=Choice(*data.available()), model=Choice("mlp", "cnn"), widths=Seq(Int(min=1)),
    act=Choice(*sorted(ACTIVATIONS)), rules=Str(), optimizer=Choice(*OPTIMIZERS), lr=Float(gt=0),
    batch_size=Int(min=1), steps=Int(min=1, resume="grow"), seeds=Int(min=1), eval_every=Int(min=1),
    train_size=Int(min=0), seed=Int(min=0), checkpoint_every=Int(min=0, resume="any"),
    checks=[Rule(("eval_every", "steps"), lambda e, s: e <= s, "eval_every must be <= steps"),
            Rule(("train_size", "dataset"), lambda n, d: n <= data.TRAIN_SIZES[d],
                 "train_size must be <= the dataset's training split (0: all of it)"),
            Rule(("batch_size", "train_size", "dataset"), lambda b, n, d: b <= (n or data.TRAIN_SIZES[d]),
                 "batch_size must be <= the number of training examples"),
            Rule(("model", "widths", "act", "dataset", "rules"), _check_binding, "the binding rules do not fit")],
)


def _optimizer(name: str, lr: float) -> optax.GradientTransformation:
    return {"sgd": lambda: optax.sgd(lr), "momentum": lambda: optax.sgd(lr, momentum=0.9),
            "adam": lambda: optax.adam(lr)}[name]()


def load_data(config) -> dict:
    """``{"train": {"x", "y"}, "test": {"x", "y"}}`` as device arrays (the first ``train_size`` examples of
    a fixed permutation of the training split when ``train_size > 0``)."""
    x, y = data.load(config.dataset, "train")
    if config.train_size:
        keep = np.sort(np.random.default_rng(0).permutation(x.shape[0])[:config.train_size])
        x, y = x[keep], y[keep]
    xt, yt = data.load(config.dataset, "test")
    return {"train": {"x": jnp.asarray(x), "y": jnp.asarray(y)}, "test": {"x": jnp.asarray(xt), "y": jnp.asarray(yt)}}


def kernels(bound) -> dict:
    """The materialized kernels of a bound model: ``{path: W}``."""
    return {name: p.materialize(bound.theta[name]) for name, p in bound.params if name.endswith("kernel")}


def run(config, workdir: Path) -> dict:
    model = _model(config)
    d = load_data(config)
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(config.seed), s))(jnp.arange(config.seeds))
    rules = _rules(config.rules)

    def init(k):
        k_model, k_bind = jax.random.split(k)
        params = model.init(k_model, d["train"]["x"][:1])["params"]
        return binding.bind(params, rules, key=k_bind)

    bounds = jax.vmap(init)(keys)
    one = jax.tree.map(lambda a: a[0], bounds)
    tx = optimizer(_optimizer(config.optimizer, config.lr), binding.roles(one))

    def apply(b, x):
        return model.apply({"params": binding.materialize(b)}, x)

    def loss(b, batch, key):
        return tasks.cross_entropy(apply(b, batch["x"]), batch["y"])

    def test(b, dd):
        return tasks.evaluate(apply, b, dd["test"]["x"], dd["test"]["y"])

    recorders = {"test": dynamics.with_data(test), "update_sv": analysis.UpdateSpectra(kernels)}
    chunk = config.eval_every * max(1, 500 // config.eval_every)
    res = dynamics.run(loss, bounds, tx, config.steps, data=d, batches=dynamics.Minibatches(config.batch_size),
                       batched=True, key=jax.random.key(config.seed), record_every=config.eval_every,
                       chunk_size=chunk, recorders=recorders, workdir=Path(workdir),
                       checkpoint_every=config.checkpoint_every, fingerprint=SCHEMA.fixed(config),
                       desc=f"{config.model} {config.dataset}")
    acc = res.records["test/accuracy"]                                   # (seeds, T)
    spectra = {k.split("/", 1)[1]: v for k, v in res.records.items() if k.startswith("update_sv/")}
    ranks = {}
    for name, sv in spectra.items():
        final = sv[:, -1]                                               # (seeds, min(m, n))
        ranks[name] = {"numerical_rank_median": float(np.median(np.sum(final > RANK_RTOL * final[:, :1], -1))),
                       "effective_rank_median": float(np.median(analysis.effective_rank(jnp.asarray(final)))),
                       "full_rank": int(final.shape[-1])}
    np.savez(Path(workdir) / "trajectory.npz", step=res.records["step"], test_accuracy=acc,
             test_loss=res.records["test/loss"], train_loss=res.scalars["loss"],
             **{f"update_sv/{k}": v for k, v in spectra.items()})
    plot_curves(res, config, figure_path(workdir, "loss_and_accuracy"))
    plot_spectra(res.records["step"], spectra, config, figure_path(workdir, "update_spectra"))
    counts = binding.count_params(one)
    window = min(100, res.steps)
    return {"test_accuracy": acc[:, -1].tolist(), "test_accuracy_median": float(np.median(acc[:, -1])),
            "best_test_accuracy_median": float(np.median(acc.max(axis=1))),
            "train_loss_final_median": float(np.median(res.scalars["loss"][:, -window:].mean(axis=1))),
            "update_ranks": ranks, "trainable_params": counts["trainable"] + counts["outer"],
            "steps": res.steps, "steps_per_s": res.steps_per_s, "compile_s": res.compile_time,
            "resumed_from": res.resumed_from}


def _smooth(y: np.ndarray, width: int) -> np.ndarray:
    width = max(1, min(width, y.shape[-1]))
    kernel = np.ones(width) / width
    return np.stack([np.convolve(r, kernel, mode="valid") for r in np.atleast_2d(y)])


def plot_curves(res, config, path):
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    width = max(1, res.steps // 50)
    for s, curve in enumerate(_smooth(res.scalars["loss"], width)):
        a.plot(np.arange(curve.size) + width // 2, curve, lw=0.8, label=f"seed {s}" if s < 8 else None)
    a.set_yscale("log")
    a.set_xlabel("step")
    a.set_title(f"train loss (minibatch {config.batch_size}, moving mean of {width})")
    a.legend(fontsize=7)
    step = res.records["step"]
    for s, curve in enumerate(res.records["test/accuracy"]):
        b.plot(step, curve, marker=".", lw=0.8)
    b.set_xlabel("step")
    b.set_title(f"test accuracy: {config.model} {tuple(config.widths)} on {config.dataset}")
    b.grid(alpha=0.3)
    save_figure(fig, path)


def plot_spectra(step, spectra, config, path):
    """Left: each weight's final update spectrum (seed 0, normalised by its largest value); right: the
    top singular values of the first weight's update over training."""
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, sv in spectra.items():
        s = sv[0, -1]
        a.semilogy(np.arange(1, s.size + 1), np.maximum(s / s[0], 1e-8), ".-", ms=3, lw=0.8, label=name)
    a.axhline(RANK_RTOL, color="k", ls=":", lw=0.8)
    a.set_xlabel("index i")
    a.set_title("singular values of W(T) - W(0) / largest (seed 0)")
    a.legend(fontsize=7)
    first = next(iter(spectra))
    b.semilogy(step[1:], spectra[first][0, 1:, :10], lw=0.9)  # step 0: no update yet
    b.set_xlabel("step")
    b.set_title(f"top 10 singular values of the update of {first}")
    fig.suptitle(f"rules: {config.rules}", fontsize=9)
    save_figure(fig, path)
