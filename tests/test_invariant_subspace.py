"""The invariant-subspace theorem on recorded runs: passes on its hypotheses, fails on negative controls."""
import jax
import numpy as np
import pytest

from lrjax.studies import theorem_simulation

pytestmark = pytest.mark.x64   # every test here checks float64 numerics (tests/conftest.py)


@pytest.fixture(scope="module")
def theorem_runs():
    with jax.enable_x64(True):   # module-scoped float64 data (tests/conftest.py)
        common = dict(d=12, rank=2, depth=3, steps=60, progress=False)
        return {
            "orthogonal": theorem_simulation.simulate(eps=(1.0, 0.7, 1.3), eta=0.05, weight_decay=1e-2, **common),
            "gaussian": theorem_simulation.simulate(init="gaussian", eta=0.05, **common),
            "too_wide": theorem_simulation.simulate(**{**common, "d": 6, "rank": 3}, eta=0.05),
            "random_subspace": theorem_simulation.simulate(eps=(1.0, 0.7, 1.3), eta=0.05, weight_decay=1e-2,
                                                           compression_subspace="random", **common),
            "small_init": theorem_simulation.simulate(**{**common, "steps": 3000}, eps=0.05, eta=0.2,
                                                      record_every=50),
        }


@pytest.mark.slow
def test_theorem_holds_in_float64(theorem_runs):
    check, traj = theorem_runs["orthogonal"]
    assert check.passed, check
    assert check.singular_value_error < 1e-10 and check.subspace_residual < 1e-10
    assert check.compression_gap_ratio <= 1 + 1e-10
    assert traj["singular_values"].shape == (61, 3, 12)
    assert np.all(np.diff(traj["singular_values"], axis=-1) <= 0)


@pytest.mark.parametrize("which", ["gaussian", "too_wide"])
def test_theorem_negative_controls_fail_with_large_errors(theorem_runs, which):
    check, _ = theorem_runs[which]
    assert not check.passed and not check.hypotheses_hold
    assert min(check.singular_value_error, check.subspace_residual) > 1e4 * check.tolerance


def test_prop2_gap_follows_the_time_varying_bound(theorem_runs):
    check, traj = theorem_runs["orthogonal"]
    ratio = traj["compression_gap"] / traj["compression_bound"]
    np.testing.assert_allclose(ratio, 1.0, rtol=1e-9)   # the gap is the bulk prod rho_l(t) I the compressed net leaves out
    assert check.prop2_ratio_max == pytest.approx(ratio[1:].max(), rel=1e-12) and check.prop2_passed
    initial = traj["compression_gap"][1:] / traj["compression_bound"][0]
    assert check.compression_gap_ratio == pytest.approx(initial.max(), rel=1e-12)
    assert check.compression_gap_ratio < 1.0 - 1e-3     # the initial bound is loose once rho_l(t) decays


def test_prop2_after_a_small_init_run_fits_the_target(theorem_runs):
    check, traj = theorem_runs["small_init"]
    assert traj["loss"][-1] < 1e-3 * traj["loss"][0]    # the run left the saddle and fitted the target
    assert check.passed and check.prop2_passed, check
    assert abs(check.prop2_ratio_max - 1.0) <= check.tolerance + check.prop2_tolerance
    assert check.prop2_tolerance < 1e-6


def test_prop2_fails_with_a_random_compression_subspace(theorem_runs):
    check, traj = theorem_runs["random_subspace"]
    assert check.hypotheses_hold and check.singular_value_error < 1e-10   # the original run is unaffected
    assert not check.prop2_passed and not check.passed
    assert check.prop2_ratio_max > 10, check.prop2_ratio_max   # 180 here (eps ~ 1); ~1e17 at eps = 1e-3
    assert "random" in check.notes


def test_prop2_below_float32_rounding_is_reported_uninformative():
    from lrjax.analysis.theorem import check_invariant_subspace
    rho = np.full((3, 3), 1e-3)
    gap = np.full(3, 6 * 1e-18)
    check = check_invariant_subspace(np.ones((3, 3, 10)), rho, np.zeros((3, 3)), gap, 10, 2, "float32", True,
                                     product_norm=3.0)
    assert check.prop2_tolerance > 1e-2 and not check.prop2_passed and "float32 rounding" in check.notes


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps=-1.0), "eps must be a positive finite number"),
    (dict(eps=float("inf")), "eps must be a positive finite number"),
    (dict(eps=(1.0, 1.0)), "eps must be a positive finite number or 3 of them"),
    (dict(steps=0), "steps must be a positive integer"),
    (dict(steps=10, record_every=3), "multiple of record_every"),
    (dict(d=True), "d must be a positive integer"),
    (dict(rank=0), "rank must be a positive integer"),
    (dict(rank=40), "rank=40 exceeds d=30"),
    (dict(eta=float("nan")), "eta must be a finite number > 0"),
    (dict(dtype="float16"), "dtype must be"),
    (dict(init="uniform"), "init must be"),
])
def test_simulate_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        theorem_simulation.simulate(**kwargs)
