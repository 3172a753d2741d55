"""The role-based optimizer: one optax transformation for a theta (or ``Bound``) whose leaves have roles.

Roles come from ``Parameterization.roles`` (``lrjax.binding.roles`` for a bound model): trainable leaves
get ``tx``; outer leaves (the two outer factors of a compressed deep factorization) get ``tx`` then
``scale(outer_lr_scale)``, the discrepant rate ``gamma * lr``; frozen leaves get a zero update and no state.
"""
from __future__ import annotations

import jax
import optax

from lrjax.param import FROZEN, OUTER, TRAINABLE


def optimizer(tx: optax.GradientTransformation, labels, outer_lr_scale: float = 1.0) -> optax.GradientTransformation:
    """``tx`` on trainable leaves, ``tx`` then ``scale(outer_lr_scale)`` on outer leaves (the
    discrepant rate ``gamma * lr``), and a zero update with no state on frozen leaves.

    ``labels`` is a role tree: ``roles(bound)``, or ``param.roles(theta)`` for a bare theta. The
    transformation also accepts a tree with ``None`` in place of some leaves (the runner passes only the
    floating-point leaves, see ``dynamics.runner.trainable_part``): those leaves have no label.
    """
    transforms = {TRAINABLE: tx, OUTER: optax.chain(tx, optax.scale(outer_lr_scale)),
                  FROZEN: optax.set_to_zero()}

    def labels_for(params):
        return jax.tree.map(lambda p, label: None if p is None else label, params, labels,
                            is_leaf=lambda x: x is None)

    return optax.multi_transform(transforms, labels_for)
