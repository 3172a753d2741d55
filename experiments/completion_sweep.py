"""Experiment: a seed x init-scale sweep of deep matrix completion from observed entries, as one sharded
program that may span several processes (``lrjax.dynamics.distributed``; ``lrjax run ... --coordinator``).

One completion task (``sparse_completion``'s ``low_rank`` matrix: a random rank-``rank`` ``d x d`` target,
``observed`` entries, every unobserved entry held out when ``held_out = 0``), one ``method`` (``original``,
``compressed``, ``spectral`` or ``two_factor``, ``sparse_recovery.make_method``). The members are every
``(seed, eps)`` pair of ``seeds`` init seeds (``seed, seed + 1, ...``) and the ``eps_values`` init scales;
each trains ``steps`` plain GD steps at rate ``eta`` (``None``: ``sparse_completion.default_eta``) in a
``lax.scan``, recording the training loss and the recovery error every ``record_every`` steps (before the
step, and at the end). All members run as one ``jit(vmap)`` program whose member axis is sharded over every
process's devices (``distributed.sweep``); the member list is padded by repeating its last member to a
multiple of the device count, and the padding is dropped. The task is drawn from ``seed`` (as in
``sparse_completion``); member ``(s, e)`` equals ``sparse_recovery.fit`` of ``make_method(method, seed=s,
eps=e)`` on that task to round-off (tested), whether the sweep runs in one process or several.

Every process computes its shard and receives every member's results; only process 0 writes the work
directory.

Metrics: ``members`` (``[seed, eps]`` each), ``recovery_error`` (final, per member; ``recovery_error_initial``
at step 0) with ``recovery_error_samples``, ``recovery_error_median_by_eps``, ``final_loss``,
``steps_to_error_1e-8`` and ``_1e-10`` (per member, first recorded step, ``None`` if never), ``eta``, ``processes``,
``devices``, ``padded_members``, ``sweep_s`` (the sharded program, compile included).
"""
from __future__ import annotations

import time

import jax
import numpy as np
import optax

from lrjax import dynamics
from lrjax.binding.optim import optimizer
from lrjax.dynamics import distributed
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.process import DTYPES
from lrjax.harness.schema import Choice, Float, Int, Rule, Schema, Seq
from lrjax.studies import recipe, sparse_recovery
from lrjax.tasks import sparse_completion

SPANS_PROCESSES = True   # lrjax run accepts --coordinator for this experiment

SCHEMA = Schema(
    d=Int(min=2), rank=Int(min=1), observed=Int(min=1), held_out=Int(min=0),
    spectrum=Choice("gaussian_scale", "spread", "flat"), method=Choice(*sparse_recovery.METHODS),
    depth=Int(min=2), eps_values=Seq(Float(gt=0), distinct=True), gamma=Float(ge=0), eta=Float(gt=0, optional=True),
    seeds=Int(min=1), seed=Int(min=0), steps=Int(min=1), record_every=Int(min=1), dtype=Choice(*DTYPES),
    checks=[Rule(("d", "observed"), lambda d, o: o < d * d, "observed must be < d * d"),
            Rule(("d", "observed", "held_out"), lambda d, o, h: h <= d * d - o,
                 "held_out must be <= the d * d - observed unobserved entries"),
            Rule(("d", "held_out"), lambda d, h: h > 0 or d * d <= sparse_completion.MAX_EXACT_ENTRIES,
                 f"held_out=0 (every unobserved entry) needs d * d <= {sparse_completion.MAX_EXACT_ENTRIES:,}"),
            Rule(("rank", "d"), lambda r, d: 2 * r <= d, "the compressed width 2 rank must be <= d"),
            Rule(("method", "d"), lambda m, d: m != "original" or d <= 2048,
                 "method=original trains d x d factors per member: d must be <= 2048"),
            Rule(("record_every", "steps"), lambda r, s: s % r == 0, "steps must be a multiple of record_every")],
)


def member_theta(config, task, data, seed, eps, dtype):
    """The method's initial factors for one member (``seed`` and ``eps`` may be traced)."""
    return sparse_recovery.make_method(config.method, task, data, depth=config.depth, eps=eps, rank=config.rank,
                                       gamma=config.gamma, seed=seed, dtype=dtype).theta


def member_train(config, task, data, eta: float, dtype):
    """``train({"seed", "eps"}) -> {"loss", "recovery_error"}``, each ``(steps / record_every + 1,)``: plain GD
    (outer factors of ``compressed`` at ``gamma * eta``) as one pure ``dynamics.Program`` run, the program
    ``sparse_recovery.fit`` runs through the host driver."""
    loss, recovery_error = sparse_completion.losses("gather")
    outer = config.gamma if config.method == "compressed" else 1.0
    template = jax.eval_shape(lambda: member_theta(config, task, data, config.seed, 1.0, dtype))
    roles = sparse_recovery.SparseMethod("", template).roles()
    program = dynamics.Program(loss, optimizer(optax.sgd(eta), roles, outer_lr_scale=outer),
                               recorders={"loss": dynamics.with_data(loss),
                                          "recovery_error": dynamics.with_data(recovery_error)})

    def train(member):
        theta = member_theta(config, task, data, member["seed"], member["eps"], dtype)
        _, _, records = program.train(program.init(theta), data, config.steps, config.record_every)
        return {"loss": records["loss"], "recovery_error": records["recovery_error"]}
    return train


def run(config, ctx) -> dict:
    dtype = ctx.dtype
    task, _ = sparse_completion.low_rank_completion(config.seed, (config.d, config.d), config.rank, config.observed,
                                                    config.held_out or None, config.spectrum, dtype)
    data = task.data(dtype)
    eta = config.eta if config.eta is not None else sparse_recovery.default_eta(task.shape, len(task.observed))
    seeds = np.repeat(np.arange(config.seed, config.seed + config.seeds), len(config.eps_values))
    eps = np.tile(np.asarray(config.eps_values, np.float64), config.seeds)
    n, devices = len(seeds), jax.device_count()
    padded = -n % devices
    batch = {"seed": np.concatenate([seeds, np.repeat(seeds[-1:], padded)]).astype(np.int32),
             "eps": np.concatenate([eps, np.repeat(eps[-1:], padded)]).astype(dtype)}
    if jax.process_index() == 0:
        print(f"{config.d} x {config.d}, |Omega| = {len(task.observed):,}, {config.method}: {n} members "
              f"({config.seeds} seeds x {len(config.eps_values)} eps) on {devices} device(s) of "
              f"{jax.process_count()} process(es), eta = {eta:.4g}", flush=True)
    t0 = time.perf_counter()
    out = distributed.sweep(member_train(config, task, data, eta, dtype), batch)
    sweep_s = time.perf_counter() - t0
    loss, error = out["loss"][:n], out["recovery_error"][:n]
    steps = np.append(np.arange(0, config.steps, config.record_every), config.steps)
    if jax.process_index() == 0:
        ctx.save_arrays(step=steps, loss=loss, recovery_error=error, seed=seeds, eps=eps)
        plot(steps, error, seeds, eps, config, task, ctx.figure("recovery_error"))
    reached = {f"steps_to_error_{name}": [int(steps[i]) if i >= 0 else None
                                          for i in recipe.first_step_below(error, level)]
               for name, level in sparse_recovery.ERROR_LEVELS.items()}
    return {"members": [[int(s), float(e)] for s, e in zip(seeds, eps)], "recovery_error": error[:, -1].tolist(),
            "recovery_error_initial": error[:, 0].tolist(),
            "recovery_error_samples": len(task.held_out),
            "recovery_error_median_by_eps": {f"{e:g}": float(np.median(error[eps == e, -1]))
                                             for e in config.eps_values},
            "final_loss": loss[:, -1].tolist(),
            **reached,
            "eta": eta, "processes": jax.process_count(), "devices": devices, "padded_members": padded,
            "sweep_s": sweep_s}


def plot(steps, error, seeds, eps, config, task, path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(config.eps_values)))
    for i, (s, e) in enumerate(zip(seeds, eps)):
        c = colors[list(config.eps_values).index(e)]
        ax.plot(steps, error[i], color=c, lw=1.2, label=f"eps = {e:g}" if s == seeds[0] else None)
    ax.set_yscale("log")
    ax.set_xlabel("GD iteration")
    ax.set_ylabel("recovery error (1/2 SSE / d^2)")
    ax.set_title(f"{config.method}, d = {config.d}, |Omega| = {len(task.observed):,}: {config.seeds} seeds per eps",
                 fontsize=10)
    ax.legend(fontsize=8)
    save_figure(fig, path)
