"""Run deep matrix factorization and its compressed network side by side, recording everything the
invariant-subspace checks of ``lrjax.analysis.theorem`` need, and check them.

``simulate(...)`` trains ``W = F_1 ... F_L`` (``d x d`` factors, eps-scaled orthogonal or Gaussian init)
on a random rank-``r*`` target with GD (loss ``1/2 ||W - Phi||_F^2``, optional weight decay) and, in the
same compiled program, the compressed network ``[V, eps_l I_{2r*}, V^T W(0) / prod eps]`` whose outer
factors stay fixed; it records the factors' spectra, the block-structure residual against the predicted
``rho_l(t)`` and the compressed/original gap, and returns ``(TheoremCheck, trajectory)``.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import param, tasks
from lrjax.analysis.compression import compress_factors_onto, compressed_param, invariant_input_subspace
from lrjax.analysis.spectra import singular_values
from lrjax.analysis.theorem import (check_invariant_subspace, prop2_bound, rho_trajectory, structure_residual,
                                   theorem_bases)
from lrjax.studies import recipe


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _positive_finite(x) -> bool:
    return _finite(x) and x > 0


@dataclasses.dataclass(frozen=True)
class Setup:
    """One simulation: ``d x d`` factors, target rank ``rank``, ``depth`` factors scaled by ``eps`` (one number
    or one per factor), GD at ``eta`` with ``weight_decay`` for ``steps`` steps recorded every
    ``record_every``, in ``dtype``, from an ``init`` (``"orthogonal"``: the theorem's hypothesis, or
    ``"gaussian"``) drawn from ``seed``; the compressed network uses the ``compression_subspace``
    ``"invariant"`` (the theorem's ``V``) or ``"random"`` (a negative control for Prop. 2). Bad values raise
    ``ValueError`` naming them."""

    d: int = 30
    rank: int = 3
    depth: int = 3
    eps: float | tuple = 1.0
    eta: float = 0.1
    weight_decay: float = 0.0
    steps: int = 300
    record_every: int = 1
    dtype: str = "float64"
    init: str = "orthogonal"
    seed: int = 0
    compression_subspace: str = "invariant"

    def __post_init__(self):
        for name in ("d", "rank", "depth", "steps", "record_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"simulate: {name} must be a positive integer, got {value!r}")
        if self.steps % self.record_every:
            raise ValueError(f"simulate: steps={self.steps} must be a multiple of record_every={self.record_every}")
        if self.rank > self.d:
            raise ValueError(f"simulate: rank={self.rank} exceeds d={self.d}")
        if self.init not in ("orthogonal", "gaussian"):
            raise ValueError(f"simulate: init must be 'orthogonal' or 'gaussian', got {self.init!r}")
        if self.compression_subspace not in ("invariant", "random"):
            raise ValueError(f"simulate: compression_subspace must be 'invariant' or 'random', "
                             f"got {self.compression_subspace!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"simulate: dtype must be 'float32' or 'float64', got {self.dtype!r}")
        eps = tuple(self.eps) if isinstance(self.eps, (tuple, list)) else (self.eps,) * self.depth
        if len(eps) != self.depth or not all(_positive_finite(e) for e in eps):
            raise ValueError(f"simulate: eps must be a positive finite number or {self.depth} of them, got {self.eps!r}")
        object.__setattr__(self, "eps", tuple(float(e) for e in eps))
        for name in ("eta", "weight_decay"):
            value = getattr(self, name)
            if not _finite(value) or value < 0 or (name == "eta" and value == 0):
                raise ValueError(f"simulate: {name} must be a finite number {'> 0' if name == 'eta' else '>= 0'}, "
                                 f"got {value!r}")


def simulate(setup: Setup | None = None, *, progress: bool | None = None, **fields):
    """Run the original and the compressed deep factorization side by side and check the theorem:
    ``simulate(Setup(...))`` or ``simulate(d=..., rank=..., ...)`` (``Setup``'s fields).

    Returns ``(check: TheoremCheck, trajectory: dict of numpy arrays)``; trajectory keys: ``step (T,)``,
    ``singular_values (T, depth, d)`` descending, ``rho (T, depth)``, ``subspace_residual (T, depth)``,
    ``compression_gap (T,)``, ``compression_bound (T,)`` (Prop. 2's ``(d - 2r*) prod_l rho_l(t)^2``),
    ``product_norm (T,)`` (``||W(t)||_F``), ``top_direction_leak (T, depth)`` (sin of the angle between the top-r*
    right singular vectors of each factor and the invariant output subspace), ``loss (steps,)``.
    """
    setup = setup if setup is not None else Setup(**fields)
    d, rank, depth, eps_l, eta = setup.d, setup.rank, setup.depth, setup.eps, setup.eta
    weight_decay, steps, record_every, dtype, init = (setup.weight_decay, setup.steps, setup.record_every,
                                                      setup.dtype, setup.init)
    jdtype = jnp.dtype(dtype)
    key_target, key_init, key_subspace = jax.random.split(jax.random.key(setup.seed), 3)
    target = tasks.low_rank_target(key_target, d, rank, jdtype)
    deep = param.deep(depth, init=init, scale=eps_l)
    theta = deep.init(key_init, (d, d), jdtype)
    loss = tasks.factorization_loss
    bulk = max(d - 2 * rank, 1)
    grad_first = jax.grad(loss)(theta, target)["factors"][0]
    bases = theorem_bases(theta["factors"], grad_first, rank, bulk)
    comp = compressed_param(deep, rank, d - bulk)
    if setup.compression_subspace == "invariant":
        v = invariant_input_subspace(theta["factors"][0], grad_first, rank, d - bulk)
    else:
        v = jnp.linalg.qr(jax.random.normal(key_subspace, (d, d - bulk), jdtype))[0]
    comp_theta = {"factors": compress_factors_onto(deep, theta["factors"], v)}
    both = {"original": theta, "compressed": comp_theta}
    roles = {"original": deep.roles(theta), "compressed": comp.roles(comp_theta)}
    rho_all = jnp.asarray(rho_trajectory(eps_l, eta, weight_decay, steps), jdtype)

    def joint_loss(p, tgt):
        return loss(p["original"], tgt) + loss(p["compressed"], tgt)

    def recorder(p):
        fs = p["original"]["factors"]
        w = param.deep(depth).materialize(p["original"])
        return {"sv": jnp.stack([singular_values(f) for f in fs]), "w": w - comp.materialize(p["compressed"]),
                "w_norm": jnp.linalg.norm(w)}

    class Structure:  # stateful: counts steps to index the predicted rho
        def init(self, p):
            return jnp.zeros((), jnp.int32)

        def update(self, t, p):
            fs = p["original"]["factors"]
            res = jnp.stack([structure_residual(f, rho_all[t, l], bases[l]) for l, f in enumerate(fs)])
            leak = []
            for f, (_, _, b_a, _) in zip(fs, bases):
                top = jnp.linalg.svd(f, full_matrices=False)[2][:rank].T          # (d, r*) output side
                leak.append(jnp.linalg.norm(top - b_a @ (b_a.T @ top), ord=2))
            return t + record_every, {"residual": res, "leak": jnp.stack(leak)}

    tx = optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(eta))
    result = recipe.train(joint_loss, both, tx, steps, data=target, roles=roles, outer_lr_scale=0.0,
                          records={"spectra": recorder, "structure": Structure()}, record_every=record_every,
                          chunk_size=max(record_every, 100), progress=progress, label="theorem",
                          metrics={"original_loss": lambda p, tgt: loss(p["original"], tgt)}).result
    rec = result.records
    step = rec["step"]
    gap = np.sum(np.asarray(rec["spectra/w"], np.float64) ** 2, axis=(-2, -1))
    rho = np.asarray(rho_all)[step]
    check = check_invariant_subspace(rec["spectra/sv"], rho, rec["structure/residual"], gap, d, rank, dtype,
                                     init == "orthogonal", float(np.max(rec["spectra/w_norm"])),
                                     random_subspace=setup.compression_subspace == "random")
    trajectory = {"step": step, "singular_values": rec["spectra/sv"], "rho": rho,
                  "subspace_residual": rec["structure/residual"], "compression_gap": gap,
                  "compression_bound": prop2_bound(rho, d, rank), "product_norm": rec["spectra/w_norm"],
                  "top_direction_leak": rec["structure/leak"],
                  "loss": result.scalars["original_loss"]}
    return check, trajectory

