"""The runner's on-device minibatch mode: epochs, a hand-written loop, resume mid-epoch, seeds, step keys,
non-float leaves."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lrjax import dynamics
from lrjax.dynamics import minibatch

pytestmark = pytest.mark.x64   # every test here checks float64 numerics (tests/conftest.py)

N, B = 12, 4
with jax.enable_x64(True):   # float64 data, built once (tests/conftest.py)
    X = jax.random.normal(jax.random.key(0), (N, 3), jnp.float64)
    Y = X @ jnp.array([1.0, -2.0, 0.5]) + 0.1
    DATA = {"train": {"x": X, "y": Y, "i": jnp.arange(N)}, "test": {"x": X[:5], "y": Y[:5]}}
    THETA = {"w": jnp.zeros(3, jnp.float64), "b": jnp.zeros((), jnp.float64)}
TX = optax.sgd(0.1)
SPEC = dynamics.Minibatches(B)


def loss(theta, batch, key):
    return jnp.mean((batch["x"] @ theta["w"] + theta["b"] - batch["y"]) ** 2)


def first_index(theta, batch):
    return batch["i"][0]


def test_every_epoch_visits_every_example_once_in_a_new_order():
    res = dynamics.run(loss, THETA, TX, 30, data=DATA, batches=dynamics.Minibatches(1), chunk_size=7,
                       metrics={"i": first_index}, key=3)
    order = np.asarray(res.scalars["i"])
    epochs = [order[k * N:(k + 1) * N] for k in range(2)]
    for e in epochs:
        assert sorted(e.tolist()) == list(range(N))
    assert epochs[0].tolist() != epochs[1].tolist()
    other = dynamics.run(loss, THETA, TX, 12, data=DATA, batches=dynamics.Minibatches(1), metrics={"i": first_index},
                         key=4)
    assert other.scalars["i"].tolist() != epochs[0].tolist()  # the run key sets the order


def test_matches_a_hand_written_loop():
    steps = 11
    res = dynamics.run(loss, THETA, TX, steps, data=DATA, batches=SPEC, chunk_size=5, key=7)
    k_order, k_step = minibatch.run_keys(jax.random.key_data(jax.random.key(7)))
    theta, state, losses = THETA, TX.init(THETA), []
    per_epoch = N // B
    for t in range(steps):
        order = np.asarray(minibatch.epoch_order(k_order, t // per_epoch, N))
        idx = order[(t % per_epoch) * B:(t % per_epoch + 1) * B]
        batch = jax.tree.map(lambda a: a[idx], DATA["train"])
        value, g = jax.value_and_grad(loss)(theta, batch, jax.random.fold_in(k_step, t))
        losses.append(value)
        u, state = TX.update(g, state, theta)
        theta = optax.apply_updates(theta, u)
    np.testing.assert_allclose(res.scalars["loss"], losses, rtol=1e-12)
    for a, b in zip(jax.tree.leaves(res.params), jax.tree.leaves(theta)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_resume_mid_epoch_is_bit_identical(tmp_path):
    kw = dict(data=DATA, batches=SPEC, chunk_size=5, key=1, checkpoint_every=1)
    straight = dynamics.run(loss, THETA, TX, 40, **kw)
    first = dynamics.run(loss, THETA, TX, 17, workdir=tmp_path, **kw)
    assert first.steps == 17
    resumed = dynamics.run(loss, THETA, TX, 40, workdir=tmp_path, **kw)
    assert resumed.resumed_from == 17
    np.testing.assert_array_equal(resumed.scalars["loss"], straight.scalars["loss"])
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(straight.params)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(dynamics.ResumeError, match="initial state"):  # another run key: another run
        dynamics.run(loss, THETA, TX, 40, workdir=tmp_path, **{**kw, "key": 2})


def test_batched_members_match_single_runs_with_their_keys():
    keys = jax.random.split(jax.random.key(5), 3)
    thetas = jax.tree.map(lambda x: jnp.stack([x] * 3), THETA)
    res = dynamics.run(loss, thetas, TX, 9, data=DATA, batches=SPEC, batched=True, key=keys)
    for m in range(3):
        one = dynamics.run(loss, THETA, TX, 9, data=DATA, batches=SPEC, key=keys[m])
        np.testing.assert_allclose(res.scalars["loss"][m], one.scalars["loss"], rtol=1e-12)
    assert not np.allclose(res.scalars["loss"][0], res.scalars["loss"][1])
    split = dynamics.run(loss, thetas, TX, 9, data=DATA, batches=SPEC, batched=True, key=5)
    np.testing.assert_array_equal(split.scalars["loss"], res.scalars["loss"])  # an int seed is split the same way


def test_step_keys_differ_and_recorders_see_the_test_set():
    def noisy(theta, batch, key):
        return loss(theta, batch, key), {"u": jax.random.uniform(key)}

    def test_mse(theta, data):
        return jnp.mean((data["test"]["x"] @ theta["w"] + theta["b"] - data["test"]["y"]) ** 2)

    res = dynamics.run(noisy, THETA, TX, 20, data=DATA, batches=SPEC, has_aux=True, record_every=5,
                       recorders={"test": dynamics.with_data(test_mse)})
    assert len(set(np.asarray(res.scalars["u"]).tolist())) == 20
    assert res.records["test"].shape == (5,) and res.records["test"][-1] < res.records["test"][0]


def test_integer_leaves_ride_along_untrained():
    theta = {**THETA, "count": jnp.array(7, jnp.int32), "rng": jax.random.key_data(jax.random.key(0))}
    res = dynamics.run(loss, theta, optax.adam(0.05), 20, data=DATA, batches=SPEC)
    assert int(res.params["count"]) == 7 and res.params["count"].dtype == jnp.int32
    np.testing.assert_array_equal(res.params["rng"], theta["rng"])
    assert res.scalars["loss"][-1] < res.scalars["loss"][0]


@pytest.mark.parametrize("data, spec, match", [
    (DATA, dynamics.Minibatches(13), "batch_size=13 exceeds the 12 training examples"),
    ({"x": X}, SPEC, "training set under 'train'"),
    ({"train": {"x": X, "y": Y[:5]}}, SPEC, "same leading number of examples"),
])
def test_bad_minibatch_setups(data, spec, match):
    with pytest.raises(ValueError, match=match):
        dynamics.run(loss, THETA, TX, 5, data=data, batches=spec)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        dynamics.Minibatches(0)


def test_unrolled_calls_give_the_same_run():
    kw = dict(data=DATA, batches=SPEC, chunk_size=10, record_every=5, key=2, metrics={"i": first_index},
              recorders={"w": lambda t: t["w"]})
    looped = dynamics.run(loss, THETA, TX, 23, **kw)
    runner = dynamics.Runner(loss, TX, batches=SPEC, chunk_size=10, record_every=5, unroll=3,
                             metrics={"i": first_index}, recorders={"w": lambda t: t["w"]})
    assert runner.plan(0, 23)[:3] == [(1, 3, True), (1, 2, False), (1, 3, True)]
    unrolled = runner.run(THETA, 23, data=DATA, key=2)
    np.testing.assert_array_equal(unrolled.scalars["i"], looped.scalars["i"])
    np.testing.assert_allclose(unrolled.scalars["loss"], looped.scalars["loss"], rtol=1e-12)
    np.testing.assert_array_equal(unrolled.records["step"], looped.records["step"])
    np.testing.assert_allclose(unrolled.records["w"], looped.records["w"], rtol=1e-12)


def test_members_in_turn_match_vmapped_members():
    keys = jax.random.split(jax.random.key(8), 3)
    thetas = jax.tree.map(lambda x: jnp.stack([x * (i + 1) for i in range(3)]), {"w": jnp.ones(3), "b": jnp.ones(())})
    kw = dict(data=DATA, batches=SPEC, batched=True, key=keys, chunk_size=6, record_every=3,
              recorders={"w": lambda t: t["w"]})
    vmapped = dynamics.run(loss, thetas, TX, 12, **kw)
    in_turn = dynamics.run(loss, thetas, TX, 12, members="loop", unroll=3, **kw)
    np.testing.assert_allclose(in_turn.scalars["loss"], vmapped.scalars["loss"], rtol=1e-12)
    np.testing.assert_allclose(in_turn.records["w"], vmapped.records["w"], rtol=1e-12)
    with pytest.raises(ValueError, match="members must be"):
        dynamics.Runner(loss, TX, members="pmap")


def test_members_in_turn_with_per_member_data():
    thetas = jax.tree.map(lambda x: jnp.stack([x, x + 1]), THETA)
    data = {"train": jax.tree.map(lambda a: jnp.stack([a, a[::-1]]), DATA["train"])}
    kw = dict(data=data, batches=SPEC, batched=True, data_batched=True, key=1)
    vmapped = dynamics.run(loss, thetas, TX, 8, **kw)
    in_turn = dynamics.run(loss, thetas, TX, 8, members="loop", **kw)
    np.testing.assert_allclose(in_turn.scalars["loss"], vmapped.scalars["loss"], rtol=1e-12)
    with pytest.raises(ValueError, match="needs batched=True"):
        dynamics.Runner(loss, TX, members="loop")
