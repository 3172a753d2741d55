"""Signed partial permutations: semi-orthogonal matrices applied in ``O(size)``.

``SignedMap`` is an ``(a, b)`` matrix with at most one nonzero, +-1, per row; drawn uniformly by
``random_signed_map`` it has orthonormal rows (``a <= b``) or columns (``a > b``). It is the structured
orthogonal init of large deep factorizations (``lrjax.studies.sparse_recovery``); ``Deep(init="permutation")``
is the same draw as dense matrices.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class SignedMap:
    """An ``(a, b)`` matrix with at most one nonzero ``signs[i]`` per row ``i``, at column ``cols[i]``
    (``signs[i] = 0``: an empty row). Semi-orthogonal when the used columns are distinct."""

    cols: jax.Array
    signs: jax.Array
    n_cols: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.cols.shape[0], self.n_cols)

    def dense(self) -> jax.Array:
        a = self.cols.shape[0]
        return jnp.zeros(self.shape, self.signs.dtype).at[jnp.arange(a), self.cols].add(self.signs)

    def matvec(self, y: jax.Array) -> jax.Array:
        """``Q @ y`` for ``y: (b, k)``."""
        return self.signs[:, None] * y[self.cols]

    def rmatvec(self, x: jax.Array) -> jax.Array:
        """``Q^T @ x`` for ``x: (a, k)``."""
        return jnp.zeros((self.n_cols, x.shape[1]), x.dtype).at[self.cols].add(self.signs[:, None] * x)

    def then(self, other: "SignedMap") -> "SignedMap":
        """The product ``self @ other``."""
        return SignedMap(other.cols[self.cols], self.signs * other.signs[self.cols], other.n_cols)


def random_signed_map(key, shape: tuple[int, int], dtype=jnp.float64) -> SignedMap:
    """A uniformly drawn semi-orthogonal signed partial permutation of ``shape``."""
    a, b = shape
    k_perm, k_sign = jax.random.split(key)
    signs = 2.0 * jax.random.bernoulli(k_sign, 0.5, (max(a, b),)).astype(dtype) - 1.0
    perm = jax.random.permutation(k_perm, max(a, b))
    if a <= b:  # every row used, distinct columns
        return SignedMap(perm[:a].astype(jnp.int32), signs[:a], b)
    rows = perm[:b]  # column j lives in row rows[j]
    cols = jnp.zeros((a,), jnp.int32).at[rows].set(jnp.arange(b, dtype=jnp.int32))
    return SignedMap(cols, jnp.zeros((a,), dtype).at[rows].set(signs[:b]), b)
