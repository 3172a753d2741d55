"""What a trained ReLU network's decision region is made of, exactly in 2-D (numpy, float64).

``regions(params, box)``: the activation regions inside ``box = (x0, x1, y0, y1)``: convex polygons on
which every neuron's sign is constant, found by splitting the box layer by layer (inside a region of the
layers so far, each next neuron's pre-activation is affine, so its zero set is one line that splits the
polygon). Each region carries its activation pattern and the network's affine output there.

``decision_pieces`` clips each region to ``f >= 0``; ``components`` merges pieces that share an edge into
connected parts of the decision region and reports, per part, its area, whether it is convex (equal to its
convex hull), and its faces: the distinct lines carrying its boundary (box edges left out).

In high dimension the exact arrangement is out of reach; ``activation_patterns(params, x)`` gives the
patterns of data points instead (``lrjax.polytope.compress`` works on those).
"""
from __future__ import annotations

import dataclasses

import numpy as np

TOL = 1e-9


@dataclasses.dataclass
class Region:
    """A convex polygon ``(k, 2)`` (counter-clockwise), its ``pattern`` (one bool array per hidden layer) and
    the output ``f(x) = x . w + c`` on it."""

    polygon: np.ndarray
    pattern: tuple
    w: np.ndarray
    c: float


def _as_numpy(params):
    return [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in params]


def box_polygon(box) -> np.ndarray:
    x0, x1, y0, y1 = box
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def area(poly: np.ndarray) -> float:
    """Signed shoelace area (positive counter-clockwise)."""
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def clip(poly: np.ndarray, w: np.ndarray, c: float) -> np.ndarray:
    """The part of the convex polygon where ``x . w + c >= 0`` (Sutherland-Hodgman, one half-plane)."""
    out = []
    vals = poly @ w + c
    for i in range(len(poly)):
        p, q, vp, vq = poly[i], poly[(i + 1) % len(poly)], vals[i], vals[(i + 1) % len(poly)]
        if vp >= 0:
            out.append(p)
        if (vp >= 0) != (vq >= 0):
            out.append(p + (q - p) * (vp / (vp - vq)))
    return np.array(out) if len(out) >= 3 else np.zeros((0, 2))


def _split(poly, w, c):
    """``(negative part, positive part)`` of a polygon by the line ``x . w + c = 0`` (empty parts dropped)."""
    vals = poly @ w + c
    scale = max(1.0, float(np.abs(vals).max()))
    if vals.min() >= -TOL * scale:
        return [(poly, True)]
    if vals.max() <= TOL * scale:
        return [(poly, False)]
    parts = [(clip(poly, -w, -c), False), (clip(poly, w, c), True)]
    return [(p, s) for p, s in parts if len(p) >= 3 and abs(area(p)) > TOL]


def regions(params, box=(-2.0, 2.0, -2.0, 2.0)) -> list[Region]:
    """The activation regions of a 2-D input network inside ``box`` (module docstring)."""
    layers = _as_numpy(params)
    if layers[0][0].shape[0] != 2:
        raise ValueError(f"exact regions need a 2-D input, got {layers[0][0].shape[0]}")
    cells = [(box_polygon(box), np.eye(2), np.zeros(2), ())]        # polygon, x -> h = x M + t
    for w, b in layers[:-1]:
        new = []
        for poly, m, t, pattern in cells:
            mw, tw = m @ w, t @ w + b                                 # pre-activations x @ mw + tw
            pieces = [(poly, np.zeros(w.shape[1], bool))]
            for j in range(w.shape[1]):
                nxt = []
                for piece, signs in pieces:
                    for part, positive in _split(piece, mw[:, j], tw[j]):
                        s = signs.copy()
                        s[j] = positive
                        nxt.append((part, s))
                pieces = nxt
            for piece, signs in pieces:
                new.append((piece, mw * signs, tw * signs, pattern + (signs,)))
        cells = new
    w, b = layers[-1]
    return [Region(poly, pattern, (m @ w)[:, 0], float((t @ w + b)[0])) for poly, m, t, pattern in cells]


def decision_pieces(params, box=(-2.0, 2.0, -2.0, 2.0)) -> list[np.ndarray]:
    """Convex polygons whose union is ``{x in box : f(x) >= 0}``."""
    out = []
    for r in regions(params, box):
        p = clip(r.polygon, r.w, r.c)
        if len(p) >= 3 and abs(area(p)) > TOL:
            out.append(p)
    return out


def _edges(poly):
    return [(poly[i], poly[(i + 1) % len(poly)]) for i in range(len(poly))]


def _line_key(p, q, digits: int = 6):
    """The line through ``p, q`` as a rounded ``(normal, offset)`` with a canonical sign."""
    n = np.array([q[1] - p[1], p[0] - q[0]])
    n /= np.linalg.norm(n)
    if n[0] < -1e-12 or (abs(n[0]) <= 1e-12 and n[1] < 0):
        n = -n
    return (round(float(n[0]), digits), round(float(n[1]), digits), round(float(n @ p), digits))


def _overlap(e, f) -> float:
    """Length of the collinear overlap of segments ``e`` and ``f`` (0 when not collinear)."""
    (p, q), (r, s) = e, f
    d = q - p
    length = np.linalg.norm(d)
    if length == 0:
        return 0.0
    u = d / length
    normal = np.array([-u[1], u[0]])
    if abs((r - p) @ normal) > 1e-7 or abs((s - p) @ normal) > 1e-7:
        return 0.0
    a, b = sorted([(r - p) @ u, (s - p) @ u])
    return max(0.0, min(length, b) - max(0.0, a))


@dataclasses.dataclass
class Component:
    """A connected part of the decision region: its pieces, area, convexity and boundary faces."""

    pieces: list
    area: float
    convex: bool
    faces: list          # distinct boundary lines ``(nx, ny, offset)``, box edges excluded
    touches_box: bool


def components(params, box=(-2.0, 2.0, -2.0, 2.0), min_face_length: float = 1e-3) -> list[Component]:
    """The connected parts of ``{f >= 0}`` in ``box`` (pieces sharing an edge of positive length). A face is
    a line carrying more than ``min_face_length`` times the box's diameter of boundary (shorter ones are
    the bevels a finite slope leaves at corners, e.g. ``cover``'s bands of width ``1/s``)."""
    from scipy.spatial import ConvexHull
    pieces = decision_pieces(params, box)
    n = len(pieces)
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    edges = [_edges(p) for p in pieces]
    shared = [[0.0] * len(e) for e in edges]                 # length of each edge covered by other pieces
    for i in range(n):
        for j in range(i + 1, n):
            for a, e in enumerate(edges[i]):
                for b, f in enumerate(edges[j]):
                    o = _overlap(e, f)
                    if o > 1e-9:
                        parent[find(i)] = find(j)
                        shared[i][a] += o
                        shared[j][b] += o
    box_lines = {_line_key(p, q) for p, q in _edges(box_polygon(box))}
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    out = []
    for members in groups.values():
        lengths, touches = {}, False
        for i in members:
            for (p, q), covered in zip(edges[i], shared[i]):
                free = np.linalg.norm(q - p) - covered
                if free > 1e-9:
                    key = _line_key(p, q)
                    if key in box_lines:
                        touches = True
                    else:
                        lengths[key] = lengths.get(key, 0.0) + free
        diameter = float(np.hypot(box[1] - box[0], box[3] - box[2]))
        faces = {k for k, v in lengths.items() if v > min_face_length * diameter}
        pts = np.concatenate([pieces[i] for i in members])
        total = sum(abs(area(pieces[i])) for i in members)
        hull = ConvexHull(pts).volume if len(pts) >= 3 else 0.0
        out.append(Component([pieces[i] for i in members], total, bool(hull <= total * (1 + 1e-6) + 1e-12),
                             sorted(faces), touches))
    return sorted(out, key=lambda c: -c.area)


def activation_patterns(params, x) -> list[np.ndarray]:
    """Per hidden layer, the bool activation pattern ``(n, width)`` of the points ``x: (n, d)``."""
    h = np.asarray(x, np.float64)
    out = []
    for w, b in _as_numpy(params)[:-1]:
        pre = h @ w + b
        out.append(pre > 0)
        h = np.maximum(pre, 0)
    return out
