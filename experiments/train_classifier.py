"""Experiment: train an image classifier (``lrjax.models``: MLP or CNN) on an offline dataset with any binding
rules, ``seeds`` seeds as one vmapped program with on-device minibatches (``lrjax.studies.classification.train``).

Every weight is bound by ``rules`` (``"regex=spec; ..."``, first match wins; leaves no rule covers are
trained densely), e.g. ``".*kernel=deep(2, scale=0.1)"`` overparameterizes every kernel by depth,
``".*kernel=lora(8)"`` trains rank-8 updates of a random init. Metrics: ``test_accuracy`` (final, one per
seed) and its median, the best test accuracy over the evaluations, the final train loss (mean of the last
100 minibatch losses), and per kernel the numerical rank (singular values above 1e-3 of the largest) and
effective rank of its final update ``W(T) - W(0)`` (medians over seeds); ``adapter_bytes`` and
``merged_params_bytes``: seed 0's files below.

Every seed's trained leaves are saved as an adapter (``lrjax.io.adapters``) in ``adapter/seed_<s>/``:
``adapter.json`` + ``adapter.npz`` (the adapter; ``adapter.json``'s ``base`` holds the hash of the base it
belongs to and the recipe to rebuild that base) and ``merged_params.npz`` (the plain parameter tree it
merges into, one array per parameter path). The base of seed ``s`` is the model init of
``classification.train``: ``model.init(fold_in(fold_in(key(seed), s), 0), x[:1])["params"]`` (not
``model.init(key(seed), ...)``); ``base_params(adapter_dir)`` rebuilds it from the recipe, so
``adapters.load(d, base_params(d))`` gives the trained model, and ``adapters.load`` refuses any other base
(``adapters.WrongBase``) whose frozen arrays differ.
"""
from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import binding, data, models
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.schema import Choice, Float, Int, Rule, Schema, Seq, Str, data_checks
from lrjax.io import adapters
from lrjax.io.files import save_npz
from lrjax.models.param_mlp import ACTIVATIONS
from lrjax.studies import classification


def check_binding(model_name, widths, act, dataset, rules) -> bool:
    """The dataset is installed and the rules bind the model's parameters (abstractly: no arrays made)."""
    data.locate(dataset)
    params = classification.abstract_params(models.make(model_name, widths, classes=10, act=act), dataset)
    classification.check_rules_match(rules, [binding.path_to_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]])
    jax.eval_shape(lambda p: binding.bind(p, classification.with_dense_default(rules), key=0).theta, params)
    return True


SCHEMA = Schema(
    dataset=Choice(*data.available()), model=Choice("mlp", "cnn"), widths=Seq(Int(min=1)),
    act=Choice(*sorted(ACTIVATIONS)), rules=Str(), loss=Choice(*classification.LOSSES),
    optimizer=Choice(*classification.OPTIMIZERS), lr=Float(gt=0), batch_size=Int(min=1),
    steps=Int(min=1, resume="grow"), seeds=Int(min=1), eval_every=Int(min=1), train_size=Int(min=0),
    seed=Int(min=0), checkpoint_every=Int(min=0, resume="any"),
    checks=[*data_checks(),
            Rule(("model", "widths", "act", "dataset", "rules"), check_binding, "the binding rules do not fit")],
)


def run(config, ctx) -> dict:
    model = models.make(config.model, config.widths, classes=10, act=config.act)
    tr = classification.train(model, config.rules, data.load_splits(config.dataset, config.train_size),
                          optimizer_name=config.optimizer, lr=config.lr, batch_size=config.batch_size,
                          steps=config.steps, seeds=config.seeds, eval_every=config.eval_every, seed=config.seed,
                          loss=config.loss, checkpoint=ctx.checkpoints(), desc=f"{config.model} {config.dataset}")
    res, acc = tr.result, tr.evaluation
    ctx.save_arrays(step=tr.step, test_accuracy=acc, test_loss=tr.records["test/loss"],
             train_loss=res.scalars["loss"], **{f"update_sv/{k}": v for k, v in classification.update_spectra(tr).items()})
    plot_curves(res, tr, config, ctx.figure("loss_and_accuracy"))
    plot_spectra(tr.step, classification.update_spectra(tr), f"rules: {config.rules}", ctx.figure("update_spectra"))
    counts = binding.count_params(tr.initial)
    for s in range(config.seeds):
        directory = ctx.workdir / "adapter" / f"seed_{s}"
        recipe = {"model": config.model, "widths": list(config.widths), "act": config.act, "classes": 10,
                  "dataset": config.dataset, "seed": config.seed, "member": s,
                  "init": "model.init(fold_in(fold_in(key(seed), member), 0), zeros((1, *data.IMAGE_SHAPES[dataset])))"}
        adapters.save(directory, jax.tree.map(lambda a: a[s], tr.params), base_recipe=recipe)
        loaded = adapters.load(directory, base_params(directory))      # WrongBase if the recipe were wrong
        save_npz(directory / "merged_params.npz", **{n: np.asarray(w) for n, w in zip(
            [n for n, _ in loaded.params], jax.tree.leaves(binding.materialize(loaded)))})
    first = ctx.workdir / "adapter" / "seed_0"
    window = min(100, res.steps)
    return {"test_accuracy": acc[:, -1].tolist(), "test_accuracy_median": float(np.median(acc[:, -1])),
            "best_test_accuracy_median": float(np.median(acc.max(axis=1))),
            "train_loss_final_median": float(np.median(res.scalars["loss"][:, -window:].mean(axis=1))),
            "update_ranks": classification.update_ranks(classification.update_spectra(tr)),
            "trainable_params": counts["trainable"] + counts["outer"], "adapter_bytes": sum(adapters.sizes(first).values()),
            "merged_params_bytes": (first / "merged_params.npz").stat().st_size, "steps": res.steps,
            "steps_per_s": res.steps_per_s, "compile_s": res.compile_time, "resumed_from": res.resumed_from}


def base_params(directory):
    """The base parameters the adapter in ``directory`` (``adapter/seed_<s>``) was trained from, rebuilt from
    the recipe in its ``adapter.json``: seed ``s``'s model init in ``classification.train``."""
    r = json.loads((Path(directory) / "adapter.json").read_text())["base"]["recipe"]
    model = models.make(r["model"], r["widths"], classes=r["classes"], act=r["act"])
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(r["seed"]), r["member"]), 0)
    return model.init(key, jnp.zeros((1, *data.IMAGE_SHAPES[r["dataset"]])))["params"]


def _smooth(y: np.ndarray, width: int) -> np.ndarray:
    width = max(1, min(width, y.shape[-1]))
    kernel = np.ones(width) / width
    return np.stack([np.convolve(r, kernel, mode="valid") for r in np.atleast_2d(y)])


def plot_curves(res, tr, config, path):
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    width = max(1, res.steps // 50)
    for s, curve in enumerate(_smooth(res.scalars["loss"], width)):
        a.plot(np.arange(curve.size) + width // 2, curve, lw=0.8, label=f"seed {s}" if s < 8 else None)
    a.set_yscale("log")
    a.set_xlabel("step")
    a.set_title(f"train loss (minibatch {config.batch_size}, moving mean of {width})")
    a.legend(fontsize=7)
    for curve in tr.evaluation:
        b.plot(tr.step, curve, marker=".", lw=0.8)
    b.set_xlabel("step")
    b.set_title(f"test accuracy: {config.model} {tuple(config.widths)} on {config.dataset}")
    b.grid(alpha=0.3)
    save_figure(fig, path)


def plot_spectra(step, spectra, title, path):
    """Left: each kernel's final update spectrum (seed 0, over its largest value); right: the top singular
    values of the first kernel's update over training."""
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, sv in spectra.items():
        s = sv[0, -1]
        if not s[0] > 0:
            continue           # a frozen kernel: no update to plot
        a.semilogy(np.arange(1, s.size + 1), np.maximum(s / s[0], 1e-8), ".-", ms=3, lw=0.8, label=name)
    a.axhline(classification.RANK_RTOL, color="k", ls=":", lw=0.8)
    a.set_xlabel("index i")
    a.set_title("singular values of W(T) - W(0) / largest (seed 0)")
    a.legend(fontsize=7)
    first = next((k for k, v in spectra.items() if v[0, -1, 0] > 0), next(iter(spectra)))   # a kernel that trained
    b.semilogy(step[1:], spectra[first][0, 1:, :10], lw=0.9)  # step 0: no update yet
    b.set_xlabel("step")
    b.set_title(f"top 10 singular values of the update of {first}")
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)
