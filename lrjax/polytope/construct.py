"""ReLU networks that separate convex polytopes and cover unions of them (Lee, Mammadov, Ye, ICML 2024,
arXiv 2402.02407), as pure functions over parameter tuples.

A network is ``params = ((W_1, b_1), ..., (W_L, b_L))`` with ``W_l: (n_{l-1}, n_l)`` (``y = x @ W + b``,
like a Flax kernel), ReLU between layers and one output unit: ``forward(params, x) -> (n,)`` logits;
``inside(params, x) = forward(params, x) >= 0``.

- ``separator(A, b)``: the width-``m`` 2-layer network of ``P = {x : A x <= b}`` (``A: (m, d)``),
  ``f(x) = -sum_i ReLU(a_i . x - b_i)``: ``f = 0`` exactly on ``P`` and ``f < 0`` off it, so
  ``inside`` is exactly ``P`` (closed; no margin).
- ``cover(polytopes, signs, sharpness)``: the 3-layer network of widths (total faces, number of
  polytopes): ``g_k(x) = ReLU(1 - s v_k(x))`` with ``v_k = sum_{i in P_k} ReLU(a_i . x - b_i)`` (``g_k = 1``
  on ``P_k``), ``f = sum_k sign_k g_k - 1/2``. A ``-1`` polytope is a hole cut out of a ``+1`` polytope
  that contains it. ``inside`` equals ``(union of +1 polytopes) minus (interior-closed -1 polytopes)`` at
  every ``x`` where each ``v_k(x)`` is ``0`` or ``>= 1 / s`` (so off a band of width ``1/s`` in ``v_k``
  around each face).
"""
from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

Params = tuple  # ((W_1, b_1), ..., (W_L, b_L))


def forward(params: Params, x: jax.Array) -> jax.Array:
    """Logits ``(n,)`` of ``x: (n, d)``: ReLU after every layer but the last (one output unit)."""
    h = x
    for w, b in params[:-1]:
        h = jax.nn.relu(h @ w + b)
    w, b = params[-1]
    return (h @ w + b)[..., 0]


def inside(params: Params, x: jax.Array) -> jax.Array:
    """The decision ``forward(params, x) >= 0`` as a bool array ``(n,)``."""
    return forward(params, x) >= 0


def _check_h_representation(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.shape != (a.shape[0],) or a.shape[0] == 0:
        raise ValueError(f"a polytope is A x <= b with A: (m, d), b: (m,), m >= 1; got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("A and b must be finite")
    return a, b


def _arrays(params, dtype) -> Params:
    """``params`` as jax arrays of ``dtype``, or as numpy float64 arrays where ``dtype`` is ``None``."""
    cast = (lambda v: np.asarray(v, np.float64)) if dtype is None else (lambda v: jnp.asarray(v, dtype))
    return tuple((cast(w), cast(b)) for w, b in params)


def separator(a, b, dtype=jnp.float32) -> Params:
    """The width-``m`` 2-layer separator of ``{x : A x <= b}``: ``((A^T, -b), (-1_m, 0))`` (``dtype=None``:
    numpy float64 arrays, exact without jax's x64 mode)."""
    a, b = _check_h_representation(a, b)
    m = a.shape[0]
    return _arrays(((a.T, -b), (-np.ones((m, 1)), np.zeros(1))), dtype)


def cover(polytopes: Sequence[tuple], signs: Sequence[int] | None = None, sharpness: float = 1e3,
          dtype=jnp.float32) -> Params:
    """The 3-layer network of widths ``(sum_k m_k, K)`` covering ``polytopes = [(A_k, b_k), ...]`` with
    ``signs`` (``+1`` add, ``-1`` cut out; default all ``+1``) and ``sharpness = s`` (module docstring);
    ``dtype`` as in ``separator``."""
    reps = [_check_h_representation(a, b) for a, b in polytopes]
    if not reps or len({a.shape[1] for a, _ in reps}) != 1:
        raise ValueError("cover needs at least one polytope, all in the same dimension")
    signs = [1] * len(reps) if signs is None else list(signs)
    if len(signs) != len(reps) or any(s not in (1, -1) for s in signs) or 1 not in signs:
        raise ValueError(f"signs must be one +1 or -1 per polytope, at least one +1; got {signs}")
    if not sharpness > 0:
        raise ValueError(f"sharpness must be > 0, got {sharpness}")
    a = np.concatenate([a for a, _ in reps])
    b = np.concatenate([b for _, b in reps])
    owner = np.repeat(np.arange(len(reps)), [len(b) for _, b in reps])
    w2 = -sharpness * (owner[:, None] == np.arange(len(reps))[None, :])        # (faces, K)
    return _arrays(((a.T, -b), (w2, np.ones(len(reps))), (np.asarray(signs, np.float64)[:, None], np.full(1, -0.5))),
                   dtype)


def regular_polygon(sides: int, radius: float = 1.0, center=(0.0, 0.0), rotation: float = 0.0):
    """``(A, b)`` of the regular polygon with ``sides`` vertices at ``radius`` (unit outward normals)."""
    if sides < 3:
        raise ValueError(f"a polygon needs >= 3 sides, got {sides}")
    angles = rotation + 2 * np.pi * (np.arange(sides) + 0.5) / sides          # normals between vertices
    a = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    b = radius * np.cos(np.pi / sides) + a @ np.asarray(center, np.float64)
    return a, b


def from_vertices(vertices) -> tuple[np.ndarray, np.ndarray]:
    """``(A, b)`` with unit outward normals of the convex polygon through ``vertices (k, 2)`` (either order)."""
    v = np.asarray(vertices, np.float64)
    edges = np.roll(v, -1, axis=0) - v
    a = np.stack([edges[:, 1], -edges[:, 0]], axis=1)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = np.sum(a * v, axis=1)
    if np.all(a @ v.mean(0) > b):                                               # clockwise: flip
        a, b = -a, -b
    return a, b


def bounded_probability(faces: int, dim: int) -> float:
    """Wendel's probability that ``faces`` i.i.d. uniform unit normals positively span ``R^dim`` (the polytope
    ``{x : A x <= 1}`` is bounded): ``1 - 2^{-(m-1)} sum_{k<d} C(m-1, k)``."""
    return 1.0 - sum(math.comb(faces - 1, k) for k in range(dim)) / 2 ** (faces - 1)


MIN_BOUNDED_PROBABILITY = 0.05   # random_polytope redraws up to 100 times: below this it may find none


def random_polytope(key: jax.Array, faces: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """A random bounded convex polytope ``{x : A x <= 1}`` with ``faces`` unit normals uniform on the sphere
    (redrawn until the polytope is bounded); every face is at distance 1 from the origin and touches the
    unit ball there, so each of the ``faces`` inequalities is a facet."""
    if faces < dim + 1:
        raise ValueError(f"a bounded polytope in R^{dim} needs >= {dim + 1} faces, got {faces}")
    for attempt in range(100):
        a = np.array(jax.random.normal(jax.random.fold_in(key, attempt), (faces, dim)), np.float64)
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        if _positively_spanning(a):
            return a, np.ones(faces)
    raise ValueError(f"could not draw a bounded polytope with {faces} faces in R^{dim}")


def _positively_spanning(a: np.ndarray) -> bool:
    """Whether ``{x : a x <= 1}`` is bounded (the rows of ``a`` positively span ``R^d``): ``max +-x_j`` over it is
    finite for every coordinate ``j`` (``2 d`` linear programs, scipy's HiGHS)."""
    from scipy.optimize import linprog
    d = a.shape[1]
    for j in range(d):
        for sign in (1.0, -1.0):
            c = np.zeros(d)
            c[j] = -sign
            res = linprog(c, A_ub=a, b_ub=np.ones(len(a)), bounds=[(None, None)] * d, method="highs")
            if res.status != 0:
                return False
    return True
