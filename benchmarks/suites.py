"""Benchmarks of the compiled runner (``lrjax bench dynamics``).

For deep matrix factorization (L = 3, float32, ``W = F_1 F_2 F_3``, loss ``1/2 ||W - Phi||_F^2``) at each
size ``d`` it times, after compiling:

- ``runner``: ``lrjax.dynamics.run`` (``jit(lax.scan)`` chunks of 100 steps, one host sync per chunk);
- ``python_loop``: the papers' pattern, a Python ``for`` loop over a jitted step;
- ``matmul_floor``: the step's six ``d x d`` matrix products and the updates written by hand in a
  ``lax.scan`` (``P = F_1 F_2``, ``W = P F_3``, ``G_3 = P^T R``, ``Q = R F_3^T``, ``G_2 = F_1^T Q``,
  ``G_1 = Q F_2^T``): what one step cannot beat;
- ``seeds``: ``--seeds`` vmapped seeds against one seed through the runner (throughput ratio);
- ``track``: the runner while recording the spectra of all three factors at *every* step with
  ``analysis.TopKTracker`` (top ``k = 2 r* + 2`` singular values by warm-started subspace iteration plus
  the bulk's RMS and spread, which together give the full spectrum when the bulk is flat);
- ``track err``: ``max_i |top_i - sigma_i| / sigma_1`` of the last step's tracked values against
  ``jnp.linalg.svd`` (this problem starts from a flat spectrum, so the top values emerge from the bulk with
  a small gap: the hard case for one power step per training step; ``TopKTracker(iters=...)`` buys accuracy);
- ``topk``: the same without the bulk moments (``moments=False``: no ``d x d`` Gram per factor), which
  separates the small-factorisation cost from the Gram's flops;
- ``svd``: the runner with a full ``jnp.linalg.svd`` of the three factors at every step (the naive way);
- ``track flops``: XLA's flop count (``cost_analysis``) of one tracker update over that of one training
  step: the device-independent arithmetic floor of ``track/run`` minus 1 (the rest is latency).

Precision is set with ``jax.default_matmul_precision`` (``highest``: true fp32 on GPUs, no TF32).
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import analysis, dynamics, param, tasks
from lrjax.harness.process import precision
from lrjax.io.files import write_json
from lrjax.studies import matrix_recovery

ETA = 1e-3


def _environment() -> dict:
    """What a benchmark's JSON records about where it ran: device kind, platform, jax version, date."""
    device = jax.devices()[0]
    return {"device": device.device_kind, "platform": device.platform, "jax": jax.__version__,
            "date": time.strftime("%Y-%m-%d")}


def _print_device(detail: str) -> None:
    """The first line of a benchmark's table: where it ran, then ``detail``."""
    device = jax.devices()[0]
    print(f"device: {device.device_kind} ({device.platform}), jax {jax.__version__}, {detail}")


def _time(fn, repeats: int = 3) -> float:
    """Best wall time of ``fn()`` over ``repeats`` calls (``fn`` blocks until done)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _flops(fn, *args) -> float:
    """XLA's flop count of ``jit(fn)(*args)`` (nan where the backend gives none)."""
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float((cost or {}).get("flops", float("nan")))


def target_rank(d: int) -> int:
    return max(1, min(10, d // 10))


def _problem(d: int, key=0):
    p = param.deep(3, scale=d ** -0.5 * 3)
    theta = p.init(jax.random.key(key), (d, d), jnp.float32)
    target = tasks.low_rank_target(jax.random.key(100), d, target_rank(d), jnp.float32)
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

    def make_runner(n, recorders=None):
        """A compiled program of ``n`` steps, reused by every timed call (each ``run`` compiles nothing new)."""
        program = dynamics.Runner(loss, tx, chunk_size=min(chunk, n), record_every=1 if recorders else 0,
                                  recorders=recorders)

        def go():
            res = program.run(theta, n, data=target, progress=False)
            jax.block_until_ready(res.params)
            return res
        return go

    k = 2 * target_rank(d) + 2
    tracker = {"spectra": analysis.TopKTracker(analysis.deep_factors, k=k)}
    topk = {"spectra": analysis.TopKTracker(analysis.deep_factors, k=k, moments=False)}
    svd = {"spectra": analysis.factor_spectra}
    svd_steps = min(steps, 20)
    runner = make_runner(steps)
    track = make_runner(steps, tracker)
    track_topk = make_runner(steps, topk)
    full_svd = make_runner(svd_steps, svd)

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

    res = track()  # compiles; its last record against jnp.linalg.svd of the final factors gives the accuracy
    exact = np.stack([np.linalg.svd(np.asarray(f, np.float64), compute_uv=False) for f in res.params["factors"]])
    track_error = float(np.max(np.abs(res.records["spectra/top"][-1] - exact[:, :k])) / exact[:, 0].max())
    for f in (runner, loop, floor, track_topk, full_svd):
        f()  # compile
    row = {"d": d, "steps": steps,
           "runner_ms": 1e3 * _time(runner) / steps,
           "python_loop_ms": 1e3 * _time(loop) / steps,
           "matmul_floor_ms": 1e3 * _time(floor) / steps,
           "track_every_step_ms": 1e3 * _time(track) / steps,
           "topk_every_step_ms": 1e3 * _time(track_topk) / steps,
           "track_error": track_error,
           "svd_every_step_ms": 1e3 * _time(full_svd, repeats=1) / svd_steps}
    state0, step_flops = tracker["spectra"].init(theta), _flops(step, theta, tx.init(theta), target)
    for name, rec in (("track", tracker), ("topk", topk)):
        row[f"{name}_flops_x"] = _flops(rec["spectra"].update, state0, theta) / step_flops
    if seeds:
        keys = jax.random.split(jax.random.key(1), seeds)
        thetas = jax.vmap(lambda k: param.deep(3, scale=d ** -0.5 * 3).init(k, (d, d), jnp.float32))(keys)

        seeds_program = dynamics.Runner(loss, tx, chunk_size=chunk, batched=True)

        def batched():
            res = seeds_program.run(thetas, steps, data=target, progress=False)
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
    print(f"{'d':>5} {'steps':>5} {'runner ms':>9} {'loop ms':>8} {'floor ms':>8} {'run/floor':>9} "
          f"{'loop/run':>8} {'seeds x':>7} {'track ms':>8} {'track/run':>9} {'topk/run':>8} {'trk err':>8} {'svd ms':>8} {'svd/run':>8} "
          f"{'trk flops':>9} {'topk flops':>10}")
    for r in rows:
        seeds_x = f"{r['seed_throughput_x']:.1f}" if "seed_throughput_x" in r else "-"
        print(f"{r['d']:>5} {r['steps']:>5} {r['runner_ms']:>9.4f} {r['python_loop_ms']:>8.4f} "
              f"{r['matmul_floor_ms']:>8.4f} {r['runner_ms'] / r['matmul_floor_ms']:>9.2f} "
              f"{r['python_loop_ms'] / r['runner_ms']:>8.2f} {seeds_x:>7} {r['track_every_step_ms']:>8.4f} "
              f"{r['track_every_step_ms'] / r['runner_ms']:>9.2f} {r['topk_every_step_ms'] / r['runner_ms']:>8.2f} "
              f"{r['track_error']:>8.1e} "
              f"{r['svd_every_step_ms']:>8.3f} "
              f"{r['svd_every_step_ms'] / r['runner_ms']:>8.1f} {r['track_flops_x']:>9.3f} {r['topk_flops_x']:>10.3f}")
    if out:
        write_json(out, {**_environment(), "precision": precision, "rows": rows})
    return rows


def _bench_recovery_size(d: int, steps: int, task: str, repeats: int) -> dict:
    t = tasks.make_task(task, jax.random.key(0), d, 5, fraction=0.2)
    m = matrix_recovery.original(t, 3, 1e-3, jax.random.key(1))
    eta = 5e3 * (d / 1000) ** (4 / 3)
    runner, authors = [], []
    for _ in range(repeats):
        runner.append(matrix_recovery.fit(m, t, eta, steps, chunk_size=min(steps, 500), progress=False).ms_per_step)
        authors.append(matrix_recovery.authors_pattern_ms(m, t, eta, steps))
    return {"d": d, "steps": steps, "runner_ms": min(runner), "authors_ms": min(authors),
            "authors_over_runner": min(authors) / min(runner)}


def bench_recovery(sizes, steps: int = 1000, task: str = "completion", repeats: int = 3, out=None) -> list[dict]:
    """ms/step of the original deep factorization (L = 3, eps = 1e-3, float64, the completion figure's
    setting) through ``matrix_recovery.fit`` (execution time, compilation excluded) and through the papers'
    pattern (``matrix_recovery.authors_pattern_ms``: Python loop over jitted ``fori_loop`` chunks of 100 steps),
    alternated ``repeats`` times; best of each."""
    device = jax.devices()[0]
    with precision("float64"):
        rows = [_bench_recovery_size(d, steps, task, repeats) for d in sizes]
    print(f"device: {device.device_kind} ({device.platform}), jax {jax.__version__}, {task}, float64, L=3")
    print(f"{'d':>5} {'steps':>6} {'lrjax ms':>9} {'authors ms':>10} {'authors/lrjax':>13}")
    for r in rows:
        print(f"{r['d']:>5} {r['steps']:>6} {r['runner_ms']:>9.3f} {r['authors_ms']:>10.3f} {r['authors_over_runner']:>13.3f}")
    if out:
        write_json(out, {**_environment(), "task": task, "rows": rows})
    return rows


def _bench_completion_size(d: int, steps: int, repeats: int) -> dict:
    """One size of ``bench_completion``: the same init and observations for every code path."""
    from lrjax.studies import sparse_recovery
    from lrjax.tasks import sparse_completion

    task = tasks.make_task("completion", jax.random.key(0), d, 5, fraction=0.2)
    p = param.deep(3, scale=1e-3, init="permutation")
    orig = matrix_recovery.Method("original", p, p.init(jax.random.key(1), (d, d), jnp.float64))
    comp = matrix_recovery.compressed(task, orig, 5, 0.01)
    sparse = sparse_completion.from_dense(task.data["mask"], task.data["target"])
    data = sparse.data(jnp.float64)
    s_orig = sparse_recovery.make_method("original", sparse, data, depth=3, eps=1e-3, rank=5, gamma=0.0, seed=0)
    s_comp = sparse_recovery.make_method("compressed", sparse, data, depth=3, eps=1e-3, rank=5, gamma=0.01, seed=0)
    eta = 5e3 * (d / 1000) ** (4 / 3)
    orig_steps = max(100, steps // 10)
    times = {k: [] for k in ("authors_original", "original", "authors_compressed", "compressed_gather",
                             "compressed_product")}
    for _ in range(repeats):  # alternated, best of each
        times["authors_original"].append(matrix_recovery.authors_pattern_ms(orig, task, eta, orig_steps))
        times["original"].append(sparse_recovery.fit(s_orig, data, eta, orig_steps, evaluation="product",
                                                     chunk_size=100, progress=False).ms_per_step)
        times["authors_compressed"].append(matrix_recovery.authors_pattern_ms(comp, task, eta, steps))
        for how in ("gather", "product"):
            times[f"compressed_{how}"].append(sparse_recovery.fit(s_comp, data, eta, steps, evaluation=how,
                                                                  chunk_size=min(steps, 500),
                                                                  progress=False).ms_per_step)
    row = {"d": d, "steps": steps, **{f"{k}_ms": min(v) for k, v in times.items()}}
    row["original_speedup"] = row["authors_original_ms"] / row["original_ms"]
    for how in ("gather", "product"):
        row[f"compressed_{how}_speedup"] = row["authors_compressed_ms"] / row[f"compressed_{how}_ms"]
    return row


def bench_completion(sizes, steps: int = 1000, repeats: int = 3, out=None) -> list[dict]:
    """Deep matrix completion (r* = 5, p = 0.2, L = 3, eps = 1e-3, eta = 5e3 (d/1000)^(4/3), float64) from the
    same init and mask: lrjax's observed-entries path (``sparse_recovery.fit``; the compressed method with
    gather and with product evaluation) against the papers' pattern (``matrix_recovery.authors_pattern_ms``), ms
    per step, alternated ``repeats`` times, best of each; the original runs ``steps / 10`` steps."""

    with precision("float64"):
        rows = [_bench_completion_size(d, steps, repeats) for d in sizes]
    _print_device("completion r*=5, p=0.2, L=3, float64; speed-up = authors' ms / lrjax ms")
    print(f"{'d':>5} {'orig authors':>12} {'orig lrjax':>10} {'x':>5} {'comp authors':>12} {'gather':>8} {'x':>5} "
          f"{'product':>8} {'x':>5}")
    for r in rows:
        print(f"{r['d']:>5} {r['authors_original_ms']:>12.3f} {r['original_ms']:>10.3f} {r['original_speedup']:>5.2f} "
              f"{r['authors_compressed_ms']:>12.3f} {r['compressed_gather_ms']:>8.3f} "
              f"{r['compressed_gather_speedup']:>5.2f} {r['compressed_product_ms']:>8.3f} "
              f"{r['compressed_product_speedup']:>5.2f}")
    if out:
        write_json(out, {**_environment(), "rows": rows})
    return rows


def _canonical_loop(model, tx, data, batch_size: int, steps: int, seed: int = 0):
    """The Flax MNIST example's pattern: a Python loop over a jitted train step, batches gathered on the
    host from a per-epoch numpy permutation and sent to the device every step. Returns ``go(params)``."""
    x, y = np.asarray(data["x"]), np.asarray(data["y"])
    per_epoch = x.shape[0] // batch_size

    @jax.jit
    def train_step(params, opt_state, bx, by):
        def loss(p):
            return tasks.cross_entropy(model.apply({"params": p}, bx), by)
        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    def go(params):
        rng = np.random.default_rng(seed)
        opt_state = tx.init(params)
        for t in range(steps):
            if t % per_epoch == 0:
                perm = rng.permutation(x.shape[0])
            idx = perm[(t % per_epoch) * batch_size:(t % per_epoch + 1) * batch_size]
            params, opt_state, value = train_step(params, opt_state, x[idx], y[idx])
        jax.block_until_ready(params)
        return params
    return go


def bench_train_model(name: str, model, steps: int, seeds: int, batch_size: int = 128, n: int = 6000,
                      unroll: int | None = None) -> dict:
    """ms/step of lrjax's minibatch runner against the canonical loop on one model (synthetic 28x28 data:
    speed does not depend on the pixels), and ``seeds`` vmapped seeds against as many sequential runs.
    ``unroll``: the runner's straight-line calls (``Runner(unroll=...)``)."""
    rng = np.random.default_rng(0)
    train = {"x": jnp.asarray(rng.random((n, 28, 28, 1), np.float32)), "y": jnp.asarray(rng.integers(0, 10, n))}
    tx = optax.adam(1e-3)
    params = model.init(jax.random.key(0), train["x"][:1])["params"]

    def loss(p, batch, key):
        return tasks.cross_entropy(model.apply({"params": p}, batch["x"]), batch["y"])

    spec = dynamics.Minibatches(batch_size)
    chunk = min(steps, 500)
    single = dynamics.Runner(loss, tx, batches=spec, chunk_size=chunk, unroll=unroll)

    def runner():
        jax.block_until_ready(single.run(params, steps, data={"train": train}, progress=False).params)

    loop = _canonical_loop(model, tx, train, batch_size, steps)
    runner(), loop(params)  # compile both
    row = {"model": name, "steps": steps, "batch_size": batch_size, "unroll": unroll,
           "runner_ms": 1e3 * _time(runner) / steps, "loop_ms": 1e3 * _time(lambda: loop(params)) / steps}
    row["loop_over_runner"] = row["loop_ms"] / row["runner_ms"]
    if seeds:
        stacked = jax.vmap(lambda k: model.init(k, train["x"][:1])["params"])(jax.random.split(jax.random.key(1), seeds))
        batched = dynamics.Runner(loss, tx, batches=spec, chunk_size=chunk, batched=True, unroll=unroll)
        looped = dynamics.Runner(loss, tx, batches=spec, chunk_size=chunk, batched=True, unroll=unroll,
                                 members="loop")

        def in_turn():
            jax.block_until_ready(looped.run(stacked, steps, data={"train": train}, progress=False).params)

        def vmapped():
            jax.block_until_ready(batched.run(stacked, steps, data={"train": train}, progress=False).params)

        def sequential():
            for s in range(seeds):
                one = jax.tree.map(lambda a: a[s], stacked)
                jax.block_until_ready(single.run(one, steps, data={"train": train}, key=s, progress=False).params)

        vmapped(), in_turn()
        row["seeds"] = seeds
        row["vmapped_s"] = _time(vmapped, repeats=2)
        row["members_loop_s"] = _time(in_turn, repeats=2)
        row["sequential_s"] = _time(sequential, repeats=1)
        row["seeds_speedup_x"] = row["sequential_s"] / row["vmapped_s"]
        row["members_loop_speedup_x"] = row["sequential_s"] / row["members_loop_s"]
    return row


def bench_train(steps: int = 300, seeds: int = 16, out=None) -> list[dict]:
    """The minibatch runner against the canonical Flax/optax loop on the 784-200-200-10 MLP and the Flax
    MNIST example's CNN (float32, batch 128, Adam), and the seeds of one program (vmapped, or in turn with
    ``members="loop"``) against sequential runs (the CNN: 20 steps, 2 seeds; on CPU its runner calls are
    unrolled 10 steps at a time)."""
    from lrjax import models

    device = jax.devices()[0]
    rows = [bench_train_model("mlp 784-200-200-10", models.MLP((200, 200)), steps, seeds),
            bench_train_model("cnn (32, 64) + 256", models.CNN((32, 64), 256), 20,
                              seeds and min(seeds, 2), unroll=10 if device.platform == "cpu" else None)]
    print(f"device: {device.device_kind} ({device.platform}), jax {jax.__version__}, float32, batch 128, Adam")
    print(f"{'model':<22} {'steps':>5} {'lrjax ms':>9} {'loop ms':>8} {'loop/lrjax':>10} {'seeds':>5} "
          f"{'vmapped s':>9} {'in turn s':>9} {'sequential s':>12} {'vmap x':>6} {'in turn x':>9}")
    for r in rows:
        seeds_cols = (f"{r['seeds']:>5} {r['vmapped_s']:>9.2f} {r['members_loop_s']:>9.2f} {r['sequential_s']:>12.2f} "
                      f"{r['seeds_speedup_x']:>5.2f}x {r['members_loop_speedup_x']:>8.2f}x" if "seeds" in r else f"{'-':>5}")
        print(f"{r['model']:<22} {r['steps']:>5} {r['runner_ms']:>9.3f} {r['loop_ms']:>8.3f} "
              f"{r['loop_over_runner']:>10.2f} {seeds_cols}")
    if out:
        write_json(out, {**_environment(), "rows": rows})
    return rows


def bench_forward(specs=("lora(8)", "deep_lora(3, scale=1e-3)", "deep(3, scale=1.0)"), batch: int = 128,
                  repeats: int = 20, out=None) -> list[dict]:
    """ms per loss-and-gradient evaluation of the bound 784-200-200-10 MLP (batch ``batch``) with every
    kernel bound to each spec, materializing ``W`` (``binding.materialize``) against ``intercept.apply``
    (Dense layers through their parameterization, ``W`` never formed)."""
    from lrjax import binding, models
    from lrjax.binding import intercept

    model = models.MLP((200, 200))
    x = jnp.asarray(np.random.default_rng(0).random((batch, 28, 28, 1), np.float32))
    y = jnp.zeros((batch,), jnp.int32)
    base = model.init(jax.random.key(0), x[:1])["params"]
    rows = []
    for spec in specs:
        bound = binding.bind(base, [(".*kernel", spec), (".*", "dense()")], key=1)

        def loss_materialized(b):
            return tasks.cross_entropy(model.apply({"params": binding.materialize(b)}, x), y)

        def loss_intercepted(b):
            return tasks.cross_entropy(intercept.apply(model, b, x), y)

        times = {}
        for name, fn in (("materialize", loss_materialized), ("intercept", loss_intercepted)):
            g = jax.jit(jax.value_and_grad(fn))
            jax.block_until_ready(g(bound))
            times[name] = 1e3 * _time(lambda: jax.block_until_ready(g(bound)), repeats)
        rows.append({"spec": spec, "materialize_ms": times["materialize"], "intercept_ms": times["intercept"],
                     "speedup_x": times["materialize"] / times["intercept"]})
    _print_device(f"MLP 784-200-200-10, batch {batch}, loss + gradient")
    print(f"{'kernels bound to':<26} {'materialize ms':>14} {'intercept ms':>12} {'speedup':>7}")
    for r in rows:
        print(f"{r['spec']:<26} {r['materialize_ms']:>14.3f} {r['intercept_ms']:>12.3f} {r['speedup_x']:>6.2f}x")
    if out:
        write_json(out, {**_environment(), "rows": rows})
    return rows


def _subspace_step(model, x, y, weights, state, abstract: bool = False):
    """A jitted Adam step of the subspace-trained (``weights``: a ``GlobalSubspace``, ``state`` its state) or
    directly trained (``weights=None``, ``state`` the parameters) model on one batch. Returns ``(step,
    trained, opt_state, fixed)``, ``step(trained, opt_state, fixed) -> (trained, opt_state, loss)``: the
    trainable leaves and their Adam state (donated), the rest of the state passed along. ``abstract``: the
    state is shapes only (``jax.eval_shape``), for compiling without allocating."""
    roles = jax.tree.map(lambda _: param.TRAINABLE, state) if weights is None else weights.roles(state)
    leaves, treedef = jax.tree.flatten(state)
    mask = [r == param.TRAINABLE for r in jax.tree.leaves(roles)]
    trained = [l for l, m in zip(leaves, mask) if m]
    fixed = [l for l, m in zip(leaves, mask) if not m]
    materialize = (lambda s: s) if weights is None else weights.materialize
    tx = optax.adam(1e-3 if weights is None else 1e-2)

    def merge(t, f):
        t, f = iter(t), iter(f)
        return treedef.unflatten([next(t) if m else next(f) for m in mask])

    def step(t, opt, f):
        def loss(t):
            return tasks.cross_entropy(model.apply({"params": materialize(merge(t, f))}, x), y)
        value, g = jax.value_and_grad(loss)(t)
        u, opt = tx.update(g, opt, t)
        return optax.apply_updates(t, u), opt, value

    if not abstract:
        trained = [jnp.array(l) for l in trained]                 # copies: the step donates them
    opt = jax.eval_shape(tx.init, trained) if abstract else tx.init(trained)
    return jax.jit(step, donate_argnums=(0, 1)), trained, opt, fixed


def _footprint(step, *args) -> int:
    """Bytes XLA plans for one compiled call: arguments + outputs + temporaries (donated buffers counted once)."""
    m = step.lower(*args).compile().memory_analysis()
    return int(m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes)


def bench_intrinsic(dim: int = 1000, steps: int = 50, repeats: int = 5, batch: int = 128,
                    scaling_dims=(1000, 10_000, 100_000), out=None) -> dict:
    """Subspace training (``intrinsic_dimension.GlobalSubspace``) of the 784-200-200-10 MLP (``D = 199,210``) against
    direct training of it, one Adam step on a batch of ``batch``: ms per step, each case timed in turn
    ``repeats`` times (median), and the memory XLA plans for the step (``_footprint``). Cases: Fastfood and
    sparse (structure kept), dense with ``P`` regenerated every step (the default: nothing of ``D x d``
    kept) and dense with ``P`` kept (Li et al.'s way, ``4 D d`` bytes). Then the planned memory of dense
    (``P`` kept) and Fastfood steps at each of ``scaling_dims``, compiled from shapes only, against this
    machine's memory: where dense stops being possible and Fastfood continues."""
    import os

    from lrjax import models
    from lrjax.studies import intrinsic_dimension

    model = models.MLP((200, 200))
    x = jnp.asarray(np.random.default_rng(0).random((batch, 28, 28, 1), np.float32))
    y = jnp.asarray(np.arange(batch) % 10, jnp.int32)
    params = model.init(jax.random.key(0), x[:1])["params"]
    D = intrinsic_dimension.num_float_params(params)
    cases = {"direct": None, "fastfood": intrinsic_dimension.GlobalSubspace(dim, "fastfood"),
             "sparse": intrinsic_dimension.GlobalSubspace(dim, "sparse"),
             "dense (P regenerated)": intrinsic_dimension.GlobalSubspace(dim, "dense"),
             "dense (P kept)": intrinsic_dimension.GlobalSubspace(dim, "dense", cache=True)}
    runs = {}
    for name, weights in cases.items():
        state = params if weights is None else weights.init(params, jax.random.key(1))
        step, trained, opt, fixed = _subspace_step(model, x, y, weights, state)
        footprint = _footprint(step, trained, opt, fixed)
        trained, opt, loss = step(trained, opt, fixed)                      # compile, warm up
        jax.block_until_ready(loss)
        runs[name] = {"step": step, "carry": [trained, opt], "fixed": fixed, "times": [], "footprint": footprint,
                      "n": 1 if name == "dense (P regenerated)" else steps}
    for _ in range(repeats):
        for name, r in runs.items():
            t0 = time.perf_counter()
            for _ in range(r["n"]):
                r["carry"][0], r["carry"][1], loss = r["step"](*r["carry"], r["fixed"])
            jax.block_until_ready(loss)
            r["times"].append((time.perf_counter() - t0) / r["n"])
    direct_ms = 1e3 * float(np.median(runs["direct"]["times"]))
    rows = [{"case": name, "ms_per_step": 1e3 * float(np.median(r["times"])),
             "over_direct_x": 1e3 * float(np.median(r["times"])) / direct_ms, "planned_bytes": r["footprint"]}
            for name, r in runs.items()]
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    scaling = []
    for d in scaling_dims:
        row = {"dim": d}
        for kind in ("dense", "fastfood"):
            weights = intrinsic_dimension.GlobalSubspace(d, kind, cache=True)
            state = jax.eval_shape(lambda: weights.init(params, jax.random.key(1)))
            step, trained, opt, fixed = _subspace_step(model, x, y, weights, state, abstract=True)
            row[f"{kind}_planned_bytes"] = _footprint(step, trained, opt, fixed)
            row[f"{kind}_fits"] = row[f"{kind}_planned_bytes"] < memory
        scaling.append(row)
    _print_device(f"MLP 784-200-200-10 (D = {D:,}), batch {batch}, Adam, d = {dim}")
    print(f"{'case':<22} {'ms/step':>9} {'x direct':>8} {'planned MB':>10}")
    for r in rows:
        print(f"{r['case']:<22} {r['ms_per_step']:>9.3f} {r['over_direct_x']:>7.2f}x {r['planned_bytes'] / 1e6:>10.1f}")
    print(f"planned memory of one step against this machine's {memory / 2**30:.1f} GiB:")
    print(f"{'d':>8} {'dense (P kept) GB':>18} {'fits':>5} {'fastfood GB':>12} {'fits':>5}")
    for r in scaling:
        print(f"{r['dim']:>8} {r['dense_planned_bytes'] / 1e9:>18.2f} {str(r['dense_fits']):>5} "
              f"{r['fastfood_planned_bytes'] / 1e9:>12.3f} {str(r['fastfood_fits']):>5}")
    result = {**_environment(), "D": D, "dim": dim, "rows": rows, "memory_bytes": memory,
              "scaling": scaling}
    if out:
        write_json(out, result)
    return result
