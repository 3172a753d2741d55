"""Experiment: intrinsic dimension (Li et al. 2018, arXiv 1804.08838). Train a network only in a random
``d``-dimensional subspace of its ``D`` parameters, ``theta = theta_0 + P z`` (``lrjax.studies.intrinsic_dimension.GlobalSubspace``,
``P`` dense, sparse or Fastfood), for each ``d`` of a coarse sweep, then bisect between the largest failing and
the smallest passing ``d``; ``d_int90`` is the smallest ``d`` whose median test accuracy reaches 90% of the
directly trained network's (the baseline, trained by the same code with every leaf ``dense()``).

``widths=None`` takes the model's default: the MLP 784-200-200-10 (Li et al.'s FC network, ``D = 199,210``),
the CNN conv 6, conv 16, dense 120 (3x3 kernels, 2x2 average pooling; LeNet-sized, ``D = 96,350`` on 28x28).
Each ``d`` (and the baseline) is one program with its ``seeds`` vmapped (a CNN on a CPU runs them in turn
inside the program, see ``lrjax.studies.classification``); every seed draws its own
``theta_0`` and ``P``. Metrics: ``baseline_accuracy``, ``accuracy_by_dim`` (``d -> median`` final test
accuracy), ``accuracy_by_dim_seeds``, ``threshold``, ``d_int90`` (``null`` when no ``d`` reaches it),
the order the dims were run in, ``D``, ``ms_per_step`` and the paper's numbers for comparison.

``model=minilm`` (with ``dataset=sentiment``, and only with it) is Aghajanyan et al.'s question (arXiv
2012.13255) on a pretrained language model: all-MiniLM-L6-v2, mean pooled, with a fresh linear head, on Rotten
Tomatoes sentiment (``lrjax.studies.said_text``). The baseline is full fine-tuning (every encoder tensor and the
head, Adam at ``baseline_lr``); subspace training projects ``z`` onto all ``D = 22,566,146`` parameters, the
encoder's (word, position and token-type embeddings and every LayerNorm included) and the head's, as
Aghajanyan et al. project the whole model. ``said=True`` is their SAID,
``theta_i = theta_0,i + lambda_i P(z)_i``: one learned ``lambda_i`` (from 1) per tensor ``i`` (103 here),
taken out of the ``d`` trained scalars so that ``z`` has ``d - 103``; ``P(z)_i`` is tensor ``i``'s slice of
one Fastfood projection of all ``D`` (their equation: one ``P``, sliced per tensor). ``normalize``: with
``global`` every column of that ``P`` has norm ~1 over all ``D`` (Li et al.), so the head (770 of 22.6M
parameters) moves ~170x less per unit of ``z`` than with ``tensor`` (MiniLM's default), which scales each
slice to columns of norm ~1, as the code credited to Aghajanyan et al. does by drawing one Fastfood per
tensor (``lrjax.studies.intrinsic_dimension``). Measured here (2-core CPU, d = 1000, SAID, batch 32): ``global``
at ``lr`` 0.01 stayed at chance for 100 steps (held-out 0.57-0.60), ``tensor`` learned (training loss 0.71 to
0.55 in 60 steps at ``lr`` 0.002). ``max_length`` tokens per snippet, ``test_size`` held-out snippets (a fixed
subset). The model's defaults (``None`` keys: ``MODEL_DEFAULTS``) are sized for this 2-core CPU, where a
Fastfood step over ``D`` costs ~3x a full fine-tuning step. ``paper_d_int90`` then holds Aghajanyan et al.'s
Table 1 (d90 on MRPC and QQP, SAID and DID) for BERT and RoBERTa, ``paper_source`` where it was read;
``test_accuracy_curves`` the held-out accuracy every ``eval_every`` steps of each run, ``settings`` the
resolved keys, ``tensors`` the number of tensors.
"""
from __future__ import annotations

import time

import jax
import numpy as np

from lrjax import data, models
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.schema import Bool, Choice, Float, Int, Rule, Schema, Seq
from lrjax.param.projection import KINDS
from lrjax.studies import classification, intrinsic_dimension, said_text

# Li et al. 2018, Table 1 / Section 3 (full MNIST 60k, CIFAR-10): d_int90, as ../shared/REFERENCE.md section 3
# transcribes them (the paper itself is not stored here)
PAPER_D_INT90 = {"mnist_fc_784-200-200-10": 750, "mnist_lenet": 290, "cifar10_fc": 9000, "cifar10_lenet": 2900}
# Aghajanyan et al. 2020 (arXiv 2012.13255v1), Table 1: d90 of fine-tuning on MRPC and QQP, SAID and DID (90% of
# full fine-tuning's accuracy). Not read from the paper itself here: transcribed from a public summary of v1 whose
# table gives all 16 values (lrjax's code-search index, file id 61380757055); the SAID values of BERT-Base
# (1608 / 8030) and RoBERTa-Large (207 / 774) agree with a second, independent note citing Table 1 (file id
# 70803727191), and the abstract's "200 trainable parameters ... RoBERTa ... 90% ... on MRPC" with RoBERTa-Large's 207.
PAPER_SAID = {
    "SAID": {"BERT-Base": {"MRPC": 1608, "QQP": 8030}, "BERT-Large": {"MRPC": 1037, "QQP": 1200},
             "RoBERTa-Base": {"MRPC": 896, "QQP": 896}, "RoBERTa-Large": {"MRPC": 207, "QQP": 774}},
    "DID": {"BERT-Base": {"MRPC": 1861, "QQP": 9295}, "BERT-Large": {"MRPC": 2493, "QQP": 1389},
            "RoBERTa-Base": {"MRPC": 1000, "QQP": 1389}, "RoBERTa-Large": {"MRPC": 322, "QQP": 774}},
}
PAPER_SAID_SOURCE = ("Aghajanyan, Zettlemoyer, Gupta, arXiv 2012.13255v1, Table 1, as transcribed in a public summary "
                     "of the paper (all 16 values; SAID BERT-Base and RoBERTa-Large confirmed by a second note)")
FRACTION = 0.9
DEFAULT_WIDTHS = {"mlp": (200, 200), "cnn": (6, 16, 120)}   # Li et al.'s FC network; a LeNet-sized CNN
_IMAGE = dict(dims=(100, 200, 400, 800, 1600), normalize="global", lr=0.1, baseline_lr=1e-3, batch_size=128,
              steps=2000, seeds=3, eval_every=500, max_length=None, test_size=None)
# model=minilm: sized for a 2-core CPU (module docstring; docs/results.md): a Fastfood step over D = 22.6M costs
# 2-3x a full fine-tuning step there; 400 steps (~1.25 epochs): at 150 no d <= 4,000 reached 90% of direct
MODEL_DEFAULTS = {"mlp": _IMAGE, "cnn": _IMAGE,
                  "minilm": dict(dims=(250, 1000, 4000), normalize="tensor", lr=0.005, baseline_lr=5e-5,
                                 batch_size=32, steps=400, seeds=1, eval_every=100, max_length=40, test_size=1000)}
RESOLVED = tuple(MODEL_DEFAULTS["mlp"])


def setting(config, key: str):
    """``config[key]``, or the model's default where it is ``None``."""
    return MODEL_DEFAULTS[config.model][key] if config[key] is None else config[key]


def _default(key, value, model):
    return MODEL_DEFAULTS[model][key] if value is None else value


def widths_of(model_name, widths) -> tuple:
    """``widths``, or the model's default when it is ``None``."""
    return tuple(DEFAULT_WIDTHS[model_name] if widths is None else widths)


def abstract_params(model_name, widths, dataset):
    """The model's parameter tree as shapes (nothing allocated)."""
    if model_name == "minilm":
        from lrjax.models import bert
        return said_text.abstract_params(bert.BertConfig.from_json(bert.minilm_dir() / "config.json"))
    return classification.abstract_params(models.make(model_name, widths_of(model_name, widths), classes=10, act="relu"),
                                      dataset)


def _dims_fit(dims, model_name, widths, dataset, said) -> bool:
    params = abstract_params(model_name, widths, dataset)
    D = intrinsic_dimension.num_float_params(params)
    for d in _default("dims", dims, model_name):
        if d > D:
            return False
        intrinsic_dimension.GlobalSubspace(d, said=said).z_dim(params)          # SAID: d > number of tensors
    return True


DENSE_LIMIT_BYTES = 2 ** 30


def _dense_fits(projection, dims, seeds, model_name, widths, dataset) -> bool:
    """A dense ``P`` (regenerated every step) is ``4 D d`` bytes per seed: refused above ``DENSE_LIMIT_BYTES``."""
    if projection != "dense":
        return True
    D = intrinsic_dimension.num_float_params(abstract_params(model_name, widths, dataset))
    return 4 * D * max(_default("dims", dims, model_name)) * _default("seeds", seeds, model_name) <= DENSE_LIMIT_BYTES


def _train_split(dataset) -> int:
    return said_text.TRAIN_SPLIT if dataset == "sentiment" else data.TRAIN_SIZES[dataset]


def _installed(dataset) -> bool:
    return said_text.installed() if dataset == "sentiment" else bool(data.locate(dataset))


SCHEMA = Schema(
    dataset=Choice(*data.available(), "sentiment"), model=Choice("mlp", "cnn", "minilm"),
    widths=Seq(Int(min=1), optional=True), projection=Choice(*KINDS),
    dims=Seq(Int(min=1), distinct=True, optional=True), normalize=Choice(*intrinsic_dimension.NORMALIZE, optional=True),
    bisect=Int(min=0), said=Bool(),
    optimizer=Choice(*classification.OPTIMIZERS), lr=Float(gt=0, optional=True),
    baseline_lr=Float(gt=0, optional=True), batch_size=Int(min=1, optional=True),
    steps=Int(min=1, optional=True), seeds=Int(min=1, optional=True), eval_every=Int(min=1, optional=True),
    train_size=Int(min=0), max_length=Int(min=4, max=256, optional=True),
    test_size=Int(min=0, max=said_text.TEST_SPLIT, optional=True), seed=Int(min=0),
    checkpoint_every=Int(min=0, resume="any"),
    checks=[Rule(("model", "dataset"), lambda m, d: (m == "minilm") == (d == "sentiment"),
                 "model=minilm fine-tunes on dataset=sentiment only, and dataset=sentiment needs model=minilm "
                 "(mlp and cnn train on the image datasets)"),
            Rule(("model", "widths", "max_length", "test_size"),
                 lambda m, w, n, t: (w is None) if m == "minilm" else (n is None and t is None),
                 "widths applies to mlp and cnn only, max_length and test_size to minilm only: leave the others None"),
            Rule(("dataset",), _installed, "the dataset must be installed"),
            Rule(("eval_every", "steps", "model"),
                 lambda e, s, m: _default("eval_every", e, m) <= _default("steps", s, m), "eval_every must be <= steps"),
            Rule(("train_size", "dataset"), lambda n, d: n <= _train_split(d),
                 "train_size must be <= the dataset's training split (0: all of it)"),
            Rule(("batch_size", "train_size", "dataset", "model"),
                 lambda b, n, d, m: _default("batch_size", b, m) <= (n or _train_split(d)),
                 "batch_size must be <= the number of training examples"),
            Rule(("dims", "model", "widths", "dataset", "said"), _dims_fit,
                 "every d must be <= the number of parameters D (with said, > the number of tensors)"),
            Rule(("projection", "dims", "seeds", "model", "widths", "dataset"), _dense_fits,
                 "a dense projection needs 4 D d bytes per seed at every step, over 1 GiB here: use "
                 "projection=sparse or fastfood, or smaller dims")],
)


def trainer(config, ctx):
    """``(fit(name, weights, lr) -> recipe.Training, D)`` for the configured model and data."""
    s = {k: setting(config, k) for k in RESOLVED}
    common = dict(optimizer_name=config.optimizer, batch_size=s["batch_size"], steps=s["steps"], seeds=s["seeds"],
                  eval_every=s["eval_every"], seed=config.seed)
    if config.model == "minilm":
        from lrjax.models import bert
        encoder = bert.load_minilm()
        splits = said_text.load(encoder, config.train_size, s["test_size"], s["max_length"])
        D = intrinsic_dimension.num_float_params(said_text.abstract_params(encoder.config))

        def fit(name, weights, lr):
            return said_text.train(weights, splits, encoder, lr=lr, checkpoint=ctx.checkpoints(name, run=name),
                                   desc=name, **common)
        return fit, D
    splits = data.load_splits(config.dataset, config.train_size)
    widths = widths_of(config.model, config.widths)
    model = models.make(config.model, widths, classes=10, act="relu")
    D = intrinsic_dimension.num_float_params(abstract_params(config.model, widths, config.dataset))

    def fit(name, weights, lr):
        return classification.train(model, weights, splits, lr=lr, checkpoint=ctx.checkpoints(name, run=name),
                                    desc=name, spectra=False, **common)
    return fit, D


def run(config, ctx) -> dict:
    s = {k: setting(config, k) for k in RESOLVED}
    fit, D = trainer(config, ctx)
    text = config.model == "minilm"
    t0 = time.perf_counter()

    def train(name, weights, lr):
        tr = fit(name, weights, lr)
        acc = tr.evaluation[:, -1]
        if text:
            print(f"intrinsic_dimension: {name}: test accuracy {np.median(acc):.4f} ({tr.seconds:.0f} s, "
                  f"{tr.ms_per_step:.0f} ms/step; {time.perf_counter() - t0:.0f} s so far)", flush=True)
        speed = 1e3 / tr.ms_per_step if np.isfinite(tr.ms_per_step) else None   # (every process, as ms_per_step)
        return acc, speed, tr.ms_per_step, np.median(np.asarray(tr.evaluation), 0)

    baseline_seeds, baseline_speed, baseline_ms, baseline_curve = train("baseline", ".*=dense()", s["baseline_lr"])
    baseline = float(np.median(baseline_seeds))
    by_dim, speeds, ms, curves, order = {}, {}, {}, {}, []

    def at(d):
        by_dim[d], speeds[d], ms[d], curves[d] = train(
            f"d{d}", intrinsic_dimension.GlobalSubspace(d, config.projection, said=config.said,
                                                        normalize=s["normalize"]), s["lr"])
        order.append(d)

    for d in sorted(s["dims"]):
        at(d)
    medians = lambda: {d: float(np.median(a)) for d, a in by_dim.items()}
    for _ in range(config.bisect):
        d = intrinsic_dimension.next_dim(medians(), baseline, FRACTION)
        if d is None or d in by_dim:
            break
        at(d)
    acc = dict(sorted(medians().items()))
    best = intrinsic_dimension.d_int90(acc, baseline, FRACTION)
    widths = None if text else widths_of(config.model, config.widths)
    plot(acc, {d: by_dim[d] for d in acc}, baseline, baseline_seeds, best, config, D,
         ctx.figure("accuracy_vs_dim"), widths, s)
    out = {"baseline_accuracy": baseline, "baseline_accuracy_seeds": baseline_seeds.tolist(),
           "accuracy_by_dim": {str(d): a for d, a in acc.items()},
           "accuracy_by_dim_seeds": {str(d): by_dim[d].tolist() for d in acc},
           "threshold": FRACTION * baseline, "d_int90": best, "d_int90_over_D": None if best is None else best / D,
           "dims_in_order_run": order, "D": D, "steps_per_s": {"baseline": baseline_speed,
                                                                **{str(d): v for d, v in sorted(speeds.items())}},
           "ms_per_step": {"baseline": baseline_ms, **{str(d): v for d, v in sorted(ms.items())}},
           "paper_d_int90": PAPER_SAID if text else PAPER_D_INT90}
    if text:
        out |= {"paper_source": PAPER_SAID_SOURCE, "settings": s,
                "test_accuracy_curves": {"baseline": baseline_curve.tolist(),
                                         **{str(d): curves[d].tolist() for d in acc}},
                "tensors": len(jax.tree.leaves(said_text.abstract_params()))}
    return out


def plot(acc, seeds, baseline, baseline_seeds, best, config, D, path, widths, s):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    dims = np.array(list(acc))
    for d, a in seeds.items():
        ax.scatter([d] * len(a), a, s=10, c="gray", alpha=0.6)
    method = f"{'SAID, ' if config.said else ''}{config.projection}{', per-tensor norm' if s['normalize'] == 'tensor' else ''}"
    ax.plot(dims, [acc[d] for d in dims], "o-", c="C0", label=f"subspace training ({method}), median")
    ax.axhline(baseline, c="C2", label=f"direct training (D = {D:,}): {baseline:.3f}")
    ax.axhline(FRACTION * baseline, c="C2", ls="--", label=f"90% of direct: {FRACTION * baseline:.3f}")
    if best is not None:
        ax.axvline(best, c="C3", ls=":", label=f"d_int90 = {best}")
    if config.model == "minilm":
        paper = PAPER_SAID["SAID" if config.said else "DID"]
        for i, name in enumerate(("BERT-Base", "RoBERTa-Base")):
            ax.axvline(paper[name]["MRPC"], c=f"C{4 + i}", ls="-.", lw=0.9, alpha=0.8,
                       label=f"Aghajanyan et al. {'SAID' if config.said else 'DID'} d90, {name} on MRPC: "
                             f"{paper[name]['MRPC']}")
        title = (f"intrinsic dimension: all-MiniLM-L6-v2 + linear head on Rotten Tomatoes\n{s['seeds']} seed(s), "
                 f"{s['steps']} steps, batch {s['batch_size']}")
    else:
        title = (f"intrinsic dimension: {config.model} {widths} on {config.dataset}, "
                 f"{s['seeds']} seeds, {s['steps']} steps")
    ax.set_xscale("log")
    ax.set_xlabel("subspace dimension d")
    ax.set_ylabel("test accuracy")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, path)
