"""Compression during training (``lrjax.polytope.pruning``, the authors' ``polytope.pruning`` and Algorithm 4):
each stage removes / merges / rescales exactly the faces it should on hand-built polytope networks, the cover's
3-layer network decides as the cover, seeds are independent under vmap, and the experiment's flag trains
differently from post-hoc compression."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrjax import polytope as P
from lrjax.harness import cli
from lrjax.polytope import pruning, toys

A, BETA = P.regular_polygon(6, 1.5)                          # hexagon {x : A x <= BETA}
X = jnp.asarray(np.random.default_rng(0).uniform(-2, 2, (2000, 2)), jnp.float32)
ALL = jnp.ones(len(X), bool)


def _net(extra=(), v_hex=-1.0):
    """The hexagon's 6 faces (``v = v_hex``) plus ``extra`` faces ``(w, b, v)``: ``(w, b, v, alive)``."""
    w = [*A, *[e[0] for e in extra]]
    b = [*(-BETA), *[e[1] for e in extra]]
    v = [v_hex] * 6 + [e[2] for e in extra]
    w, b, v = (jnp.asarray(np.array(a, np.float64), jnp.float32) for a in (w, b, v))
    return w, b, v, jnp.ones(len(v), bool)


DEAD = ((1.0, 0.0), -10.0, -1.0)                             # x1 > 10: active on no point
WEAK = ((0.0, 1.0), -0.2, -0.05)                             # x2 > 0.2 with |v| = 0.05 <= 0.1
RIGHT = ((1.0, 0.0), -1.6, -1.0)                             # x1 > 1.6: outside the hexagon, redundant
LEFT = ((-1.0, 0.0), -1.6, -2.0)                             # x1 < -1.6: redundant, stronger


def test_remove_drops_dead_and_weak_faces_only_when_some_face_is_dead_or_always_on():
    w, b, v, alive = _net([DEAD, WEAK])
    kept = np.asarray(pruning.remove(w, b, v, alive, X, ALL))
    np.testing.assert_array_equal(kept, [True] * 6 + [False, False])
    w, b, v, alive = _net([WEAK])                             # no dead face: the weak face stays (authors' trigger)
    np.testing.assert_array_equal(np.asarray(pruning.remove(w, b, v, alive, X, ALL)), [True] * 7)
    # the mask: on the points left of x1 = 1.6 the RIGHT face is dead, so it goes
    w, b, v, alive = _net([RIGHT])
    left = X[:, 0] < 1.6
    np.testing.assert_array_equal(np.asarray(pruning.remove(w, b, v, alive, X, left)), [True] * 6 + [False])


def test_merge_sums_the_faces_of_one_activation_pattern():
    a0 = tuple(A[0])
    dup = ((2 * a0[0], 2 * a0[1]), -2 * BETA[0], -0.5)       # face 0's hyperplane, scaled
    w, b, v, alive = _net([dup])
    w2, b2, v2, alive2 = pruning.merge(w, b, v, alive, X, ALL)
    np.testing.assert_array_equal(np.asarray(alive2), [True] * 6 + [False])
    np.testing.assert_allclose(np.asarray(w2[0]), 3 * A[0], rtol=1e-6)
    np.testing.assert_allclose(float(b2[0]), -3 * BETA[0], rtol=1e-6)
    np.testing.assert_allclose(float(v2[0]), -1.5, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(w2[1:6]), np.asarray(w[1:6]))    # the other faces untouched


@pytest.mark.parametrize("literal,gone", [(True, 7), (False, 6)])
def test_redundant_deletes_one_face_the_authors_signed_argmin_or_the_weakest(literal, gone):
    w, b, v, alive = _net([RIGHT, LEFT])
    kept = np.asarray(pruning.redundant(w, b, v, alive, X, ALL, literal))
    want = np.ones(8, bool)
    want[gone] = False          # literal: argmin of v ||w|| = -2 (LEFT, the strongest); else |v| ||w||: RIGHT
    np.testing.assert_array_equal(kept, want)
    w, b, v, alive = _net()     # the bare hexagon: every face is some point's only active face
    np.testing.assert_array_equal(np.asarray(pruning.redundant(w, b, v, alive, X, ALL)), [True] * 6)


def test_rescale_scales_the_faces_active_on_band_points():
    # c = 0.5: right of x1 = 1.9 the hexagon's faces alone bring out below 0.5 - 0.69 < 0, so the far face is
    # active on no band point (0 < out < c); each hexagon face is the only active face on band points
    far = ((1.0, 0.0), -1.9, -1.0)
    w, b, v, alive = _net([far])
    w2, b2, v2 = pruning.rescale(w, b, v, alive, X, ALL, jnp.float32(0.5))
    factor = np.asarray(v2 / v)
    np.testing.assert_allclose(factor, [1.1] * 6 + [1.0], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(w2 / w)[:, 0][np.abs(np.asarray(w)[:, 0]) > 1e-3],
                               factor[np.abs(np.asarray(w)[:, 0]) > 1e-3], rtol=1e-6)
    # c < 0 (v > 0, the polytope encloses label 0): the authors' band is every point with out > 0, which
    # reaches the far face; lrjax's literal=False band (c < out < 0) does not
    w, b, v, alive = _net([((1.0, 0.0), -1.9, 1.0)], v_hex=1.0)
    lit = np.asarray(pruning.rescale(w, b, v, alive, X, ALL, jnp.float32(-0.5), literal=True)[2] / v)
    intent = np.asarray(pruning.rescale(w, b, v, alive, X, ALL, jnp.float32(-0.5), literal=False)[2] / v)
    assert lit[6] == pytest.approx(1.1) and intent[6] == pytest.approx(1.0)
    np.testing.assert_allclose(intent[:6], 1.1, rtol=1e-6)


def test_cover_layers_decide_as_the_cover_with_widths_faces_and_polytopes():
    pa, pb = P.regular_polygon(6, 1.5), P.regular_polygon(5, 0.6, rotation=0.3)
    poly = lambda a, b, e: {"w": a, "b": -b, "v": np.full(len(b), -1.0 if e else 1.0), "c": 3.0 if e else -3.0, "e": e}
    cover = pruning.Cover(polytopes=[poly(*pa, 1), poly(*pb, 0)], complete=True)
    assert cover.widths == [11, 2]
    net = pruning.layers(cover)
    assert [w.shape for w, _ in net] == [(2, 11), (11, 2), (2, 1)]
    x = np.random.default_rng(1).uniform(-2, 2, (4000, 2))
    truth = toys._in(pa, x) & ~toys._in(pb, x)
    np.testing.assert_array_equal(cover.predict(x), truth)
    gap = np.min(np.abs(np.concatenate([x @ pa[0].T - pa[1], x @ pb[0].T - pb[1]], 1)), axis=1)
    clear = gap > 2e-3                                        # off the 1/s band around each face
    np.testing.assert_array_equal(np.asarray(P.inside(net, x))[clear], truth[clear])
    parts = P.components(net)
    assert len(parts) == 1 and len(parts[0].faces) == 11 and not parts[0].convex


QUICK = pruning.Schedule(steps=2000, lr=1e-2, every=250, start=500, stop_after=1000)


def _triangle_data(n=300):
    x = np.random.default_rng(3).uniform(-2, 2, (n, 2)).astype(np.float32)
    tri = P.from_vertices(toys.TRIANGLES[0])
    return jnp.asarray(x), jnp.asarray(toys._in(tri, x), jnp.int32)


def test_seeds_are_independent_under_vmap_and_the_first_attempt_fails_without_width():
    x, y = _triangle_data()
    attempt = pruning.trainer(x, y, 8, QUICK)
    keys = jax.random.split(jax.random.key(0), 3)
    index = np.ones((3, len(x)), bool)
    p, alive, status, stopped, inside = attempt(keys, index, np.array([0, 1, 1]))
    p1, alive1, status1, stopped1, _ = attempt(keys[1:2], index[:1], np.array([1]))
    np.testing.assert_allclose(np.asarray(p["w"][1]), np.asarray(p1["w"][0]), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(alive[1]), np.asarray(alive1[0]))
    assert status[1] == status1[0] and stopped[1] == stopped1[0]
    # enclosing label 0 (everything outside the triangle) needs the whole box: every face goes
    assert status[0] == pruning.NO_WIDTH and stopped[0] < QUICK.steps
    assert status[1] == pruning.OK and 3 <= int(alive[1].sum()) < 8       # the triangle, pruned below 8 faces
    yb = np.asarray(y) > 0
    assert inside[1][yb].all() and inside[1][~yb].mean() < 0.1


def test_find_covers_builds_a_complete_cover_of_a_triangle_outermost_first():
    x, y = _triangle_data()
    covers, seconds = pruning.find_covers(jax.random.split(jax.random.key(0), 2), x, y, 8, QUICK, attempts=4)
    for c in covers:
        # the label-0 attempt fails, then the triangle (3-7 faces), then at most a polytope of the label-0
        # points it still holds
        assert c.complete and 1 <= c.widths[1] <= 2 and c.widths[0] == sum(len(q["v"]) for q in c.polytopes)
        assert [a["status"] for a in c.attempts][:2] == ["no width", "ok"]
        assert [q["e"] for q in c.polytopes] == [1, 0][:c.widths[1]] and 3 <= len(c.polytopes[0]["v"]) < 8
        assert np.mean(c.predict(x) == (np.asarray(y) > 0)) > 0.95
        acc = np.mean(np.asarray(P.inside(pruning.layers(c), np.asarray(x, np.float64))) == (np.asarray(y) > 0))
        assert acc > 0.95
    assert seconds > 0


@pytest.mark.slow
def test_the_flag_compresses_during_training_and_changes_the_widths(tmp_path):
    during = ["compress_during_training=true", "prune_lr=0.01", "prune_steps=2000", "prune_every=250",
              "prune_start=500", "stop_after=1000", "attempts=3"]
    m = cli.run_config("configs/polytopes.py:quick", during, workdir=str(tmp_path / "during"), quiet=True)
    saved = json.loads((tmp_path / "during" / "metrics.json").read_text())
    assert saved.keys() == m.keys()
    for k in ("accuracy", "accuracy_compressed", "compressed_widths", "polytope_faces"):
        assert len(saved[k]) == 2, k
    post = cli.run_config("configs/polytopes.py:quick", [], workdir=str(tmp_path / "post"), quiet=True)
    assert saved["compressed_widths"] != post["compressed_widths"]
    for w, faces, a, c in zip(saved["compressed_widths"], saved["polytope_faces"], saved["accuracy"],
                              saved["accuracy_compressed"]):
        assert w == [sum(faces), len(faces)] and 1 <= w[1] <= 2       # 3 attempts, the first fails
        assert abs(a - c) <= 0.01 and a > 0.8
    assert saved["theory"]["widths"] == [6, 2] and saved["failed_attempts"] == [1, 1]
    assert json.loads((tmp_path / "during" / "config.json").read_text())["compress_during_training"] is True
