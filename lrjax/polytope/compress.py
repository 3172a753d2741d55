"""Compress a trained ReLU network to a minimal polytope representation (Lee, Mammadov, Ye, ICML 2024),
stage by stage on its training data, for every hidden layer (last first). numpy, float64.

For hidden layer ``l`` with incoming ``(W_l[:, j], b_l[j])`` and outgoing ``W_{l+1}[j, :]`` per neuron ``j``:

1. ``remove``: neurons active on no training point or on all of them, and neurons whose outgoing weight is
   negligible (``||W_{l+1}[j]|| * ||W_l[:, j]|| < min_weight``) are removed.
2. ``merge``: neurons with identical activation patterns on the data are merged into one: each neuron is
   first normalized (``||W_l[:, j]|| = 1``, the outgoing row scaled by the old norm: ``ReLU(a z) = a ReLU(z)``
   for ``a > 0``, so the network is unchanged), then the group's hyperplane is the average weighted by the
   outgoing norms and its outgoing row the sum (exact when the group's hyperplanes coincide, as for
   duplicated neurons).
3. ``redundant``: a neuron is redundant when every training point that activates it activates another
   neuron of the layer; the redundant neuron with the smallest ``||outgoing|| * ||incoming||`` is deleted
   if the training accuracy does not fall, else the next one; repeated until none can go.
4. ``rescale``: each remaining neuron's bias is shifted outwards (``b_j -> b_j - delta ||W_l[:, j]||`` for a
   neuron whose outgoing weight points away from the positive class, i.e. its hyperplane moved by
   ``delta`` away from the region it bounds) when that raises the training accuracy, for ``delta`` in
   ``rescale_steps``.

``compress`` returns the compressed parameters and a report: the training accuracy and the hidden widths
after each stage.
"""
from __future__ import annotations

import numpy as np

from lrjax.polytope.extract import _as_numpy


def logits(params, x) -> np.ndarray:
    """``forward(params, x)`` in numpy float64: ``(n,)`` logits of ``x: (n, d)`` (the decision is ``>= 0``)."""
    h = np.asarray(x, np.float64)
    for w, b in params[:-1]:
        h = np.maximum(h @ np.asarray(w, np.float64) + np.asarray(b, np.float64), 0)
    w, b = params[-1]
    return (h @ np.asarray(w, np.float64) + np.asarray(b, np.float64))[:, 0]


def accuracy(params, x, y) -> float:
    """Fraction of ``x`` classified as ``y > 0.5`` by ``forward(params, x) >= 0``, in numpy float64."""
    return float(np.mean((logits(params, x) >= 0) == (np.asarray(y) > 0.5)))


def _inputs(params, x, layer):
    """The input of hidden layer ``layer`` (``x`` itself for layer 0): the stages that change only layer
    ``layer`` and later reuse it, so the images pass through the earlier layers once."""
    h = x
    for w, b in params[:layer]:
        h = np.maximum(h @ w + b, 0)
    return h


def _hidden(params, x, layer):
    h = x
    for w, b in params[:layer + 1]:
        pre = h @ w + b
        h = np.maximum(pre, 0)
    return pre


def _keep(params, layer, keep):
    """Only neurons ``keep`` (bool or index array) of hidden layer ``layer``."""
    params = list(params)
    w, b = params[layer]
    nw, nb = params[layer + 1]
    params[layer] = (w[:, keep], b[keep])
    params[layer + 1] = (nw[keep], nb)
    return params


def remove(params, x, layer: int, min_weight: float = 0.1):
    """Stage 1 (module docstring)."""
    active = _hidden(params, x, layer) > 0
    w, _ = params[layer]
    out, _ = params[layer + 1]
    strength = np.linalg.norm(out, axis=1) * np.linalg.norm(w, axis=0)
    keep = active.any(0) & ~active.all(0) & (strength >= min_weight)
    if not keep.any():                                   # never empty a layer: keep its strongest neuron
        keep[np.argmax(strength)] = True
    return _keep(params, layer, keep)


def normalize(params, layer: int):
    """Every neuron of ``layer`` with ``||W_l[:, j]|| = 1``, outgoing rows scaled to leave the network unchanged."""
    params = list(params)
    w, b = params[layer]
    nw, nb = params[layer + 1]
    norm = np.linalg.norm(w, axis=0)
    norm = np.where(norm > 0, norm, 1.0)
    params[layer] = (w / norm, b / norm)
    params[layer + 1] = (nw * norm[:, None], nb)
    return params


def merge(params, x, layer: int):
    """Stage 2 (module docstring)."""
    params = normalize(params, layer)
    patterns = _hidden(params, x, layer) > 0
    w, b = params[layer]
    nw, nb = params[layer + 1]
    groups: dict[bytes, list[int]] = {}
    for j in range(w.shape[1]):
        groups.setdefault(patterns[:, j].tobytes(), []).append(j)
    cols, biases, rows = [], [], []
    for members in groups.values():
        weight = np.linalg.norm(nw[members], axis=1) + 1e-300
        cols.append((w[:, members] * weight).sum(1) / weight.sum())
        biases.append((b[members] * weight).sum() / weight.sum())
        rows.append(nw[members].sum(0))
    params = list(params)
    params[layer] = (np.stack(cols, 1), np.array(biases))
    params[layer + 1] = (np.stack(rows), nb)
    return params


def redundant(params, x, y, layer: int):
    """Stage 3 (module docstring)."""
    params = list(params)
    relu = np.maximum(_inputs(params, x, layer) @ params[layer][0] + params[layer][1], 0)   # (n, width)
    while True:
        w, _ = params[layer]
        active = relu > 0
        if w.shape[1] <= 1:
            return params
        others = active.sum(1, keepdims=True) - active                  # other active neurons per point
        is_redundant = np.all(~active | (others >= 1), axis=0)
        strength = np.linalg.norm(params[layer + 1][0], axis=1) * np.linalg.norm(w, axis=0)
        base = accuracy(params[layer + 1:], relu, y)
        for j in np.argsort(np.where(is_redundant, strength, np.inf)):
            if not is_redundant[j]:
                return params
            keep = np.arange(w.shape[1]) != j
            trial = _keep(params, layer, keep)
            if accuracy(trial[layer + 1:], relu[:, keep], y) >= base:
                relu = relu[:, keep]
                params = trial
                break
        else:
            return params


def rescale(params, x, y, layer: int, steps=(0.01, 0.02, 0.05)):
    """Stage 4 (module docstring): only the last hidden layer, whose outgoing weights are scalars."""
    params = list(params)
    if layer != len(params) - 2:
        return params
    w = params[layer][0]                                                # only biases change here
    hw = _inputs(params, x, layer) @ w
    after = params[layer + 1:]
    current = accuracy(after, np.maximum(hw + params[layer][1], 0), y)
    for j in range(w.shape[1]):
        for delta in steps:
            b = params[layer][1]
            sign = np.sign(params[layer + 1][0][j, 0])                  # < 0: a face of the positive region
            nb = b.copy()
            nb[j] = b[j] + sign * delta * np.linalg.norm(w[:, j])
            trial_accuracy = accuracy(after, np.maximum(hw + nb, 0), y)
            if trial_accuracy > current:
                params[layer], current = (w, nb), trial_accuracy
    return params


def widths(params) -> list[int]:
    return [int(w.shape[1]) for w, _ in params[:-1]]


def compress(params, x, y, min_weight: float = 0.1):
    """All four stages on every hidden layer (last first). ``y``: 0/1 labels. Returns ``(params, report)``,
    ``report = [{"stage", "accuracy", "widths"}, ...]`` starting with the trained network."""
    params = _as_numpy(params)
    x = np.asarray(x, np.float64)
    y = np.asarray(y)
    report = [{"stage": "trained", "accuracy": accuracy(params, x, y), "widths": widths(params)}]
    stages = [("remove", lambda p, l: remove(p, x, l, min_weight)), ("merge", lambda p, l: merge(p, x, l)),
              ("redundant", lambda p, l: redundant(p, x, y, l)), ("rescale", lambda p, l: rescale(p, x, y, l))]
    for name, stage in stages:
        for layer in reversed(range(len(params) - 1)):
            params = stage(params, layer)
        report.append({"stage": name, "accuracy": accuracy(params, x, y), "widths": widths(params)})
    return tuple((w, b) for w, b in params), report
