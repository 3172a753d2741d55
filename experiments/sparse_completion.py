"""Experiment: deep matrix completion from observed entries only, at scale (``lrjax.studies.sparse_recovery``).

One method per run (``original``, ``compressed``, ``spectral``, or the rank-``r`` ``two_factor`` baseline
``W = F_1 F_2``), trained with plain GD on ``1/2 sum_Omega (W_ij - Phi_ij)^2 / (m n)`` from ``observed``
entries. ``matrix="low_rank"``: a random rank-``rank`` ``d x d`` target (``spectrum``, see
``tasks.sparse_completion.factored_target``); ``matrix="fashion_mnist"``: the 60,000 x 784 Fashion-MNIST
training images (pixel values in [0, 1]), approximately low rank. The recovery error is measured on
``held_out`` unobserved entries (``0``: all of them, exact). ``eta=None`` scales the paper's ``5e3`` (``d =
1000``, ``p = 0.2``) to keep the step's stability margin: ``eta = 5e3 (d / 1000)^(4/3) (0.2 / p)`` with
``d = sqrt(m n)``. The run stops when the training loss reaches ``tol``.

Metrics: ``recovery_error`` (final) with ``recovery_error_samples`` (and ``recovery_error_exact``),
``ms_per_step`` (execution, compile excluded, over every process that ran the run's steps), ``peak_memory_mb``
(the process's peak resident memory, or the device's peak on a GPU), ``steps_run`` (the run's steps, earlier
processes included), ``setup_s`` (task and init, compression included), ``compile_s`` (this process's).
"""
from __future__ import annotations

import time

import jax
import numpy as np

from lrjax import data as datasets
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.process import DTYPES, peak_memory_mb
from lrjax.harness.schema import Choice, Float, Int, Rule, Schema
from lrjax.studies import sparse_recovery
from lrjax.tasks import sparse_completion

MATRICES = ("low_rank", "fashion_mnist")
SPECTRA = ("gaussian", "gaussian_scale", "spread", "flat")

SCHEMA = Schema(
    matrix=Choice(*MATRICES), d=Int(min=2), rank=Int(min=1), observed=Int(min=1), held_out=Int(min=0),
    spectrum=Choice(*SPECTRA), method=Choice(*sparse_recovery.METHODS), depth=Int(min=2),
    eps=Float(gt=0), gamma=Float(ge=0), eta=Float(gt=0, optional=True),
    evaluation=Choice(*sparse_completion.EVALUATIONS),
    steps=Int(min=1, resume="grow"), tol=Float(gt=0, optional=True, resume="any"),
    chunk_size=Int(min=1), record_every=Int(min=1), svd_iters=Int(min=1), oversample=Int(min=0),
    seed=Int(min=0), dtype=Choice(*DTYPES),
    checks=[Rule(("matrix", "d", "observed"), lambda mat, d, o: mat != "low_rank" or o < d * d,
                 "observed must be < d * d"),
            Rule(("matrix", "d", "observed", "held_out"),
                 lambda mat, d, o, h: mat != "low_rank" or h <= d * d - o,
                 "held_out must be <= the d * d - observed unobserved entries"),
            Rule(("matrix", "d", "held_out"),
                 lambda mat, d, h: h > 0 or mat != "low_rank" or d * d <= sparse_completion.MAX_EXACT_ENTRIES,
                 f"held_out=0 (every unobserved entry) needs d * d <= {sparse_completion.MAX_EXACT_ENTRIES:,}: "
                 "give a held-out sample size"),
            Rule(("matrix", "held_out"), lambda mat, h: mat == "low_rank" or h > 0,
                 "held_out=0 means every unobserved entry: give a sample size for a real matrix"),
            Rule(("matrix",), lambda mat: mat == "low_rank" or bool(datasets.locate(mat)),
                 "the dataset is not installed"),
            Rule(("rank", "d"), lambda r, d: 2 * r <= d, "the compressed width 2 rank must be <= d"),
            Rule(("spectrum", "d"), lambda s, d: s != "gaussian" or d * d <= sparse_completion.MAX_GAUSSIAN_ENTRIES,
                 f"spectrum 'gaussian' needs a d x d SVD (d * d <= {sparse_completion.MAX_GAUSSIAN_ENTRIES:,}); "
                 "use 'gaussian_scale'"),
            Rule(("method", "d"), lambda m, d: m != "original" or d <= 8192,
                 "method=original has three d x d factors: d must be <= 8192"),
            Rule(("record_every", "steps"), lambda r, s: r <= s, "record_every must be <= steps")],
)


def build_task(config, dtype):
    """``SparseCompletion`` of the config's matrix."""
    held = config.held_out or None
    if config.matrix == "fashion_mnist":
        images, _ = datasets.load("fashion_mnist", "train")
        x = images.reshape(images.shape[0], -1).astype(np.float64)
        if config.observed >= x.size:
            raise ValueError(f"observed={config.observed} must be < the {x.size:,} entries of the matrix")
        return sparse_completion.from_matrix(x, config.observed / x.size, config.seed, held)
    task, _ = sparse_completion.low_rank_completion(config.seed, (config.d, config.d), config.rank, config.observed,
                                                    held, config.spectrum, dtype)
    return task


def build_method(config, task, data, dtype):
    return sparse_recovery.make_method(config.method, task, data, depth=config.depth, eps=config.eps,
                                       rank=config.rank, gamma=config.gamma, seed=config.seed, dtype=dtype,
                                       iters=config.svd_iters, oversample=config.oversample)


def run(config, ctx) -> dict:
    dtype = ctx.dtype
    t0 = time.perf_counter()
    task = build_task(config, dtype)
    data = task.data(dtype)
    method = build_method(config, task, data, dtype)
    jax.block_until_ready(method.theta)
    setup_s = time.perf_counter() - t0
    width = method.theta["factors"][0].shape[1]
    evaluation = sparse_completion.resolve_evaluation(config.evaluation, task.shape, len(task.observed), width)
    eta = config.eta if config.eta is not None else sparse_recovery.default_eta(task.shape, len(task.observed))
    print(f"{task.shape[0]} x {task.shape[1]}, |Omega| = {len(task.observed):,} (p = {task.fraction:.4g}), "
          f"held out {len(task.held_out):,}; {method.label}: {method.num_params:,} parameters, eta = {eta:.4g}, "
          f"evaluation {evaluation}; setup {setup_s:.1f} s", flush=True)
    t1 = time.perf_counter()
    fit = sparse_recovery.fit(method, data, eta, config.steps, evaluation=evaluation, tol=config.tol,
                              chunk_size=config.chunk_size, record_every=config.record_every,
                              checkpoint=ctx.checkpoints(method.label, eta=eta))
    total_s = time.perf_counter() - t1
    steps_run = int(len(fit.loss))
    ctx.save_arrays(loss=fit.loss, test_step=fit.step, recovery_error=fit.evaluation)
    plot(fit, config, task, ctx.figure("recovery_error"))
    return {"method": method.label, "shape": list(task.shape), "observed": len(task.observed),
            "fraction": task.fraction, "num_params": method.num_params, "eta": eta, "evaluation": evaluation,
            "recovery_error": float(fit.evaluation[-1]), "recovery_error_samples": len(task.held_out),
            "recovery_error_exact": task.exact_error, "final_loss": float(fit.loss[-1]),
            "ms_per_step": fit.ms_per_step, "peak_memory_mb": peak_memory_mb(), "steps_run": steps_run,
            "steps_to_tol": fit.steps_to_tol, **sparse_recovery.time_to_errors(fit, sparse_recovery.ERROR_LEVELS), "setup_s": setup_s, "train_s": total_s,
            "compile_s": fit.result.compile_time,
            "device": jax.devices()[0].device_kind}


def plot(fit, config, task, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    seconds = fit.ms_per_step / 1e3
    for ax, scale, label in zip(axes, (1.0, seconds), ("GD iteration", "wall time (s, compile excluded)")):
        ax.plot(fit.step * scale, fit.evaluation, lw=1.6, label="recovery error (held out)")
        ax.plot(np.arange(len(fit.loss)) * scale, fit.loss, lw=0.8, ls="--", label="training loss")
        ax.set_yscale("log")
        ax.set_xlabel(label)
    axes[0].set_ylabel("1/2 sum of squares / (m n)")
    axes[0].legend(fontsize=8)
    m, n = task.shape
    axes[0].set_title(f"{fit.label}: {m} x {n}, |Omega| = {len(task.observed):,}", fontsize=10)
    axes[1].set_title(f"{fit.ms_per_step:.2f} ms/step, held-out sample {len(task.held_out):,}", fontsize=10)
    save_figure(fig, path)
