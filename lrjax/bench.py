"""Benchmarks of the compiled runner (``lrjax bench dynamics``).

For deep matrix factorization (L = 3, float32, ``W = F_1 F_2 F_3``, loss ``1/2 ||W - Phi||_F^2``) at each
size ``d`` it times, after compiling:

- ``runner``: ``lrjax.dynamics.run`` (``jit(lax.scan)`` chunks of 100 steps, one host sync per chunk);
- ``python_loop``: the papers' pattern, a Python ``for`` loop over a jitted step;
- ``matmul_floor``: the step's six ``d x d`` matrix products and the updates written by hand in a
  ``lax.scan`` (``P = F_1 F_2``, ``W = P F_3``, ``G_3 = P^T R``, ``Q = R F_3^T``, ``G_2 = F_1^T Q``,
  ``G_1 = Q F_2^T``): what one step cannot beat;
- ``seeds``: ``--seeds`` vmapped seeds against one seed through the runner (throughput ratio).

Precision is set with ``jax.default_matmul_precision`` (``highest``: true fp32 on GPUs, no TF32).
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import dynamics, param, tasks
from lrjax.runs import write_json

ETA = 1e-3


def _time(fn, repeats: int = 3) -> float:
    """Best wall time of ``fn()`` over ``repeats`` calls (``fn`` blocks until done)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _problem(d: int, key=0):
    p = param.deep(3, scale=d ** -0.5 * 3)
    theta = p.init(jax.random.key(key), (d, d), jnp.float32)
    target = tasks.low_rank_target(jax.random.key(100), d, max(1, d // 20), jnp.float32)
    return p, theta, target


def _matmul_floor(theta, target, steps: int):
    def step(fs, _):
        f1, f2, f3 = fs
        p = f1 @ f2
        r = p @ f3 - target
        g3 = p.T @ r
        q = r @ f3.T
        g2 = f1.T @ q
        g1 = q @ f2.T
        return (f1 - ETA * g1, f2 - ETA * g2, f3 - ETA * g3), None

    return jax.jit(lambda fs: jax.lax.scan(step, fs, None, length=steps)[0])


def bench_size(d: int, steps: int, seeds: int) -> dict:
    _, theta, target = _problem(d)
    tx = optax.sgd(ETA)
    chunk = min(100, steps)
    steps = chunk * max(1, steps // chunk)
    loss = tasks.factorization_loss

    def runner():
        res = dynamics.run(loss, theta, tx, steps, data=target, chunk_size=chunk, progress=False)
        jax.block_until_ready(res.params)

    @jax.jit
    def step(th, state, tgt):
        g = jax.grad(loss)(th, tgt)
        u, state = tx.update(g, state, th)
        return optax.apply_updates(th, u), state

    def loop():
        th, state = theta, tx.init(theta)
        for _ in range(steps):
            th, state = step(th, state, target)
        jax.block_until_ready(th)

    floor_fn = _matmul_floor(tuple(theta["factors"]), target, steps)

    def floor():
        jax.block_until_ready(floor_fn(tuple(theta["factors"])))

    for f in (runner, loop, floor):
        f()  # compile
    row = {"d": d, "steps": steps,
           "runner_ms": 1e3 * _time(runner) / steps,
           "python_loop_ms": 1e3 * _time(loop) / steps,
           "matmul_floor_ms": 1e3 * _time(floor) / steps}
    if seeds:
        keys = jax.random.split(jax.random.key(1), seeds)
        thetas = jax.vmap(lambda k: param.deep(3, scale=d ** -0.5 * 3).init(k, (d, d), jnp.float32))(keys)

        def batched():
            res = dynamics.run(loss, thetas, tx, steps, data=target, chunk_size=chunk, batched=True,
                               progress=False)
            jax.block_until_ready(res.params)

        batched()
        row["seeds"] = seeds
        row["seeds_ms"] = 1e3 * _time(batched) / steps
        row["seed_throughput_x"] = seeds * row["runner_ms"] / row["seeds_ms"]
    return row


def bench_dynamics(sizes, steps: int = 500, seeds: int = 64, precision: str = "highest", out=None) -> list[dict]:
    """Print (and optionally save) a table of ms/step for each size; returns the rows."""
    device = jax.devices()[0]
    on_cpu = device.platform == "cpu"
    rows = []
    with jax.default_matmul_precision(precision):
        for d in sizes:
            n = max(20, round(steps * min(1.0, (100 / d) ** 2))) if on_cpu else steps
            rows.append(bench_size(d, n, seeds if d <= 100 else 0))
    print(f"device: {device.device_kind} ({device.platform}), jax {jax.__version__}, precision {precision}")
    print(f"{'d':>6} {'steps':>6} {'runner ms':>10} {'loop ms':>9} {'floor ms':>9} {'runner/floor':>12} "
          f"{'loop/runner':>11} {'seeds x':>8}")
    for r in rows:
        seeds_x = f"{r['seed_throughput_x']:.1f}" if "seed_throughput_x" in r else "-"
        print(f"{r['d']:>6} {r['steps']:>6} {r['runner_ms']:>10.4f} {r['python_loop_ms']:>9.4f} "
              f"{r['matmul_floor_ms']:>9.4f} {r['runner_ms'] / r['matmul_floor_ms']:>12.2f} "
              f"{r['python_loop_ms'] / r['runner_ms']:>11.2f} {seeds_x:>8}")
    if out:
        write_json(out, {"device": device.device_kind, "platform": device.platform, "jax": jax.__version__,
                         "precision": precision, "date": time.strftime("%Y-%m-%d"), "rows": rows})
    return rows
