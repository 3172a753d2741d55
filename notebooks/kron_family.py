"""A user-defined parameterization family, registered on import: ``W = A kron B`` (Kronecker product).

Used by ``02_custom_parameterization.ipynb`` and from the command line::

    lrjax run configs/deep_mf.py --import notebooks/kron_family.py --set param="kron(4, 4)" --set d=16

``kron(a1, a2)``: ``A: (a1, a2)``, ``B: (m / a1, n / a2)`` for a weight of shape ``(m, n)``;
``rank(W) = rank(A) rank(B)`` and ``a1 a2 + m n / (a1 a2)`` parameters instead of ``m n``.
"""
import dataclasses

import jax
import jax.numpy as jnp

from lrjax import param


@dataclasses.dataclass(frozen=True)
class Kron(param.Parameterization):
    """``W = A kron B``; theta ``{"a": (a1, a2), "b": (m / a1, n / a2)}``."""

    a1: int = 2
    a2: int = 2

    def init(self, key, shape, dtype=jnp.float32):
        m, n = shape
        if m % self.a1 or n % self.a2:
            raise ValueError(f"kron: shape {shape} is not divisible by ({self.a1}, {self.a2})")
        ka, kb = jax.random.split(key)
        b_shape = (m // self.a1, n // self.a2)
        return {"a": jax.random.normal(ka, (self.a1, self.a2), dtype) / self.a1 ** 0.5,
                "b": jax.random.normal(kb, b_shape, dtype) / b_shape[0] ** 0.5}

    def materialize(self, theta):
        return jnp.kron(theta["a"], theta["b"])

    def apply(self, theta, x):
        """``x @ (A kron B)`` without forming ``W``: reshape ``x`` to ``(..., a1, m / a1)``, contract with
        ``A`` and ``B`` separately."""
        a, b = theta["a"], theta["b"]
        xr = x.reshape(x.shape[:-1] + (a.shape[0], b.shape[0]))
        return jnp.einsum("...ij,ik,jl->...kl", xr, a, b).reshape(x.shape[:-1] + (a.shape[1] * b.shape[1],))


param.register("kron", Kron, overwrite=True)
