"""A forward pass of a bound linen model that does not form ``W`` where that is cheaper.

``apply(model, bound, *args)`` runs ``model.apply`` with every ``nn.Dense`` call intercepted
(``flax.linen.intercept_methods``): a Dense whose kernel is bound to a family with a cheaper ``apply``
(LoRA: ``x W0 + s (x U) V^T``; low rank, DLoR, deep factorizations: through their factors) computes
``p.apply(theta, x) + bias`` and never reads a materialized kernel; every other parameter is materialized
as ``binding.materialize`` would. Convolutions and other layers run unchanged. Outputs equal
``model.apply({"params": binding.materialize(bound)}, *args)`` up to round-off (a different summation
order). ``lrjax bench forward`` measures both.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from lrjax import binding
from lrjax.param import Dense, Frozen, Matricized, Parameterization, Subspace

MATERIALIZED = (Dense, Frozen, Subspace, Matricized)  # nothing is saved by applying these through theta


def cheaper_apply(p: Parameterization) -> bool:
    """Whether ``p.apply`` avoids forming ``W`` (every family but dense, frozen, subspace, N-d kernels)."""
    return not isinstance(p, MATERIALIZED)


def dense_kernels(model: nn.Module, params, *args, method=None, **kwargs) -> set[str]:
    """Paths (``"Dense_0/kernel"``) of the kernels of the ``nn.Dense`` layers ``model.apply`` calls,
    found by an abstract trace (``jax.eval_shape``: nothing is computed)."""
    found = set()

    def record(next_fun, call_args, call_kwargs, context):
        if isinstance(context.module, nn.Dense) and context.method_name == "__call__":
            found.add("/".join(context.module.path) + "/kernel")
        return next_fun(*call_args, **call_kwargs)

    def traced(p):
        with nn.intercept_methods(record):
            return model.apply({"params": p}, *args, method=method, **kwargs)

    jax.eval_shape(traced, params)
    return found


def apply(model: nn.Module, bound: binding.Bound, *args, method=None, **kwargs):
    """``model.apply`` on a bound parameter tree, Dense layers applied through their parameterization."""
    kinds = dict(bound.params)
    full = jax.eval_shape(binding.materialize, bound)
    intercepted = {name for name in dense_kernels(model, full, *args, method=method, **kwargs)
                   if name in kinds and cheaper_apply(kinds[name])}
    leaves = [jnp.zeros(()) if name in intercepted else p.materialize(bound.theta[name]) for name, p in bound.params]
    params = bound.treedef.unflatten(leaves)  # placeholders where kernels are never read

    def dense(next_fun, call_args, call_kwargs, context):
        module = context.module
        name = "/".join(module.path) + "/kernel"
        if not (isinstance(module, nn.Dense) and context.method_name == "__call__" and name in intercepted):
            return next_fun(*call_args, **call_kwargs)
        x = jnp.asarray(call_args[0])
        y = kinds[name].apply(bound.theta[name], x)
        bias_name = "/".join(module.path) + "/bias"
        if module.use_bias and bias_name in kinds:
            y = y + kinds[bias_name].materialize(bound.theta[bias_name])
        return y

    with nn.intercept_methods(dense):
        return model.apply({"params": params}, *args, method=method, **kwargs)
