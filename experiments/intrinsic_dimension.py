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
the order the dims were run in, ``D``, and Li et al.'s numbers for comparison.
"""
from __future__ import annotations

import numpy as np

from lrjax import data, models
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.schema import Bool, Choice, Float, Int, Rule, Schema, Seq, data_checks
from lrjax.param.projection import KINDS
from lrjax.studies import classification, intrinsic_dimension

# Li et al. 2018, Table 1 / Section 3 (full MNIST 60k, CIFAR-10): d_int90
PAPER_D_INT90 = {"mnist_fc_784-200-200-10": 750, "mnist_lenet": 290, "cifar10_fc": 9000, "cifar10_lenet": 2900}
FRACTION = 0.9
DEFAULT_WIDTHS = {"mlp": (200, 200), "cnn": (6, 16, 120)}   # Li et al.'s FC network; a LeNet-sized CNN


def widths_of(model_name, widths) -> tuple:
    """``widths``, or the model's default when it is ``None``."""
    return tuple(DEFAULT_WIDTHS[model_name] if widths is None else widths)


def abstract_params(model_name, widths, dataset):
    """The model's parameter tree as shapes (nothing allocated)."""
    return classification.abstract_params(models.make(model_name, widths_of(model_name, widths), classes=10, act="relu"),
                                      dataset)


def _dims_fit(dims, model_name, widths, dataset, said) -> bool:
    params = abstract_params(model_name, widths, dataset)
    D = intrinsic_dimension.num_float_params(params)
    for d in dims:
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
    return 4 * D * max(dims) * seeds <= DENSE_LIMIT_BYTES


SCHEMA = Schema(
    dataset=Choice(*data.available()), model=Choice("mlp", "cnn"), widths=Seq(Int(min=1), optional=True),
    projection=Choice(*KINDS), dims=Seq(Int(min=1), distinct=True), bisect=Int(min=0), said=Bool(),
    optimizer=Choice(*classification.OPTIMIZERS), lr=Float(gt=0), baseline_lr=Float(gt=0), batch_size=Int(min=1),
    steps=Int(min=1), seeds=Int(min=1), eval_every=Int(min=1), train_size=Int(min=0), seed=Int(min=0),
    checkpoint_every=Int(min=0, resume="any"),
    checks=[*data_checks(),
            Rule(("dims", "model", "widths", "dataset", "said"), _dims_fit,
                 "every d must be <= the number of parameters D (with said, > the number of tensors)"),
            Rule(("projection", "dims", "seeds", "model", "widths", "dataset"), _dense_fits,
                 "a dense projection needs 4 D d bytes per seed at every step, over 1 GiB here: use "
                 "projection=sparse or fastfood, or smaller dims")],
)


def run(config, ctx) -> dict:
    splits = data.load_splits(config.dataset, config.train_size)
    widths = widths_of(config.model, config.widths)
    model = models.make(config.model, widths, classes=10, act="relu")
    common = dict(optimizer_name=config.optimizer, batch_size=config.batch_size, steps=config.steps,
                  seeds=config.seeds, eval_every=config.eval_every, seed=config.seed,
                  spectra=False)

    def train(name, weights, lr):
        tr = classification.train(model, weights, splits, lr=lr, checkpoint=ctx.checkpoints(name, run=name), desc=name,
                                  **common)
        return tr.evaluation[:, -1], tr.result.steps_per_s

    baseline_seeds, baseline_speed = train("baseline", ".*=dense()", config.baseline_lr)
    baseline = float(np.median(baseline_seeds))
    by_dim, speeds, order = {}, {}, []

    def at(d):
        acc, speeds[d] = train(f"d{d}", intrinsic_dimension.GlobalSubspace(d, config.projection, said=config.said), config.lr)
        by_dim[d] = acc
        order.append(d)

    for d in sorted(config.dims):
        at(d)
    medians = lambda: {d: float(np.median(a)) for d, a in by_dim.items()}
    for _ in range(config.bisect):
        d = intrinsic_dimension.next_dim(medians(), baseline, FRACTION)
        if d is None or d in by_dim:
            break
        at(d)
    acc = dict(sorted(medians().items()))
    best = intrinsic_dimension.d_int90(acc, baseline, FRACTION)
    D = intrinsic_dimension.num_float_params(abstract_params(config.model, widths, config.dataset))
    plot(acc, {d: by_dim[d] for d in acc}, baseline, baseline_seeds, best, config, D,
         ctx.figure("accuracy_vs_dim"), widths)
    return {"baseline_accuracy": baseline, "baseline_accuracy_seeds": baseline_seeds.tolist(),
            "accuracy_by_dim": {str(d): a for d, a in acc.items()},
            "accuracy_by_dim_seeds": {str(d): by_dim[d].tolist() for d in acc},
            "threshold": FRACTION * baseline, "d_int90": best, "d_int90_over_D": None if best is None else best / D,
            "dims_in_order_run": order, "D": D, "steps_per_s": {"baseline": baseline_speed,
                                                                 **{str(d): s for d, s in sorted(speeds.items())}},
            "paper_d_int90": PAPER_D_INT90}


def plot(acc, seeds, baseline, baseline_seeds, best, config, D, path, widths):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    dims = np.array(list(acc))
    for d, a in seeds.items():
        ax.scatter([d] * len(a), a, s=10, c="gray", alpha=0.6)
    ax.plot(dims, [acc[d] for d in dims], "o-", c="C0", label=f"subspace training ({config.projection}), median")
    ax.axhline(baseline, c="C2", label=f"direct training (D = {D:,}): {baseline:.3f}")
    ax.axhline(FRACTION * baseline, c="C2", ls="--", label=f"90% of direct: {FRACTION * baseline:.3f}")
    if best is not None:
        ax.axvline(best, c="C3", ls=":", label=f"d_int90 = {best}")
    ax.set_xscale("log")
    ax.set_xlabel("subspace dimension d")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"intrinsic dimension: {config.model} {widths} on {config.dataset}, "
                 f"{config.seeds} seeds, {config.steps} steps", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)
