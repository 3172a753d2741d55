"""One process of a multi-process seed sweep, launched by test_distributed.py (``make_train`` is also the
test's single-process reference).

usage: python distributed_job.py --coordinator HOST:PORT --num-processes N --process-id I --out OUT.npz

Sweeps 200 plain gradient-descent steps of a depth-3 factorization ``W = F1 F2 F3`` of a fixed 12x12
rank-2 target over seeds 0..3 (float64) and writes, from every process, ``loss``, ``factors`` (the final
ones, ``(4, 3, 12, 12)``), whether ``initialize`` joined (twice), the device counts and the message of
the ``ValueError`` for 3 seeds.
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np

D, RANK, DEPTH, STEPS, LR, SCALE = 12, 2, 3, 200, 0.05, 0.3
SEEDS = np.arange(4)


def make_train():
    """``train(seed) -> {"loss", "factors"}``; builds the target, so call it after ``initialize``."""
    from lrjax import tasks

    target = tasks.low_rank_target(jax.random.key(0), D, RANK, jnp.float64)

    def loss(factors):
        r = factors[0] @ factors[1] @ factors[2] - target
        return 0.5 * jnp.sum(r * r)

    def step(factors, _):
        grads = jax.grad(loss)(factors)
        return tuple(f - LR * g for f, g in zip(factors, grads)), None

    def train(seed):
        keys = jax.random.split(jax.random.key(seed), DEPTH)
        factors = tuple(SCALE * jax.random.normal(k, (D, D), jnp.float64) for k in keys)
        factors, _ = jax.lax.scan(step, factors, None, length=STEPS)
        return {"loss": loss(factors), "factors": jnp.stack(factors)}

    return train


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--coordinator")
    parser.add_argument("--num-processes", type=int)
    parser.add_argument("--process-id", type=int)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    jax.config.update("jax_enable_x64", True)
    from lrjax.dynamics import distributed

    joined = distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    joined_again = distributed.initialize(args.coordinator, args.num_processes, args.process_id)  # harmless
    train = make_train()
    res = distributed.sweep(train, SEEDS)
    try:
        distributed.sweep(train, SEEDS[:3])
        bad_size_error = ""
    except ValueError as e:
        bad_size_error = str(e)
    np.savez(args.out, loss=res["loss"], factors=res["factors"], joined=joined, joined_again=joined_again,
             process_count=jax.process_count(), device_count=jax.device_count(),
             local_device_count=jax.local_device_count(), bad_size_error=bad_size_error)


if __name__ == "__main__":
    main()
