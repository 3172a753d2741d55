"""Compression *during* training, as the authors' notebooks do it (Lee, Mammadov, Ye, ICML 2024; repository
leeleesang/Defining_NN at 3f58a74, ``polytope_in_order.ipynb``: their Algorithm 4, "finding an efficient
polytope-basis cover", with ``polytope.pruning`` between training phases), vmapped over seeds.

**One polytope** (the authors' ``polytope`` module, a 2-layer network of ``m`` faces):

    out(x) = c + sum_i v_i ReLU(w_i . x + b_i)          c = +3, v < 0: it encloses label 1
                                                         c = -3, v > 0: it encloses label 0

``out = c`` exactly on the polytope ``{x : w_i . x + b_i <= 0 for all i}`` (no face active). Init: PyTorch's
``w, b ~ U(+-1/sqrt(d))``, ``v = -sign(c) sqrt(||w_i||^2 + b_i^2 + 1)``. Loss, full batch: ``mean_A l(out, y)
+ lam mean_B l(out, y)`` over the class ``B`` it must enclose (the points of the current index) and the class
``A`` it must keep out (all points of that class, the authors' ``trn_X_index_this_time``); ``lam = 100``
(``polytope_in_order.ipynb`` cell 2, ``train``, lines 111-115 and 133: each class's mean BCE, the enclosed class's
times ``data_balance``; ``data_balance`` is 1 for a new polytope's first step and 100 from then on; lrjax uses
100 from the first step).
``l``: BCE with logits (the authors'), or ``mse`` (lrjax's: ``(sigmoid(out) - y)^2``; issue 33 asks for MSE;
the authors' notebooks hold no MSE run). Regressing ``out`` itself to ``+-c`` does not work here: ``out``
is unbounded below off the polytope, so the loss pulls far points of ``A`` back up to ``-c`` and every
polytope grows over the other class (measured: training accuracy 0.23-0.52 on the three toy sets tried).
Adam(``lr = 1e-4``), up to ``steps = 150,000`` steps. After step 1 and every ``every = 1000`` steps (the
authors' ``epoch == 0 or epoch % 1000 == 999``): from epoch ``start = 5555`` on, ``pruning`` and a fresh
Adam; then a live ``v`` of the wrong sign fails the polytope (the authors' "Sign flipped"), as does no live
face ("All neurons have been removed"); after epoch ``stop_after = 39990`` it stops once every ``B`` point
of the index is in it.

``pruning`` (stages 1-4, on the points of the index, the authors' ``pruning(trn_X[trn_X_index])``):

1. remove: only when some live face is active on every point or on none, keep the faces with
   ``0 < #active < n`` and ``|v| > 0.1``;
2. merge: faces with identical activation patterns become one whose ``w, b, v`` are the group's SUMS;
3. redundant: a face is redundant when every point that activates it activates >= 2 faces; ONE is deleted,
   the argmin of the signed ``v ||w||`` (the authors': the weakest when ``v > 0``, the *strongest* when
   ``v < 0``; ``literal=False`` takes the smallest ``|v| ||w||``), with no accuracy check;
4. rescale: every face active on a band point gets ``(w, b, v) *= 1.1``; band = ``out > 0 and out != c``
   (the authors', sign-blind: for ``c < 0`` it is every point classified outside; ``literal=False``: the
   points between the polytope and the decision boundary, ``0 < out / c < 1``).

**The cover** (Algorithm 4): start with ``c = -3`` (the authors' first ``positive_init = True``) on every
point; after each attempt, a failed polytope is dropped (the next attempt flips the sign, the index stays; the
authors' loop also shrinks the index after a failure, which lrjax does not), a kept one shrinks the index to
the points in it and flips the sign; the cover is complete when the index holds one class only, and a seed
gets ``attempts`` tries. Polytope ``k`` encloses label ``e_k``; a point's label is ``e_k`` of the deepest
``k`` with the point in ``P_1, ..., P_k`` (not in ``P_1``: ``1 - e_1``).

**As lrjax's 3-layer network** (``layers``): the first layer is every kept polytope's live faces, the second
has one unit per kept polytope, ``g_k = ReLU(1 - s sum_{j <= k} sum_{i in P_j} ReLU(w_i . x + b_i))`` (``= 1``
exactly in ``P_1 n ... n P_k``, ``polytope.cover``'s unit, ``s = 1e3``), the output ``sum_k (e_k - e_{k-1})
g_k + e_0 - 1/2``: widths ``(total faces, polytopes)``, the quantities the theory's widths count, and exact off
a band of width ``1/s`` around each face. (The authors' notebook scores the cover with ``sum_k 2^k c_k
I_k I_{k-1}``, the same decision for nested polytopes.)

Every per-seed quantity has fixed shapes (a per-face ``alive`` mask, a per-point index mask, a per-seed sign),
so an attempt trains all seeds as one vmapped program, compiled once; seeds stop independently.
"""
from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

OFFSET = 3.0
MIN_V = 0.1
RESCALE = 1.1
SHARPNESS = 1e3
OK, SIGN_FLIP, NO_WIDTH = 0, 1, 2


# ---- one polytope: w (m, d), b (m,), v (m,), alive (m,) ------------------------------------------------------

def init(key, d: int, faces: int, c, dtype=jnp.float32) -> dict:
    """``{"w", "b", "v"}`` of one polytope with offset ``c`` (module docstring)."""
    kw, kb = jax.random.split(key)
    bound = 1 / np.sqrt(d)
    w = jax.random.uniform(kw, (faces, d), dtype, -bound, bound)
    b = jax.random.uniform(kb, (faces,), dtype, -bound, bound)
    return {"w": w, "b": b, "v": -jnp.sign(c) * jnp.sqrt(jnp.sum(w ** 2, 1) + b ** 2 + 1)}


def output(p, alive, x, c):
    """``out(x) = c + sum_i v_i ReLU(w_i . x + b_i)`` over live faces: ``(n,)``."""
    return c + (jax.nn.relu(x @ p["w"].T + p["b"]) * alive) @ p["v"]


def _active(w, b, alive, x):
    return ((x @ w.T + b) > 0) & alive


def remove(w, b, v, alive, x, mask, min_v: float = MIN_V):
    """Stage 1 on the points ``x[mask]``: the new ``alive``."""
    cnt = (_active(w, b, alive, x) & mask[:, None]).sum(0)
    n = mask.sum()
    trigger = jnp.any(alive & ((cnt == n) | (cnt == 0)))
    return jnp.where(trigger, alive & (cnt > 0) & (cnt < n) & (jnp.abs(v) > min_v), alive)


def merge(w, b, v, alive, x, mask):
    """Stage 2: ``(w, b, v, alive)``, each group of faces with one pattern on ``x[mask]`` summed into its first."""
    a = (_active(w, b, alive, x) & mask[:, None]).astype(jnp.float32)
    o = (~_active(w, b, alive, x) & mask[:, None]).astype(jnp.float32)
    agree = a.T @ a + o.T @ o                                             # (m, m): points where i and j agree
    m = alive.shape[0]
    same = (agree >= mask.sum() - 0.5) & alive[:, None] & alive[None, :]
    rep = jnp.argmax(same, axis=0)                                        # the first face of j's group
    group = ((rep[None, :] == jnp.arange(m)[:, None]) & alive[None, :]).astype(w.dtype)
    new_alive = alive & (rep == jnp.arange(m))
    keep = lambda new, old: jnp.where(new_alive.reshape((-1,) + (1,) * (old.ndim - 1)), new, old)
    return keep(group @ w, w), keep(group @ b, b), keep(group @ v, v), new_alive


def redundant(w, b, v, alive, x, mask, literal: bool = True):
    """Stage 3: the new ``alive`` (at most one face fewer)."""
    a = _active(w, b, alive, x) & mask[:, None]
    many = a.sum(1) >= 2
    red = alive & jnp.all(~a | many[:, None], axis=0)
    score = v * jnp.linalg.norm(w, axis=1)
    score = score if literal else jnp.abs(score)
    j = jnp.argmin(jnp.where(red, score, jnp.inf))
    return alive & ~(red.any() & (jnp.arange(alive.shape[0]) == j))


def rescale(w, b, v, alive, x, mask, c, literal: bool = True, factor: float = RESCALE):
    """Stage 4: ``(w, b, v)``, every face active on a band point scaled by ``factor``."""
    out = output({"w": w, "b": b, "v": v}, alive, x, c)
    band = (out > 0) & (out != c) if literal else (out / c > 0) & (out != c)
    hit = jnp.any(_active(w, b, alive, x) & (band & mask)[:, None], axis=0)
    s = jnp.where(hit, factor, 1.0).astype(w.dtype)
    return w * s[:, None], b * s, v * s


def prune(p, alive, x, mask, c, literal: bool = True, min_v: float = MIN_V):
    """The authors' ``pruning(trn_X[index])``, stages 1-4: ``(params, alive)``."""
    w, b, v = p["w"], p["b"], p["v"]
    alive = remove(w, b, v, alive, x, mask, min_v)
    w, b, v, alive = merge(w, b, v, alive, x, mask)
    alive = redundant(w, b, v, alive, x, mask, literal)
    w, b, v = rescale(w, b, v, alive, x, mask, c, literal)
    return {"w": w, "b": b, "v": v}, alive


def loss_fn(kind: str):
    """``(out, y) -> loss`` per point (module docstring)."""
    if kind == "bce":
        return lambda out, y: optax.sigmoid_binary_cross_entropy(out, y)
    if kind == "mse":
        return lambda out, y: (jax.nn.sigmoid(out) - y) ** 2
    raise ValueError(f"loss must be 'bce' or 'mse', got {kind!r}")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The authors' loop for one polytope (module docstring)."""
    steps: int = 150_000
    lr: float = 1e-4
    every: int = 1000
    start: int = 5555
    stop_after: int = 39_990
    lam: float = 100.0
    offset: float = OFFSET
    literal: bool = True
    loss: str = "bce"
    min_v: float = MIN_V


def trainer(x, y, faces: int, sc: Schedule = Schedule()):
    """``attempt(keys, index, enclose, active=None, log=None) -> (params, alive, status, stopped_at, inside)``:
    one attempt for every seed (vmapped; compiled once per ``trainer``, reused across attempts): seed ``s``
    trains a polytope of ``faces`` faces enclosing label ``enclose[s]`` of the points ``index[s]`` and keeping
    out every point of the other label; ``active[s]`` False: the seed idles. Leading seed axes; ``status``:
    ``OK`` / ``SIGN_FLIP`` / ``NO_WIDTH``; ``stopped_at``: the step the seed stopped (0: idle); ``inside``:
    ``out == c`` per point (the authors' test, float32). ``log(step, live faces, running)`` after each check."""
    y = jnp.asarray(y, x.dtype)
    opt = optax.adam(sc.lr)
    lf = loss_fn(sc.loss)
    offset = lambda e: jnp.where(e > 0.5, sc.offset, -sc.offset).astype(x.dtype)

    def setup(key, e):
        p = init(key, x.shape[1], faces, offset(e), x.dtype)
        return p, jnp.ones(faces, bool), opt.init(p)

    def classes(idx, e):
        return (y == e) & idx, y != e                                     # B: enclose (this index); A: all others

    def loss(p, alive, idx, e):
        c = offset(e)
        out = output(p, alive, x, c)
        inb, ina = classes(idx, e)
        l = lf(out, y)
        mean = lambda m: jnp.sum(jnp.where(m, l, 0.0)) / jnp.maximum(m.sum(), 1)
        return mean(ina) + sc.lam * mean(inb)

    def run_phase(p, o, alive, idx, e, running, n):
        def step(carry, _):
            p, o = carry
            g = jax.grad(loss)(p, alive, idx, e)
            upd, o2 = opt.update(g, o, p)
            p2 = optax.apply_updates(p, upd)
            keep = lambda a, b: jnp.where(running, a, b)
            return (jax.tree.map(keep, p2, p), jax.tree.map(keep, o2, o)), None
        (p, o), _ = jax.lax.scan(step, (p, o), None, length=n)
        return p, o

    def check(p, o, alive, idx, e, running, status, stopped, t, do_prune):
        c = offset(e)
        p2, alive2 = prune(p, alive, x, idx, c, sc.literal, sc.min_v)
        go = do_prune & running
        p = jax.tree.map(lambda a, b: jnp.where(go, a, b), p2, p)
        alive = jnp.where(go, alive2, alive)
        o = jax.tree.map(lambda a, b: jnp.where(go, a, b), opt.init(p), o)
        flip = jnp.any(alive & (jnp.sign(p["v"]) != -jnp.sign(c)))
        none = ~jnp.any(alive)
        inb, _ = classes(idx, e)
        goal = (t - 1 > sc.stop_after) & ~jnp.any(inb & (output(p, alive, x, c) != c))
        status = jnp.where(running & flip, SIGN_FLIP, jnp.where(running & none, NO_WIDTH, status))
        newly = running & (flip | none | goal)
        stopped = jnp.where(newly, t, stopped)
        return p, o, alive, running & ~newly, status, stopped

    init_all = jax.jit(jax.vmap(setup))
    chk = jax.jit(jax.vmap(check, in_axes=(0, 0, 0, 0, 0, 0, 0, 0, None, None)))
    inside = jax.jit(jax.vmap(lambda p, al, e: output(p, al, x, offset(e)) == offset(e)))
    phases = {}

    def attempt(keys, index, enclose, active=None, log=None):
        seeds = len(keys)
        enclose = jnp.asarray(enclose, x.dtype)
        index = jnp.asarray(index, bool)
        active = jnp.ones(seeds, bool) if active is None else jnp.asarray(active, bool)
        p, alive, o = init_all(keys, enclose)
        running = active
        status = jnp.zeros(seeds, jnp.int32)
        stopped = jnp.full(seeds, sc.steps, jnp.int32)
        t = 0
        while t < sc.steps:
            n = 1 if t == 0 else min(sc.every - t % sc.every, sc.steps - t)   # checks after 1, every, 2 every..
            if n not in phases:
                phases[n] = jax.jit(jax.vmap(lambda *a, n=n: run_phase(*a, n)))
            p, o = phases[n](p, o, alive, index, enclose, running)
            t += n
            p, o, alive, running, status, stopped = chk(p, o, alive, index, enclose, running, status, stopped,
                                                        t, t - 1 > sc.start)
            if log is not None:
                log(t, np.asarray(alive.sum(1)), np.asarray(running))
            if not bool(jnp.any(running)):
                break
        stopped = jnp.where(active, stopped, 0)
        return p, alive, np.asarray(status), np.asarray(stopped), np.asarray(inside(p, alive, enclose))

    return attempt


def train_polytopes(keys, x, y, index, enclose, faces: int, sc: Schedule = Schedule(), active=None, log=None):
    """One attempt (``trainer``) with a trainer of its own: ``(params, alive, status, stopped_at)``."""
    return trainer(x, y, faces, sc)(keys, index, enclose, active, log)[:4]


@dataclasses.dataclass
class Cover:
    """One seed's polytope-basis cover: per kept polytope its live ``w (m_k, d)``, ``b``, ``v``, offset ``c``
    and enclosed label ``e``; ``complete``: the index ended with one class; ``attempts``: per attempt
    ``{"enclose", "status", "faces", "stopped_at", "kept"}``."""
    polytopes: list = dataclasses.field(default_factory=list)
    attempts: list = dataclasses.field(default_factory=list)
    complete: bool = False

    @property
    def widths(self) -> list[int]:
        return [int(sum(len(q["v"]) for q in self.polytopes)), len(self.polytopes)]

    def predict(self, x) -> np.ndarray:
        """The cover's label for each point (module docstring): numpy float64."""
        x = np.asarray(x, np.float64)
        if not self.polytopes:
            return np.zeros(len(x), bool)
        label = np.full(len(x), 1 - self.polytopes[0]["e"])
        chain = np.ones(len(x), bool)
        for q in self.polytopes:
            chain &= np.all(x @ q["w"].T + q["b"] <= 0, axis=1)
            label = np.where(chain, q["e"], label)
        return label.astype(bool)


def layers(cover: Cover, d: int = 2, sharpness: float = SHARPNESS):
    """The cover as plain numpy float64 layers ``((W1, b1), (W2, b2), (W3, b3))`` of widths ``cover.widths``
    (module docstring); an empty cover is the constant ``-1/2`` with one zero unit per layer."""
    qs = cover.polytopes
    if not qs:
        return ((np.zeros((d, 1)), np.zeros(1)), (np.zeros((1, 1)), np.zeros(1)),
                (np.zeros((1, 1)), np.full(1, -0.5)))
    w1 = np.concatenate([q["w"] for q in qs]).T
    b1 = np.concatenate([q["b"] for q in qs])
    sizes = [len(q["v"]) for q in qs]
    ends = np.cumsum(sizes)
    w2 = np.zeros((int(ends[-1]), len(qs)))
    for k, end in enumerate(ends):
        w2[:end, k] = -sharpness                                          # faces of P_1 .. P_k
    e = [1 - qs[0]["e"]] + [q["e"] for q in qs]
    w3 = np.array([[e[k + 1] - e[k]] for k in range(len(qs))], np.float64)
    return ((w1, b1), (w2, np.ones(len(qs))), (w3, np.full(1, e[0] - 0.5)))


def find_covers(keys, x, y, faces: int, sc: Schedule = Schedule(), attempts: int = 8, first_enclose: int = 0,
                log=None):
    """Algorithm 4 for every seed (module docstring): ``(covers, seconds)``. ``keys``: one per seed."""
    seeds = len(keys)
    xn = np.asarray(x, np.float64)
    yn = np.asarray(y) > 0.5
    index = np.ones((seeds, len(xn)), bool)
    enclose = np.full(seeds, first_enclose, np.int32)
    covers = [Cover() for _ in range(seeds)]
    active = np.array([_two_classes(yn, index[s]) for s in range(seeds)])
    t0 = time.perf_counter()
    attempt = trainer(x, y, faces, sc)
    for a in range(attempts):
        if not active.any():
            break
        ks = jax.vmap(lambda k: jax.random.fold_in(k, a))(keys)
        p, alive, status, stopped, inside = attempt(ks, index, enclose, active)
        p = {k: np.asarray(v, np.float64) for k, v in p.items()}
        alive = np.asarray(alive)
        for s in range(seeds):
            if not active[s]:
                continue
            c = sc.offset if enclose[s] == 1 else -sc.offset
            q = {"w": p["w"][s][alive[s]], "b": p["b"][s][alive[s]], "v": p["v"][s][alive[s]], "c": c,
                 "e": int(enclose[s])}
            kept = bool(status[s] == OK)
            covers[s].attempts.append({"enclose": int(enclose[s]), "status": ["ok", "sign flip", "no width"][
                int(status[s])], "faces": int(alive[s].sum()), "stopped_at": int(stopped[s]), "kept": kept})
            if kept:
                covers[s].polytopes.append(q)
                index[s] &= inside[s]                                     # the authors' out == c, float32
            enclose[s] = 1 - enclose[s]
            active[s] = _two_classes(yn, index[s])
            covers[s].complete = not active[s]
        if log is not None:
            log(a, covers)
    return covers, time.perf_counter() - t0


def _two_classes(y, index) -> bool:
    return bool(np.any(y & index) and np.any(~y & index))
