"""The sign-constrained polytope-cover network (Lee, Mammadov, Ye, ICML 2024, their real-data experiments):
a network whose decision region is, by construction, a union of ``K`` convex polyhedra, each cut out by ``m``
hidden units (it contains the polytope of its ``m`` faces; its own boundary may have more pieces).

Parameters ``{"w": (d, K m), "b": (K m,), "v": (K, m)}``; polytope ``k`` uses hidden units ``k m .. k m + m - 1``:

    z = ReLU(x w + b)                       (n, K m): the faces' violations
    f_k = c + sum_i v_ki z_ki               (n, K):   c = ``offset`` (5, fixed), v_ki < 0
    logit = max_k f_k                       {logit >= 0} = the union of the K sets {f_k >= 0}

``K = 1`` is a 2-layer ReLU network; ``K = 2`` the 3-layer one ``max(f_1, f_2) = ReLU(f_1 - f_2) + ReLU(f_2) -
ReLU(-f_2)`` of widths ``(2 m, 3)`` (``MAX_POLYTOPES``: deeper maxima are not built). The max, not
``sum_k ReLU(f_k)``, so that a positive point outside every polytope still has a gradient.

With every ``v_ki < 0``, ``{f_k >= 0}`` contains the polytope ``{x : x w_i + b_i <= 0, i in P_k}`` and is itself
convex: ``f_k`` is concave. The sign is kept by the init (``v_ki = -sqrt(||w_i||^2 + b_i^2 + 1)``, the
authors', as is the offset 5 below: leeleesang/Defining_NN 3f58a74 ``real_world_random_label.ipynb``), not by
clamping: ``sign_violations`` counts the ``v_ki >= 0`` after training (a failed run).
``layers(params)`` is the same function as plain ``((W_1, b_1), ..., (W_L, b_L))`` for ``lrjax.polytope``'s
``forward``, ``compress`` and ``inside``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

OFFSET = 5.0   # the authors' fixed output bias
MAX_POLYTOPES = 2


def init(key: jax.Array, d: int, faces: int, polytopes: int, dtype=jnp.float32) -> dict:
    """PyTorch-default ``w, b ~ U(+-1/sqrt(d))``; ``v = -sqrt(||w_i||^2 + b_i^2 + 1)``."""
    if not 1 <= polytopes <= MAX_POLYTOPES:
        raise ValueError(f"cover_net: polytopes must be 1..{MAX_POLYTOPES}, got {polytopes}")
    kw, kb = jax.random.split(key)
    bound = 1 / np.sqrt(d)
    w = jax.random.uniform(kw, (d, polytopes * faces), dtype, -bound, bound)
    b = jax.random.uniform(kb, (polytopes * faces,), dtype, -bound, bound)
    v = -jnp.sqrt(jnp.sum(w ** 2, 0) + b ** 2 + 1).reshape(polytopes, faces)
    return {"w": w, "b": b, "v": v}


def polytope_scores(params: dict, x: jax.Array, offset: float = OFFSET) -> jax.Array:
    """``f_k(x)``: ``(n, K)``."""
    k, m = params["v"].shape
    z = jax.nn.relu(x @ params["w"] + params["b"]).reshape(x.shape[0], k, m)
    return offset + jnp.einsum("nkm,km->nk", z, params["v"])


def logits(params: dict, x: jax.Array, offset: float = OFFSET) -> jax.Array:
    """``(n,)``: ``max_k f_k(x)`` (module docstring)."""
    return jnp.max(polytope_scores(params, x, offset), axis=1)


def layers(params: dict, offset: float = OFFSET):
    """The same network as plain numpy float64 layers ``((W_1, b_1), (W_2, b_2)[, (W_3, b_3)])``."""
    w, b, v = (np.asarray(params[k], np.float64) for k in ("w", "b", "v"))
    k, m = v.shape
    if k == 1:
        return ((w, b), (v.reshape(m, 1), np.full(1, offset)))
    if k != 2:
        raise ValueError(f"cover_net.layers: {k} polytopes; plain layers are built for 1 or 2")
    w2 = np.zeros((2 * m, 3))
    w2[:m, 0], w2[m:, 0], w2[m:, 1], w2[m:, 2] = v[0], -v[1], v[1], -v[1]    # f1 - f2, f2, -f2
    return ((w, b), (w2, np.array([0.0, offset, -offset])), (np.array([[1.0], [1.0], [-1.0]]), np.zeros(1)))


def sign_violations(params: dict) -> int:
    """How many output weights ``v_ki`` are ``>= 0`` (the polytope constraint broken by training)."""
    return int(np.sum(np.asarray(params["v"]) >= 0))
