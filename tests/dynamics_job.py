"""A small deep-factorization run used by the subprocess tests (kill/resume, fake devices).

usage: python dynamics_job.py OUT.npz [--workdir DIR] [--kill-at-step N] [--batched B]
"""
import argparse
import os
import signal

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from lrjax import dynamics, param, tasks  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--workdir")
parser.add_argument("--kill-at-step", type=int, default=-1)
parser.add_argument("--batched", type=int, default=0)
args = parser.parse_args()

D, STEPS = 12, 300
p = param.deep(3, scale=0.7)
target = tasks.low_rank_target(jax.random.key(0), D, 2)
calls = [0]


def maybe_kill(_):
    calls[0] += 1
    if calls[0] == args.kill_at_step:
        os.kill(os.getpid(), signal.SIGKILL)


def count(theta, _data):
    if args.kill_at_step >= 0:
        jax.debug.callback(maybe_kill, theta["factors"][0][0, 0], ordered=True)
    return jnp.zeros(())


def sv(theta):
    return jnp.linalg.svd(p.materialize(theta), compute_uv=False)


if args.batched:
    keys = jax.random.split(jax.random.key(1), args.batched)
    theta = jax.vmap(lambda k: p.init(k, (D, D), jnp.float64))(keys)
    targets = jnp.stack([target] * args.batched)
    res = dynamics.run(tasks.factorization_loss, theta, optax.sgd(0.05), STEPS, data=targets, batched=True, data_batched=True,
                       chunk_size=50, record_every=25, recorders={"sv": sv})
else:
    theta = p.init(jax.random.key(1), (D, D), jnp.float64)
    res = dynamics.run(tasks.factorization_loss, theta, optax.sgd(0.05), STEPS, data=target, chunk_size=20,
                       record_every=10, recorders={"sv": sv}, metrics={"count": count},
                       workdir=args.workdir, checkpoint_every=1)
np.savez(args.out, loss=res.scalars["loss"], sv=res.records["sv"], step=res.records["step"],
         final=np.stack(jax.tree.leaves(res.params)), devices=jax.local_device_count(),
         resumed_from=-1 if res.resumed_from is None else res.resumed_from)
