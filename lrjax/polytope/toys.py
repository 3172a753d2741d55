"""Toy 2-D binary datasets of the polytope paper (Lee, Mammadov, Ye, ICML 2024), as generators:
``make(name, n, key) -> (x (n, 2) float32, y (n,) int32 in {0, 1})``. Label 1 is the positive class.

- ``two_triangles``: uniform in ``[-2, 2]^2``, 1 inside either of two disjoint triangles (3 + 3 faces,
  2 polytopes);
- ``hexagon_hole``: uniform in ``[-2, 2]^2``, 1 inside a regular hexagon (radius 1.5) but outside a
  regular pentagon (radius 0.6) inside it (6 + 5 faces: a positive and a negative polytope);
- ``two_circles``: half on a circle of radius 0.5 (label 1), half on radius 1.1, radial noise ``N(0, 0.05^2)``;
- ``xor``: four Gaussian blobs at ``(+-0.7, +-0.7)``, ``sigma = 0.15``, label 1 where ``x_1 x_2 > 0``;
- ``moons``: two interleaved half circles (scikit-learn's ``make_moons`` geometry), noise ``0.08``;
- ``swiss_roll``: ``t ~ U(1.5 pi, 4.5 pi)``, ``(t cos t, t sin t) / 4.5 pi`` plus ``N(0, (0.35 / 4.5 pi)^2)``
  (noise 0.35 before the scaling), label 1; the same roll mirrored through the origin, label 0.

``polytope_points(key, A, b, n)`` samples around any polytope ``{x : A x <= b}`` that contains the origin in
its interior (any dimension), concentrated near its faces (the upper-bound experiment's data).

``GEOMETRY`` gives, where the paper's theory does, the faces and polytopes of the minimal cover.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lrjax.polytope.construct import from_vertices, regular_polygon

TRIANGLES = (np.array([[-1.6, -1.2], [-0.2, -1.2], [-0.9, 1.0]]), np.array([[0.2, 1.2], [1.6, 1.2], [0.9, -1.0]]))
HEXAGON = regular_polygon(6, 1.5)
PENTAGON = regular_polygon(5, 0.6, rotation=0.3)
# the minimal cover the theory predicts: faces per polytope (sum: first hidden width), polytopes (second)
GEOMETRY = {"two_triangles": {"faces": [3, 3], "polytopes": 2},
            "hexagon_hole": {"faces": [6, 5], "polytopes": 2}}
NAMES = ("two_triangles", "hexagon_hole", "two_circles", "xor", "moons", "swiss_roll")


def _in(poly, x):
    a, b = poly
    return np.all(x @ a.T <= b, axis=1)


def make(name: str, n: int = 1000, key: jax.Array | int = 0):
    """``n`` points of dataset ``name`` (module docstring)."""
    if name not in NAMES:
        raise ValueError(f"unknown toy dataset {name!r}; use one of {', '.join(NAMES)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 4:
        raise ValueError(f"n must be an integer >= 4, got {n!r}")
    key = jax.random.key(key) if isinstance(key, int) else key
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).tolist())
    if name in ("two_triangles", "hexagon_hole"):
        x = rng.uniform(-2, 2, (n, 2))
        if name == "two_triangles":
            y = _in(from_vertices(TRIANGLES[0]), x) | _in(from_vertices(TRIANGLES[1]), x)
        else:
            y = _in(HEXAGON, x) & ~_in(PENTAGON, x)
    elif name == "two_circles":
        y = np.arange(n) % 2 == 0
        t = rng.uniform(0, 2 * np.pi, n)
        r = np.where(y, 0.5, 1.1) + rng.normal(0, 0.05, n)
        x = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    elif name == "xor":
        corner = rng.integers(0, 4, n)
        centers = 0.7 * np.array([[1, 1], [-1, -1], [1, -1], [-1, 1]])
        x = centers[corner] + rng.normal(0, 0.15, (n, 2))
        y = corner < 2
    elif name == "moons":
        y = np.arange(n) % 2 == 0
        t = rng.uniform(0, np.pi, n)
        x = np.where(y[:, None], np.stack([np.cos(t), np.sin(t)], 1), np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1))
        x = x - np.array([0.5, 0.25]) + rng.normal(0, 0.08, (n, 2))
    else:
        y = np.arange(n) % 2 == 0
        t = rng.uniform(1.5 * np.pi, 4.5 * np.pi, n)
        x = np.stack([t * np.cos(t), t * np.sin(t)], 1) + rng.normal(0, 0.35, (n, 2))
        x = np.where(y[:, None], x, -x) / (4.5 * np.pi)
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32)


def polytope_points(key: jax.Array, a, b, n: int, spread: float = 0.3):
    """``n`` points near the boundary of ``P = {x : A x <= b}`` (``A: (m, d)``, ``b > 0``: the origin inside),
    and their labels ``1[x in P]``: ``x = s t(u) u`` with ``u`` uniform on the sphere, ``t(u) = min_{i: a_i u > 0}
    b_i / (a_i u)`` the distance to the boundary along ``u`` and ``s ~ U(1 - spread, 1 + spread)`` (half
    inside, half outside; every face whose normal direction reaches it gets points on both sides).
    Returns ``(x (n, d) float32, y (n,) int32)``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not np.all(b > 0):
        raise ValueError("polytope_points needs the origin inside the polytope (b > 0)")
    if not 0 < spread < 1:
        raise ValueError(f"spread must be in (0, 1), got {spread}")
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).tolist())
    u = rng.normal(size=(n, a.shape[1]))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    au = u @ a.T
    t = np.min(np.where(au > 0, b / np.where(au > 0, au, 1.0), np.inf), axis=1)
    if not np.all(np.isfinite(t)):
        raise ValueError("the polytope is unbounded (some direction never leaves it)")
    x = (rng.uniform(1 - spread, 1 + spread, n) * t)[:, None] * u
    x = x.astype(np.float32)
    y = np.all(x.astype(np.float64) @ a.T <= b, axis=1)
    return jnp.asarray(x), jnp.asarray(y, jnp.int32)
