"""Bind parameterizations to any Flax model's parameters by path rules, without editing the model.

- ``rules``: ``bind(params, rules, key) -> Bound``, ``materialize``, ``roles``, ``count_params`` (no Flax import);
- ``optim``: ``optimizer(tx, roles)``, the role-based optax transformation (frozen leaves get no update);
- ``intercept``: a linen forward pass that applies bound Dense kernels without forming ``W`` (imports Flax);
- ``nnx_layer``: ``Linear``, an nnx layer whose weight is a parameterization (imports Flax).
"""
from lrjax.binding.optim import optimizer
from lrjax.binding.rules import (PASSTHROUGH, Bound, Rules, bind, count_params, materialize, parse_rules, path_to_str,
                                 roles)

__all__ = ["PASSTHROUGH", "Bound", "Rules", "bind", "count_params", "materialize", "optimizer", "parse_rules",
           "path_to_str", "roles"]
