"""Training deep factorizations on a ``RecoveryTask``: the methods compared in the compressible-dynamics
papers, and timed runs through the compiled runner.

Methods (each a ``Method``: label, parameterization, theta, outer learning-rate scale):

- ``original``: ``deep(L, width, scale=eps)``, eps-scaled orthogonal factors (Yaras et al.);
- ``compressed``: ``analysis.compress`` from one gradient at init, width ``2 r``, outer factors at
  ``gamma * eta``;
- ``spectral``: Kwon et al.'s spectral init from the task's surrogate ``S = U diag(s) V^T``:
  ``F_1 = eps U_{:, :w}``, ``F_2 ... F_{L-1} = eps I_w``, ``F_L = eps V_{:, :w}^T`` (``x @ W = x F_1 ... F_L``),
  all factors at rate ``eta``;
- ``narrow``: ``original`` with width ``w`` and a random init (the control for ``compressed``).

``fit`` trains one through the training recipe (``recipe.train``) and reports ``ms_per_step`` from the runner's execution time (compilation is timed apart); a run's
wall-time axis is ``step * ms_per_step`` (every chunk runs the same compiled program).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import optax

from lrjax import analysis, dynamics, param
from lrjax.param import OUTER
from lrjax.studies import recipe
from lrjax.tasks.recovery import RecoveryTask


@dataclasses.dataclass(frozen=True)
class Method:
    label: str
    param: param.Parameterization
    theta: Any
    outer_lr_scale: float = 1.0


def original(task: RecoveryTask, depth: int, eps: float, key, width: int | None = None,
             label: str = "original") -> Method:
    p = param.deep(depth, width=width, scale=eps)
    d, n = task.surrogate.shape
    return Method(label, p, p.init(key, (d, n), task.surrogate.dtype))


def narrow(task: RecoveryTask, depth: int, eps: float, key, width: int) -> Method:
    return original(task, depth, eps, key, width, label=f"narrow w={width}")


def compressed(task: RecoveryTask, orig: Method, rank: int, gamma: float, width: int | None = None) -> Method:
    """Compress ``orig`` (a ``deep`` method) from one gradient of the task loss at init."""
    def loss(theta):
        return task.loss(orig.param.materialize(theta), task.data)

    p, theta = analysis.compress(orig.param, orig.theta, loss, rank, width)
    return Method(f"compressed w={p.width} gamma={gamma:g}", p, theta, gamma)


def spectral(task: RecoveryTask, depth: int, eps: float, width: int) -> Method:
    """Kwon et al.'s spectral initialisation of a width-``width`` deep factorization (module docstring)."""
    if depth < 2:
        raise ValueError(f"spectral: depth must be >= 2, got {depth}")
    u, _, vt = jnp.linalg.svd(task.surrogate, full_matrices=False)
    eye = jnp.eye(width, dtype=u.dtype)
    factors = [eps * u[:, :width]] + [eps * eye] * (depth - 2) + [eps * vt[:width]]
    return Method(f"spectral w={width}", param.deep(depth, width=width, scale=eps), {"factors": factors})


def batched(keys, make) -> Method:
    """A ``Method`` whose theta has a leading seed axis: ``make(key) -> Method`` vmapped over ``keys``."""
    first = make(keys[0])
    return Method(first.label, first.param, jax.vmap(lambda k: make(k).theta)(keys), first.outer_lr_scale)


def fit(method: Method, task: RecoveryTask, eta: float, steps: int, **options) -> recipe.Training:
    """Plain GD (``optax.sgd(eta)``, outer factors at ``method.outer_lr_scale * eta``) on ``task.loss``;
    the test error is recorded every ``record_every`` steps (as the papers' code does every 100).
    ``options``: those of ``gradient_descent``."""
    p = method.param
    one = jax.tree.map(lambda x: x[0], method.theta) if options.get("batched") else method.theta

    def loss(theta, data):
        return task.loss(p.materialize(theta), data)

    def test_error(theta, data):
        return task.test_error(p.materialize(theta), data)

    return gradient_descent(method.label, method.theta, p.roles(one), method.outer_lr_scale, loss, test_error,
                            task.data, eta, steps, num_params=p.num_params(task.surrogate.shape), **options)


def gradient_descent(label: str, theta, roles, outer_lr_scale: float, loss, test_error, data, eta: float,
                     steps: int, *, num_params: int | None = None, record_every: int = 100,
                     checkpoint: dynamics.Checkpointing | None = None, **options) -> recipe.Training:
    """Plain GD at rate ``eta`` (leaves with role ``outer`` at ``outer_lr_scale * eta``) on ``loss(theta,
    data)`` through the training recipe; ``test_error(theta, data)`` is the evaluation, recorded every
    ``record_every`` steps. With ``checkpoint`` the run checkpoints there and a re-run resumes
    (``ms_per_step`` then times the steps of every process that ran them, earlier ones read from the
    checkpoints); the label, ``eta`` and
    ``outer_lr_scale`` join its identity. ``options``: ``recipe.train``'s (``tol``, ``chunk_size``,
    ``batched``, ``records``, ``progress``, ...)."""
    if checkpoint is not None:
        checkpoint = dataclasses.replace(checkpoint, identity={"method": label, "eta": eta,
                                                               "outer_lr_scale": outer_lr_scale, **checkpoint.identity})
    options.setdefault("chunk_size", 100)
    return recipe.train(loss, theta, optax.sgd(eta), steps, data=data, roles=roles, outer_lr_scale=outer_lr_scale,
                        evaluation=("test_error", test_error), record_every=record_every, label=label,
                        num_params=num_params, checkpoint=checkpoint, **options)


def authors_pattern_ms(method: Method, task: RecoveryTask, eta: float, steps: int, inner: int = 100) -> float:
    """ms per step of the papers' pattern (``cjyaras/law-of-parsimony``'s ``solver.train``): a Python loop
    over jitted ``fori_loop`` chunks of ``inner`` plain GD steps on the end-to-end matrix (outer factors
    of a compressed method at ``method.outer_lr_scale * eta``, their per-factor step sizes), evaluating the
    train and test loss over all entries on the host after each chunk."""
    p = method.param
    one = method.theta
    rates = jax.tree.map(lambda role: eta * (method.outer_lr_scale if role == OUTER else 1.0), p.roles(one))

    def loss(theta, data):
        return task.loss(p.materialize(theta), data)

    @jax.jit
    def chunk(theta, data):
        def body(_, th):
            g = jax.grad(loss)(th, data)
            return jax.tree.map(lambda w, gw, lr: w - lr * gw, th, g, rates)
        return jax.lax.fori_loop(0, inner, body, theta)

    @jax.jit
    def evaluate(theta, data):
        w = p.materialize(theta)
        return task.loss(w, data), task.test_error(w, data)

    theta = chunk(method.theta, task.data)
    jax.block_until_ready(evaluate(theta, task.data))
    n = max(1, steps // inner)
    t0 = time.perf_counter()
    for _ in range(n):
        theta = chunk(theta, task.data)
        train, test = evaluate(theta, task.data)
        float(train), float(test)
    return 1e3 * (time.perf_counter() - t0) / (n * inner)
