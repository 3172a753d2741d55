"""Property tests of every parameterization family under jit: shapes, ranks, apply, gradients, hashing."""
import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from lrjax import param as P

SHAPES = [(6, 6), (8, 4), (4, 8)]
DTYPES = [jnp.float32, jnp.float64]
# spec -> bound on rank(W - fixed part) for shape (m, n), or None for no bound
SPECS = {
    "dense()": None,
    "lowrank(rank=1)": 1,
    "lowrank(rank=3)": 3,
    "lora(rank=2, alpha=4.0)": None,
    "lora(rank=2, alpha=4.0, rslora=True)": None,
    "dlor(rank=1)": 1,
    "dlor(rank=2, diag='scalar')": 2,
    "dlor(rank=2, diag=2)": 2,
    "deep(depth=3)": None,
    "deep(depth=2, init='gaussian', scale=0.5)": None,
    "deep(depth=3, width=2, scale=(1.0, 0.5, 2.0))": 2,
    "deep_lora(depth=3, width=3, scale=0.1)": 3,
    "compressed_deep(depth=2, width=2, scale=0.5)": 2,
    "subspace(dim=5)": 5,
    "plus(lowrank(1), lowrank(2))": 3,
    "plus(frozen(), lowrank(1))": 1,
    "product(dlor(1), dlor(1), dlor(2))": None,
}
TOL = {jnp.float32: 1e-5, jnp.float64: 1e-12}


def _fixed_part(p, theta):
    """The part of W that is not low rank: frozen base or DLoR diagonal."""
    if isinstance(p, P.Adapter):
        return theta["base"]
    if isinstance(p, P.DLoR):
        return p.materialize({**theta, "u": jnp.zeros_like(theta["u"])})
    return 0.0


@pytest.mark.slow
@pytest.mark.parametrize("spec", list(SPECS))
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_family_properties(spec, shape, dtype):
    p = P.from_spec(spec)
    theta = p.init(jax.random.key(0), shape, dtype)
    w = jax.jit(p.materialize)(theta)
    assert w.shape == shape and w.dtype == dtype
    assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(theta))
    x = jax.random.normal(jax.random.key(1), (5, shape[0]), dtype)
    np.testing.assert_allclose(jax.jit(p.apply)(theta, x), x @ w, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10)
    bound = SPECS[spec]
    if bound is not None:
        delta = np.asarray(w - _fixed_part(p, theta), np.float64)
        assert np.linalg.matrix_rank(delta, tol=1e-4 * max(1.0, np.abs(delta).max())) <= min(bound, *shape)
    roles = p.roles(theta)
    assert jax.tree.structure(roles) == jax.tree.structure(theta)
    assert set(jax.tree.leaves(roles)) <= set(P.ROLES)
    n_free = sum(l.size for l, r in zip(jax.tree.leaves(theta), jax.tree.leaves(roles)) if r != P.FROZEN)
    assert p.num_params(shape) == n_free


@pytest.mark.slow
@pytest.mark.x64
@pytest.mark.parametrize("spec", [s for s in SPECS if "subspace" not in s])
def test_gradients_float64(spec):
    p = P.from_spec(spec)
    theta = p.init(jax.random.key(2), (5, 4), jnp.float64)
    x = jax.random.normal(jax.random.key(3), (3, 5), jnp.float64)
    free, frozen = P.partition(theta, p.roles(theta))  # finite differences would move frozen leaves
    check_grads(lambda t: jnp.sin(p.apply(P.combine(t, frozen), x)).sum(), (free,), order=1, modes=["rev"],
                eps=1e-6, atol=1e-6, rtol=1e-6)


def test_frozen_leaves_get_no_gradient():
    p = P.lora(2, alpha=2.0)
    theta = p.from_weight(jax.random.key(0), jnp.ones((4, 3)))
    g = jax.grad(lambda t: (p.materialize(t) ** 2).sum())(theta)
    assert float(jnp.abs(g["base"]).max()) == 0.0


def test_lora_is_identity_at_init_and_scaling():
    w0 = jax.random.normal(jax.random.key(0), (6, 5))
    for p, s in [(P.lora(2, alpha=4.0), 2.0), (P.lora(4, alpha=4.0, rslora=True), 2.0), (P.lora(3), 1.0)]:
        theta = p.from_weight(jax.random.key(1), w0)
        np.testing.assert_array_equal(p.materialize(theta), w0)
        assert p.scaling == s


def test_lora_dlt_init_is_the_deep_lora_authors_vanilla_lora():
    """``init="dlt"``: input-side U zero, output-side V standard normal (cjyaras/deep-lora-transformers
    dlt/models.py MatrixFactorization, depth 2); the default keeps U ~ N(0, 1/m), V = 0."""
    theta = P.lora(8, init="dlt").init(jax.random.key(0), (300, 200), jnp.float32)
    assert theta["base"].shape == (300, 200) and float(jnp.abs(theta["base"]).max()) == 0.0
    assert theta["u"].shape == (300, 8) and float(jnp.abs(theta["u"]).max()) == 0.0
    assert theta["v"].shape == (200, 8) and abs(float(theta["v"].std()) - 1.0) < 0.05
    peft = P.lora(8).init(jax.random.key(0), (300, 200), jnp.float32)
    assert float(jnp.abs(peft["v"]).max()) == 0.0 and abs(float(peft["u"].std()) - 300 ** -0.5) < 0.003
    assert P.from_spec("lora(8, init='dlt')") == P.lora(8, init="dlt")


@pytest.mark.x64
def test_deep_orthogonal_init_satisfies_theorem_hypothesis():
    eps = (0.5, 2.0, 1e-1)
    theta = P.deep(3, scale=eps).init(jax.random.key(0), (7, 7), jnp.float64)
    for f, e in zip(theta["factors"], eps):
        np.testing.assert_allclose(f @ f.T, e ** 2 * np.eye(7), atol=1e-12)


@pytest.mark.x64
def test_compressed_deep_inner_factors_are_scaled_identity():
    p = P.compressed_deep(depth=3, width=4, scale=1e-2)
    theta = p.init(jax.random.key(0), (9, 9), jnp.float64)
    fs = theta["factors"]
    assert [f.shape for f in fs] == [(9, 4), (4, 4), (4, 4), (4, 4), (4, 9)]
    for f in fs[1:-1]:
        np.testing.assert_allclose(f, 1e-2 * np.eye(4))
    assert p.roles(theta)["factors"] == [P.OUTER, P.TRAINABLE, P.TRAINABLE, P.TRAINABLE, P.OUTER]


def test_no_recompile_for_rebuilt_identical_parameterization():
    chex.clear_trace_counter()

    @chex.assert_max_traces(n=1)
    def apply(theta, x, p):
        return p.apply(theta, x)

    apply_jit = jax.jit(apply, static_argnums=2)
    theta = P.lowrank(2).init(jax.random.key(0), (4, 4))
    x = jnp.ones((2, 4))
    for _ in range(3):
        apply_jit(theta, x, P.from_spec("lowrank(rank=2)"))  # a new but equal value each time
    assert P.lowrank(2) == P.from_spec("lowrank(2)") and hash(P.lowrank(2)) == hash(P.lowrank(rank=2))
    with pytest.raises(AssertionError):  # a different value does retrace: the counter can fail
        apply_jit(P.lowrank(1).init(jax.random.key(0), (4, 4)), x, P.lowrank(1))


@pytest.mark.slow
@pytest.mark.x64
@pytest.mark.parametrize("n, rank", [(1, 1), (8, 1), (8, 3), (17, 1), (17, 3), (17, 8), (64, 1), (64, 8),
                                     (256, 8), (256, 32)])
def test_exact_decompositions_float64(n, rank):
    a = np.random.default_rng(n + rank).normal(size=(n, n))
    add = P.decompose_additive(a, rank)
    mul = P.decompose_multiplicative(a, rank)
    for dec in (add, mul):
        w = np.asarray(dec.param.materialize(dec.theta))
        assert w.dtype == np.float64
        assert np.linalg.norm(w - a) / np.linalg.norm(a) < 1e-10
    k = -(-n // rank)
    assert add.num_params() == k * rank * 2 * n
    assert mul.num_params() == len(mul.theta["factors"]) * (n + 2 * n * rank)
    assert all(isinstance(q, P.DLoR) for q in mul.param.parts)


def test_multiplicative_needs_invertible_square():
    with pytest.raises(ValueError, match="singular"):
        P.decompose_multiplicative(np.ones((4, 4)), 2)
    with pytest.raises(ValueError, match="square"):
        P.decompose_multiplicative(np.ones((4, 3)), 2)


@pytest.mark.parametrize("bad, match", [
    (lambda: P.lowrank(0), "rank must be a positive integer, got 0"),
    (lambda: P.lowrank(-2), "got -2"),
    (lambda: P.dlor(1, diag="sparse"), "diag must be"),
    (lambda: P.deep(3, scale=(1.0, 2.0)), "scale has 2 entries"),
    (lambda: P.lowrank(5).init(jax.random.key(0), (4, 6)), "rank=5 exceeds min\\(shape\\)=4"),
    (lambda: P.lora(9).from_weight(jax.random.key(0), jnp.ones((8, 3))), "rank=9"),
    (lambda: P.lora(2, init="kaiming"), "init must be one of"),
    (lambda: P.lowrank(2).init(jax.random.key(0), (4,)), "shape must be"),
    (lambda: P.from_spec("nosuch(rank=2)"), "unknown parameterization 'nosuch'"),
    (lambda: P.from_spec("lowrank(rank="), "cannot parse"),
    (lambda: P.from_spec("lowrank(ranks=2)"), "bad arguments"),
    (lambda: P.from_spec("lowrank(rank=__import__('os'))"), "unknown parameterization '__import__'"),
])
def test_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


def test_register_custom_family():
    @P.register("test_kron", overwrite=True)
    @dataclasses.dataclass(frozen=True)
    class Kron(P.Parameterization):
        """W = A kron B with A (a1, a2) and B (m/a1, n/a2)."""
        a: tuple = (2, 2)

        def init(self, key, shape, dtype=jnp.float32):
            ka, kb = jax.random.split(key)
            b_shape = (shape[0] // self.a[0], shape[1] // self.a[1])
            return {"a": jax.random.normal(ka, self.a, dtype), "b": jax.random.normal(kb, b_shape, dtype)}

        def materialize(self, theta):
            return jnp.kron(theta["a"], theta["b"])

    p = P.from_spec("test_kron(a=(2, 3))")
    assert p == Kron(a=(2, 3)) and "test_kron" in P.available()
    theta = p.init(jax.random.key(0), (4, 6))
    assert p.materialize(theta).shape == (4, 6) and p.num_params((4, 6)) == 6 + 4
    nested = P.from_spec("plus(test_kron(a=(2, 3)), lowrank(1))")
    assert nested.materialize(nested.init(jax.random.key(0), (4, 6))).shape == (4, 6)
    with pytest.raises(ValueError, match="already registered"):
        P.register("test_kron", P.lowrank)
