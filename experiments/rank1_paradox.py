"""Experiment: the rank-1 paradox (DLoR paper, claim 1).

(a) A network whose every layer is rank 1 interpolates N scalar data points exactly. Construction: the
first rank-1 layer reduces ``x`` to a scalar channel ``s = v^T tanh(x W_1 + b_1)``-style feature (distinct
for distinct points, a.s.); the second rank-1 layer ``W_2 = u_2 v_2^T`` gives units
``tanh(a (s - t_j))`` with thresholds ``t_j`` between consecutive sorted ``s_i`` (a nearly triangular,
well-conditioned feature matrix); the output layer is solved by least squares. Error: round-off.

(b) The same rank-1 structure cannot approximate a map ``R^2 -> R^2`` with a 2-D image: after any rank-1
layer the network depends on ``x`` only through one scalar, so its image is a curve, however long it
trains. DLoR layers of the same rank (``D + u v^T``) and dense layers are trained beside it (Adam,
full batch, ``seeds`` seeds vmapped).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.schema import Choice, Float, Int, Rule, Schema, Seq
from lrjax.models import param_mlp
from lrjax.studies import regression

DTYPE = "float64"   # the run context enables 64-bit types for this experiment

SCHEMA = Schema(
    interp_points=Seq(Int(min=2)), interp_width=Int(min=1), width=Int(min=2), rank=Int(min=1),
    act=Choice(*sorted(param_mlp.ACTIVATIONS)), train_points=Int(min=1), grid=Int(min=2), steps=Int(min=1),
    lr=Float(gt=0), seeds=Int(min=1), record_every=Int(min=1), seed=Int(min=0),
    checks=[Rule(("rank",), lambda r: r <= 2, "rank must be <= 2 (the network maps R^2 -> R^2)"),
           Rule(("record_every", "steps"), lambda r, s: r <= s, "record_every must be <= steps")],
)


def interpolate_rank1(key, n_points: int, width: int, sharpness: float = 4.0) -> dict:
    """Part (a): a (2, width, n_points, 1) rank-1 tanh network fitted exactly to random scalar labels."""
    kx, ky, k1, k2 = jax.random.split(key, 4)
    x = np.asarray(regression.uniform_inputs(kx, n_points, 2))
    y = np.asarray(jax.random.normal(ky, (n_points,), jnp.float64))
    u1 = np.asarray(jax.random.normal(k1, (2,)))                            # W_1 = u1 v1^T: (2, width)
    v1, b1 = np.asarray(jax.random.normal(k2, (2, width)))
    z1 = np.tanh(np.outer(x @ u1, v1) + b1)                                # (N, width), rank-1 pre-activation
    v2 = np.asarray(jax.random.normal(jax.random.fold_in(key, 7), (width,)))
    s = z1 @ v2                                                            # the scalar channel
    order = np.sort(s)
    gaps = np.diff(order)
    if gaps.min() <= 0:
        raise RuntimeError("two data points share the scalar channel value; resample")
    t = np.concatenate([[order[0] - gaps.mean()], (order[:-1] + order[1:]) / 2])   # n_points thresholds
    a = sharpness / gaps.min()
    features = np.tanh(a * (s[:, None] - t[None]))                          # W_2 = v2 (a 1^T): rank 1
    phi = np.concatenate([features, np.ones((n_points, 1))], axis=1)
    w, *_ = np.linalg.lstsq(phi, y, rcond=None)
    residual = phi @ w - y
    return {"points": n_points, "max_abs_residual": float(np.abs(residual).max()),
            "relative_residual": float(np.linalg.norm(residual) / np.linalg.norm(y)),
            "feature_condition_number": float(np.linalg.cond(features))}


def target_map(x):
    """``F(x) = (sin(pi x_1), cos(pi x_2))``: its image of ``[-1, 1]^2`` is 2-dimensional."""
    return jnp.stack([jnp.sin(jnp.pi * x[..., 0]), jnp.cos(jnp.pi * x[..., 1])], axis=-1)


def architectures(width: int, rank: int, act: str) -> dict:
    sizes = (2, width, width, 2)
    return {"rank-1": param_mlp.mlp(sizes, f"lowrank({rank})", act),
            "DLoR (rank 1 + diagonal)": param_mlp.mlp(sizes, f"dlor({rank})", act),
            "dense": param_mlp.mlp(sizes, "dense()", act)}


def run(config, ctx) -> dict:
    dtype = ctx.dtype
    interp = [interpolate_rank1(jax.random.key(config.seed + i), n, config.interp_width)
              for i, n in enumerate(config.interp_points)]
    kx, kt = jax.random.split(jax.random.key(config.seed))
    x = regression.uniform_inputs(kx, config.train_points, 2, dtype)
    g = jnp.linspace(-1, 1, config.grid)
    x_test = jnp.stack(jnp.meshgrid(g, g), -1).reshape(-1, 2)
    data = {"x": x, "y": target_map(x), "x_test": x_test, "y_test": target_map(x_test)}
    results, trainings = {}, {}
    for name, net in architectures(config.width, config.rank, config.act).items():
        tr = regression.train(net, data, config.steps, seeds=config.seeds, lr=config.lr, key=config.seed + 1,
                              record_every=config.record_every, desc=name)
        trainings[name] = (net, tr)
        results[name] = {"num_params": net.num_params(), "final_train_mse_median": float(np.median(tr.loss[:, -1])),
                         "final_train_mse_min": float(np.min(tr.loss[:, -1])),
                         "final_test_mse_median": float(np.median(tr.evaluation[:, -1]))}
    plot(config, data, trainings, ctx.figure("rank1_paradox"))
    return {"interpolation": interp, "interpolation_exact": bool(max(r["relative_residual"] for r in interp) < 1e-9),
            "approximation": results}


def plot(config, data, trainings, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2 + len(trainings), figsize=(5 * (2 + len(trainings)) - 2, 4))
    for name, (_, tr) in trainings.items():
        med = np.median(tr.loss, axis=0)
        line, = axes[0].semilogy(med, label=f"{name} (median of {tr.loss.shape[0]})")
        axes[0].fill_between(np.arange(len(med)), tr.loss.min(0), tr.loss.max(0), color=line.get_color(), alpha=0.2)
    axes[0].set_xlabel("Adam step (full batch)")
    axes[0].set_ylabel("train MSE")
    axes[0].set_title("F(x) = (sin pi x1, cos pi x2)")
    axes[0].legend(fontsize=8)
    y = np.asarray(data["y_test"])
    axes[1].scatter(y[:, 0], y[:, 1], s=2, c="k")
    axes[1].set_title("target image of the test grid")
    for ax, (name, (net, tr)) in zip(axes[2:], trainings.items()):
        theta = jax.tree.map(lambda t: t[int(np.argmin(tr.loss[:, -1]))], tr.params)
        out = np.asarray(net.apply(theta, data["x_test"]))
        ax.scatter(out[:, 0], out[:, 1], s=2, c="C3")
        ax.set_title(f"{name}: image (best seed, MSE {tr.loss[:, -1].min():.1e})", fontsize=9)
    for ax in axes[1:]:
        ax.set_xlim(-1.3, 1.3)
        ax.set_ylim(-1.3, 1.3)
        ax.set_aspect("equal")
    save_figure(fig, path, dpi=100)
