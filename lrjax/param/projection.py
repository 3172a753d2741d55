"""Random projections ``P: R^d -> R^D`` for random-subspace training (Li et al. 2018, arXiv 1804.08838).

A projection is a small frozen value ``(size D, dim d, kind)``; ``apply(z, key) -> P z`` of shape ``(D,)``
regenerates ``P``'s random structure from ``key`` on every call, so ``P`` is never stored (a checkpoint holds
only the key). Column ``j`` of a dense or sparse ``P`` is drawn from ``fold_in(key, j)`` alone, so the
first ``d'`` columns of a ``d``-column projection are the ``d'``-column projection (nested subspaces).

- ``dense``: i.i.d. Gaussian columns scaled to unit norm exactly. Memory and time ``O(D d)`` per call.
- ``sparse``: a very sparse random projection (Li, Hastie, Church 2006, density ``1/sqrt(D)``) with a fixed
  count ``k = ceil(sqrt(D))`` of nonzeros per column: rows uniform (with replacement), values
  ``+-1/sqrt(k)`` with random signs, so ``E ||P e_j||^2 = 1`` exactly (``= 1`` when no row repeats).
  Memory and time ``O(d sqrt(D))``.
- ``fastfood``: ``n = 2^ceil(log2 d)``, ``nb = ceil(D / n)`` blocks ``V_i = H G_i Pi_i H B / sqrt(n ||g_i||^2)``
  (``H`` the ``n x n`` Sylvester-Hadamard matrix with ``+-1`` entries, ``B`` random signs, ``Pi_i`` random
  permutations, ``G_i = diag(g_i)`` Gaussian), stacked, truncated to the first ``D`` rows and scaled by
  ``sqrt(n / D)``. ``B`` is shared by the blocks (they differ in ``Pi_i`` and ``G_i``), so ``H B z`` and,
  in the transpose, ``B H`` are computed once: two length-``n`` transforms per block per step instead of
  four. Every column of a block has norm exactly 1 before the scaling, so ``||P e_j||^2 = nb n / D`` before
  the truncation and ``E ||P e_j||^2 = 1`` after it (Li et al.'s normalisation ``1 / sqrt(D ||g||^2)`` for
  their single block ``n = 2^ceil(log2 D)``). Memory ``O(D)``, time ``O(D log d)``; ``z`` is zero-padded
  from ``d`` to ``n``. Its gradient is a ``custom_vjp`` (the transpose, gathering by the inverse
  permutations): reverse mode only (``jax.jvp``/``jacfwd`` through Fastfood are not supported).
"""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from lrjax.param.base import check_positive_int

KINDS = ("dense", "sparse", "fastfood")


def _signs(key, shape, dtype) -> jax.Array:
    """Random ``+-1`` from int32 draws: the same signs whether or not 64-bit types are enabled."""
    return (1 - 2 * jax.random.randint(key, shape, 0, 2, jnp.int32)).astype(dtype)


def hadamard_matrix(n: int) -> np.ndarray:
    """The explicit ``n x n`` Sylvester-Hadamard matrix: ``H_1 = [1]``, ``H_{2m} = [[H, H], [H, -H]]``."""
    h = np.ones((1, 1), np.float32)
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h


def hadamard_transform(x: jax.Array, radix: int = 64) -> jax.Array:
    """``x @ H`` over the last axis of length ``n = 2^k`` (``H`` Sylvester-ordered, entries ``+-1``, symmetric,
    unnormalized: ``H H = n I``): ``O(n log n)``. The innermost ``min(n, radix)`` factor is one small
    matmul with ``H_radix`` (full float32 precision), the rest butterfly stages ``(a, b) -> (a + b, a - b)``
    (``H_{2m} = H_2 kron H_m``); on CPU about twice as fast as butterflies alone."""
    n = x.shape[-1]
    if n & (n - 1):
        raise ValueError(f"hadamard_transform: length must be a power of two, got {n}")
    lead, h = x.shape[:-1], min(n, radix)
    x = jnp.matmul(x.reshape(*lead, n // h, h), jnp.asarray(hadamard_matrix(h), x.dtype),
                   precision=jax.lax.Precision.HIGHEST).reshape(*lead, n)
    while h < n:
        y = x.reshape(*lead, n // (2 * h), 2, h)
        a, b = y[..., 0, :], y[..., 1, :]
        x = jnp.stack([a + b, a - b], axis=-2).reshape(*lead, n)
        h *= 2
    return x


@dataclasses.dataclass(frozen=True)
class Projection:
    """``P: (size, dim)`` of ``kind`` in ``KINDS`` (module docstring); ``apply(z, key)`` is ``P z``."""

    size: int
    dim: int
    kind: str = "fastfood"

    def __post_init__(self):
        check_positive_int("projection: size", self.size)
        check_positive_int("projection: dim", self.dim)
        if self.kind not in KINDS:
            raise ValueError(f"projection kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def block(self) -> int:
        """Fastfood's block length ``n = 2^ceil(log2 dim)``."""
        return 1 << max(0, (self.dim - 1).bit_length())

    @property
    def nonzeros_per_column(self) -> int:
        """The sparse projection's ``k = ceil(sqrt(size))``."""
        return math.isqrt(self.size - 1) + 1

    def apply(self, z: jax.Array, key: jax.Array) -> jax.Array:
        """``P z`` of shape ``(size,)`` for ``z: (dim,)``; ``P`` regenerated from ``key``."""
        return self.project(self.structure(key, z.dtype), z)

    def structure(self, key: jax.Array, dtype=jnp.float32) -> dict:
        """The random arrays that define ``P``, drawn from ``key`` (in float32, then cast to ``dtype``: the same
        ``P`` for every ``dtype``): ``dense`` ``{"columns": (dim, size)}``
        (``P^T``); ``sparse`` ``{"rows", "values"}: (dim, k)``; ``fastfood`` ``{"signs": (n,), "perms",
        "inverse_perms", "gains": (nb, n)}`` (row ``i`` of the last three defines block ``V_i``)."""
        return {"dense": self._dense_structure, "sparse": self._sparse_structure,
                "fastfood": self._fastfood_structure}[self.kind](key, dtype)

    def project(self, structure: dict, z: jax.Array) -> jax.Array:
        """``P z`` of shape ``(size,)`` for ``z: (dim,)`` from a ``structure`` of this projection."""
        if z.shape != (self.dim,):
            raise ValueError(f"projection: z must have shape ({self.dim},), got {z.shape}")
        return {"dense": self._dense, "sparse": self._sparse, "fastfood": self._fastfood}[self.kind](structure, z)

    def matrix(self, key: jax.Array, dtype=jnp.float32) -> jax.Array:
        """The explicit ``P: (size, dim)`` (for tests and small sizes): ``P e_j`` for every ``j``."""
        s = self.structure(key, dtype)
        return jax.vmap(lambda e: self.project(s, e), out_axes=1)(jnp.eye(self.dim, dtype=dtype))

    def structure_bytes(self, itemsize: int = 4) -> int:
        """Bytes of ``structure`` (``P`` itself for ``dense``)."""
        if self.kind == "dense":
            return self.size * self.dim * itemsize
        if self.kind == "sparse":
            return self.dim * self.nonzeros_per_column * (4 + itemsize)      # rows + values
        return -(-self.size // self.block) * self.block * (8 + itemsize) + self.block * itemsize  # perms, gains, B

    def _columns(self, key, draw):
        return jax.vmap(lambda j: draw(jax.random.fold_in(key, j)))(jnp.arange(self.dim))

    def _dense_structure(self, key, dtype):
        p = self._columns(key, lambda k: jax.random.normal(k, (self.size,), jnp.float32))    # (dim, size)
        return {"columns": (p / jnp.linalg.norm(p, axis=1, keepdims=True)).astype(dtype)}

    def _dense(self, s, z):
        return z @ s["columns"]

    def _sparse_structure(self, key, dtype):
        k = self.nonzeros_per_column

        def draw(kj):
            kr, ks = jax.random.split(kj)
            return (jax.random.randint(kr, (k,), 0, self.size, jnp.int32),
                    _signs(ks, (k,), dtype) / math.sqrt(k))

        rows, values = self._columns(key, draw)
        return {"rows": rows, "values": values}

    def _sparse(self, s, z):
        contributions = (s["values"].astype(z.dtype) * z[:, None]).reshape(-1)
        return jnp.zeros((self.size,), z.dtype).at[s["rows"].reshape(-1)].add(contributions)

    def _fastfood_structure(self, key, dtype):
        n = self.block
        nb = -(-self.size // n)
        kb, kp, kg = jax.random.split(key, 3)
        signs = _signs(kb, (n,), dtype)
        perms = jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(kp, nb)).astype(jnp.int32)
        return {"signs": signs, "perms": perms, "inverse_perms": jnp.argsort(perms, axis=1).astype(jnp.int32),
                "gains": jax.random.normal(kg, (nb, n), jnp.float32).astype(dtype)}

    def _fastfood(self, s, z):
        return _fastfood_map(self, s, z)


def _block_scale(proj: Projection, s: dict, dtype) -> jax.Array:
    """``sqrt(n / D) / sqrt(n ||g_i||^2)`` per block: ``(nb, 1)``."""
    gains = s["gains"].astype(dtype)
    return math.sqrt(proj.block / proj.size) / jnp.sqrt(proj.block * jnp.sum(gains ** 2, axis=1, keepdims=True))


def _fastfood_forward(proj: Projection, s: dict, z: jax.Array) -> jax.Array:
    """``P z``: ``B``, ``H``, ``Pi``, ``G``, ``H`` per block, scaled, stacked, truncated to ``D``."""
    x = hadamard_transform(jnp.pad(z, (0, proj.block - proj.dim)) * s["signs"].astype(z.dtype))    # H B z
    x = x[s["perms"]] * s["gains"].astype(z.dtype)
    x = hadamard_transform(x) * _block_scale(proj, s, z.dtype)
    return x.reshape(-1)[: proj.size]


def _fastfood_transpose(proj: Projection, s: dict, g: jax.Array) -> jax.Array:
    """``P^T g`` (``H`` is symmetric, ``Pi^T`` is the inverse permutation), summed over blocks."""
    n, nb = proj.block, s["gains"].shape[0]
    x = jnp.pad(g, (0, nb * n - proj.size)).reshape(nb, n) * _block_scale(proj, s, g.dtype)
    x = hadamard_transform(x) * s["gains"].astype(g.dtype)
    x = jnp.sum(jnp.take_along_axis(x, s["inverse_perms"], axis=1), axis=0)
    return (hadamard_transform(x) * s["signs"].astype(g.dtype))[: proj.dim]


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _fastfood_map(proj: Projection, s: dict, z: jax.Array) -> jax.Array:
    """``P z`` with its transpose as the VJP (gathers by the inverse permutation, no scatter); the structure
    gets no gradient."""
    return _fastfood_forward(proj, s, z)


def _fastfood_fwd(proj, s, z):
    return _fastfood_forward(proj, s, z), s


def _fastfood_bwd(proj, s, g):
    zero = jax.tree.map(lambda a: np.zeros(a.shape, jax.dtypes.float0) if not jnp.issubdtype(a.dtype, jnp.inexact)
                        else jnp.zeros_like(a), s)
    return zero, _fastfood_transpose(proj, s, g)


_fastfood_map.defvjp(_fastfood_fwd, _fastfood_bwd)
