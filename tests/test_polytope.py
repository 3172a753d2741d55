"""Polytope constructions classify exactly, exact 2-D extraction of regions and polytopes, compression
stages that keep what they claim, toy datasets."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrjax import polytope as P
from lrjax.polytope import compress, toys

HEXAGON = P.regular_polygon(6, 1.5)
PENTAGON = P.regular_polygon(5, 0.6, rotation=0.3)


def _inside_exact(poly, x):
    a, b = poly
    return np.all(x @ a.T <= b, axis=1)


def _grid(n=201, half=2.0):
    g = np.linspace(-half, half, n)
    return np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)


@pytest.mark.x64
def test_separator_is_exact_on_grid_random_and_near_face_points():
    net = P.separator(*HEXAGON, dtype=jnp.float64)
    x = np.concatenate([_grid(), np.random.default_rng(0).uniform(-2, 2, (2000, 2))])
    np.testing.assert_array_equal(np.asarray(P.inside(net, x)), _inside_exact(HEXAGON, x))
    a, b = HEXAGON
    mids = a * b[:, None]                                    # the foot of each face's normal: a face midpoint
    for eps in (1e-3, 1e-6):
        assert np.all(np.asarray(P.inside(net, mids - eps * a)))
        assert not np.any(np.asarray(P.inside(net, mids + eps * a)))


@pytest.mark.x64
@pytest.mark.parametrize("dim", [2, 5, 10])
def test_separator_of_random_polytopes_in_higher_dimension(dim):
    a, b = P.random_polytope(jax.random.key(dim), 3 * dim, dim)
    assert a.shape == (3 * dim, dim) and np.allclose(np.linalg.norm(a, axis=1), 1)
    x = np.random.default_rng(dim).uniform(-1.5, 1.5, (5000, dim))
    net = P.separator(a, b, dtype=jnp.float64)
    truth = _inside_exact((a, b), x)
    assert 0 < truth.sum() < len(x)
    np.testing.assert_array_equal(np.asarray(P.inside(net, x)), truth)


@pytest.mark.x64
def test_cover_is_exact_off_its_band_and_cuts_holes():
    s = 1e3
    net = P.cover([HEXAGON, PENTAGON], signs=[1, -1], sharpness=s, dtype=jnp.float64)
    assert [w.shape for w, _ in net] == [(2, 11), (11, 2), (2, 1)]
    x = _grid(301)
    viol = [np.maximum(x @ a.T - b, 0).sum(1) for a, b in (HEXAGON, PENTAGON)]
    clear = np.all([(v == 0) | (v >= 1 / s) for v in viol], axis=0)
    truth = _inside_exact(HEXAGON, x) & ~_inside_exact(PENTAGON, x)
    got = np.asarray(P.inside(net, x))
    np.testing.assert_array_equal(got[clear], truth[clear])
    assert clear.mean() > 0.99


def test_exact_components_count_faces_and_convexity():
    hexagon = P.components(P.separator(*HEXAGON))
    assert len(hexagon) == 1 and hexagon[0].convex and len(hexagon[0].faces) == 6
    assert hexagon[0].area == pytest.approx(3 * np.sqrt(3) / 2 * 1.5 ** 2, rel=1e-6)
    holed = P.components(P.cover([HEXAGON, PENTAGON], signs=[1, -1]))
    assert len(holed) == 1 and not holed[0].convex and len(holed[0].faces) == 11
    pair = P.components(P.cover([P.from_vertices(t) for t in toys.TRIANGLES]))
    assert [len(c.faces) for c in pair] == [3, 3] and all(c.convex for c in pair)


@pytest.mark.x64
def test_regions_partition_the_box_with_the_right_affine_pieces():
    key = jax.random.key(3)
    net = tuple((np.asarray(jax.random.normal(jax.random.fold_in(key, i), s)), np.asarray(
        jax.random.normal(jax.random.fold_in(key, 10 + i), (s[1],)))) for i, s in enumerate([(2, 5), (5, 3), (3, 1)]))
    regions = P.regions(net, (-2, 2, -2, 2))
    assert sum(abs(P.extract.area(r.polygon)) for r in regions) == pytest.approx(16.0, rel=1e-9)
    for r in regions:
        c = r.polygon.mean(0)
        assert c @ r.w + r.c == pytest.approx(float(P.forward(net, c[None].astype(np.float64))[0]), abs=1e-6)
        pats = P.activation_patterns(net, c[None])
        assert all(np.array_equal(p[0], q) for p, q in zip(pats, r.pattern))


def _duplicated_separator():
    """The hexagon's separator with every neuron duplicated, one copy scaled by 2 (same hyperplane)."""
    (w, b), (v, c) = P.separator(*HEXAGON, dtype=jnp.float64)
    w, b, v, c = map(np.asarray, (w, b, v, c))
    return ((np.concatenate([w, 2 * w], 1), np.concatenate([b, 2 * b])), (np.concatenate([v / 2, v / 4]), c))


@pytest.mark.x64
def test_merge_and_normalize_keep_the_function():
    net = _duplicated_separator()
    x = np.random.default_rng(1).uniform(-2, 2, (3000, 2))
    out = np.asarray(P.forward(net, x))
    norm = compress.normalize(list(net), 0)
    np.testing.assert_allclose(np.asarray(P.forward(norm, x)), out, atol=1e-12)
    merged = compress.merge(list(net), x, 0)
    assert compress.widths(merged) == [6]
    np.testing.assert_allclose(np.asarray(P.forward(merged, x)), out, atol=1e-12)


@pytest.mark.x64
def test_compress_finds_the_minimal_separator():
    (w, b), (v, c) = _duplicated_separator()
    dead = (np.array([[1.0], [0.0]]), np.array([-10.0]))            # active on no point in the box
    net = ((np.concatenate([w, dead[0]], 1), np.concatenate([b, dead[1]])), (np.concatenate([v, [[-1.0]]]), c))
    x = np.random.default_rng(2).uniform(-2, 2, (3000, 2))
    y = _inside_exact(HEXAGON, x).astype(np.int32)
    small, report = compress.compress(net, x, y)
    assert report[0]["widths"] == [13] and report[-1]["widths"] == [6]
    assert [r["accuracy"] for r in report] == [1.0] * 5
    assert [len(c.faces) for c in P.components(small)] == [6]


@pytest.mark.parametrize("name", toys.NAMES)
def test_toy_datasets(name):
    x, y = toys.make(name, 400, 1)
    assert x.shape == (400, 2) and x.dtype == jnp.float32 and y.dtype == jnp.int32
    assert 0.1 < float(y.mean()) < 0.9 and float(jnp.abs(x).max()) < 2.5
    x2, _ = toys.make(name, 400, 1)
    np.testing.assert_array_equal(x, x2)
    if name == "hexagon_hole":
        np.testing.assert_array_equal(np.asarray(y, bool),
                                      _inside_exact(HEXAGON, np.asarray(x)) & ~_inside_exact(PENTAGON, np.asarray(x)))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="unknown toy"):
        toys.make("spiral")
    for a, b in [(np.ones((3, 2)), np.ones(2)), (np.ones((0, 2)), np.ones(0)), ([[np.nan, 1.0]], [1.0])]:
        with pytest.raises(ValueError):
            P.separator(a, b)
    with pytest.raises(ValueError, match="signs"):
        P.cover([HEXAGON], signs=[-1])
    with pytest.raises(ValueError, match="faces"):
        P.random_polytope(jax.random.key(0), 2, 2)


@pytest.mark.x64
@pytest.mark.parametrize("dim", [2, 6])
def test_polytope_points_straddle_the_boundary_and_are_labelled_exactly(dim):
    a, b = P.random_polytope(jax.random.key(dim), 2 * dim + 2, dim)
    x, y = toys.polytope_points(jax.random.key(1), a, b, 3000, spread=0.2)
    x, y = np.asarray(x, np.float64), np.asarray(y)
    np.testing.assert_array_equal(y, _inside_exact((a, b), x))
    assert 0.35 < y.mean() < 0.65                            # s ~ U(0.8, 1.2): half inside
    slack = np.max(x @ a.T - b, axis=1)                       # signed distance-like gap to the boundary
    assert np.all(np.abs(slack) <= 0.2 * np.max(np.linalg.norm(x, axis=1)) + 1e-6)
    # every face is the nearest face of some points (the data witnesses all m faces)
    assert len(np.unique(np.argmax(x @ a.T - b, axis=1))) == len(b)
    np.testing.assert_array_equal(np.asarray(P.inside(P.separator(a, b, jnp.float64), x)), y.astype(bool))
    with pytest.raises(ValueError, match="origin"):
        toys.polytope_points(jax.random.key(0), a, b - 2, 10)


@pytest.mark.slow
@pytest.mark.x64
@pytest.mark.parametrize("polytopes", [1, 2])
def test_cover_net_layers_are_the_same_function_and_signs_start_negative(polytopes):
    from lrjax.polytope import cover_net
    p = cover_net.init(jax.random.key(polytopes), 5, 4, polytopes, jnp.float64)
    p = {**p, "w": p["w"] * 3.0, "b": p["b"] + 0.5}                     # move off the init so units switch
    assert cover_net.sign_violations(p) == 0 and p["v"].shape == (polytopes, 4)
    x = np.asarray(jax.random.normal(jax.random.key(9), (400, 5)), np.float64)
    f = np.asarray(cover_net.polytope_scores(p, x))
    np.testing.assert_allclose(np.asarray(cover_net.logits(p, x)), f.max(1), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(P.forward(cover_net.layers(p), x)), f.max(1), rtol=1e-10, atol=1e-10)
    assert 0 < np.mean(f.max(1) >= 0) < 1                                # both sides occur
    assert cover_net.sign_violations({**p, "v": -p["v"]}) == p["v"].size
    with pytest.raises(ValueError, match="polytopes"):
        cover_net.init(jax.random.key(0), 5, 4, 3)


def test_far_sphere_test_tells_bounded_from_unbounded_positive_regions():
    """``polytope_depth``'s check: the constructed width-m separator is positive only on P (never on the
    sphere at twice P's radius); a width-2 network in R^2 positive on a half-plane reaches it."""
    from experiments.polytope_depth import sphere_points
    from lrjax.polytope.compress import logits

    a, b = P.random_polytope(jax.random.key(3), 6, 2)
    far = sphere_points(jax.random.key(0), 2, [2.0 * 10, 5.0 * 10], 4096)
    assert far.shape == (8192, 2) and np.allclose(np.linalg.norm(far[:4096], axis=1), 20.0)
    sep = P.separator(a, b, dtype=None)
    assert logits(sep, np.zeros((1, 2)))[0] >= 0 and not (logits(sep, far) >= 0).any()
    half_plane = ((np.array([[1.0, 0.0], [0.0, 1.0]]), np.zeros(2)), (np.array([[1.0], [0.0]]), np.array([-0.5])))
    assert (logits(half_plane, far) >= 0).any()
    from experiments.polytope_depth import reaches_far, recession
    u = far[:4096] / 20.0
    assert not reaches_far(sep, far, u) and reaches_far(half_plane, far, u)
    # a positive region that is unbounded but only beyond the sampled spheres: seen by the recession test alone
    beyond = ((np.array([[1.0, -1.0], [0.0, 0.0]]), np.array([-100.0, 0.0])), (np.array([[1.0], [0.0]]), np.array([-1e-9])))
    assert not (logits(beyond, far) >= 0).any() and (recession(beyond, u) > 0).any() and reaches_far(beyond, far, u)
    x3 = sphere_points(jax.random.key(1), 3, [1.0], 100)
    assert x3.shape == (100, 3) and np.allclose(np.linalg.norm(x3, axis=1), 1.0)


def test_one_vs_all_loss_trains_each_class_as_alone():
    """``polytopes_real`` stacks the classes' cover networks and sums their losses: the value is the sum of the
    per-class losses and class c's gradient is that of its own loss (so Adam, elementwise, trains it alone)."""
    from experiments.polytopes_real import balanced_bce, one_vs_all_loss

    from lrjax.polytope import cover_net

    x = jax.random.normal(jax.random.key(0), (40, 5))
    y = jnp.asarray(np.arange(40) % 3)
    classes = (0, 2)
    stacked = jax.vmap(lambda k: cover_net.init(k, 5, 3, 2))(jax.random.split(jax.random.key(1), 2))
    mask = (jax.random.uniform(jax.random.key(2), stacked["w"].shape) > 0.5).astype(jnp.float32)
    for m in (None, mask):
        loss = one_vs_all_loss(classes, m)
        grads = jax.grad(loss)(stacked, {"x": x, "y": y})
        for i, c in enumerate(classes):
            one = jax.tree.map(lambda a: a[i], stacked)
            own = lambda p: balanced_bce(p if m is None else {**p, "w": p["w"] * m[i]}, x,  # noqa: E731
                                         (y == c).astype(jnp.float32))
            for k in ("w", "b", "v"):
                np.testing.assert_allclose(grads[k][i], jax.grad(own)(one)[k], rtol=1e-5, atol=1e-7)
        total = sum(float(balanced_bce(jax.tree.map(lambda a: a[i], stacked) if m is None else
                                       {**jax.tree.map(lambda a: a[i], stacked), "w": stacked["w"][i] * m[i]},
                                       x, (y == c).astype(jnp.float32))) for i, c in enumerate(classes))
        np.testing.assert_allclose(float(loss(stacked, {"x": x, "y": y})), total, rtol=1e-6)
