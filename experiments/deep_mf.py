"""Experiment: GD on matrix factorization with any parameterization, over vmapped seeds."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import analysis, dynamics, param, tasks
from lrjax.binding.optim import optimizer
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.process import DTYPES
from lrjax.harness.schema import Choice, Float, Int, Rule, Schema, Spec

SCHEMA = Schema(
    d=Int(min=2), rank=Int(min=1), param=Spec(shape=lambda c: (c.d, c.d)), eta=Float(gt=0),
    weight_decay=Float(ge=0), steps=Int(min=1, resume="grow"), seeds=Int(min=1), record_every=Int(min=1),
    chunk_size=Int(min=1), tol=Float(gt=0, optional=True, resume="any"), dtype=Choice(*DTYPES),
    checkpoint_every=Int(min=0, resume="any"),
    checks=[Rule(("rank", "d"), lambda r, d: r <= d, "the target's rank must be <= d"),
           Rule(("record_every", "steps"), lambda r, s: r <= s, "record_every must be <= steps")],
)


def run(config, ctx) -> dict:
    dtype = ctx.dtype
    p = param.from_spec(config.param)
    target = tasks.low_rank_target(jax.random.key(0), config.d, config.rank, dtype)
    keys = jax.random.split(jax.random.key(1), config.seeds)
    thetas = jax.vmap(lambda k: p.init(k, (config.d, config.d), dtype))(keys)
    roles = p.roles(jax.tree.map(lambda x: x[0], thetas))
    tx = optimizer(optax.chain(optax.add_decayed_weights(config.weight_decay), optax.sgd(config.eta)), roles)

    def loss(theta, tgt):
        r = p.materialize(theta) - tgt
        return 0.5 * jnp.sum(r * r)

    k = min(2 * config.rank + 2, config.d - 1)
    spectra = (lambda t: analysis.singular_values(p.materialize(t))) if config.d <= 200 else \
        analysis.TopKTracker(lambda t: p.materialize(t)[None], k=k, moments=False)
    res = dynamics.run(loss, thetas, tx, config.steps, data=target, batched=True, tol=config.tol,
                       chunk_size=config.chunk_size, record_every=config.record_every,
                       recorders={"spectrum": spectra}, checkpoint=ctx.checkpoints(), desc=config.param)
    sv = res.records.get("spectrum", res.records.get("spectrum/top"))
    sv = sv.reshape(sv.shape[:2] + (-1,))
    ctx.save_arrays(step=res.records["step"], singular_values=sv,
             loss=res.scalars["loss"])
    plot(res, sv, config, ctx.figure("loss_and_spectrum"))
    final = res.scalars["loss"][:, -1]
    return {"param": config.param, "num_params": p.num_params((config.d, config.d)),
            "final_loss_median": float(np.median(final)), "final_loss_max": float(np.max(final)),
            "steps_to_tol": res.steps_to_tol,
            "seeds_reaching_tol": int(np.sum(res.steps_to_tol >= 0)) if config.tol is not None else None,
            "initial_loss_median": float(np.median(res.scalars["loss"][:, 0])),
            "steps": res.steps, "steps_per_s": res.steps_per_s, "resumed_from": res.resumed_from}


def plot(res, sv, config, path):
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    a.plot(res.scalars["loss"].T, lw=0.8)
    if config.tol:
        a.axhline(config.tol, color="k", ls=":", label=f"tol {config.tol:g}")
        a.legend()
    a.set_yscale("log")
    a.set_xlabel("GD step")
    a.set_title(f"loss, {config.seeds} seeds: {config.param}")
    b.plot(res.records["step"], sv[0], lw=0.8)
    b.set_yscale("log")
    b.set_xlabel("GD step")
    b.set_title(f"singular values of W (seed 0), target rank {config.rank}")
    save_figure(fig, path)
