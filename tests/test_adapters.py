"""Adapter files: only the trained leaves are stored; loading onto the base gives back the bound model."""
import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from lrjax import binding, param
from lrjax.io import adapters


class CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(8, (3, 3))(x))
        return nn.Dense(4)(nn.Dense(32)(x.reshape(x.shape[0], -1)))


X = jax.random.normal(jax.random.key(0), (2, 6, 6, 1))


@pytest.mark.slow
@pytest.mark.parametrize("rules", [[(".*kernel", "lora(4, alpha=8.0)"), (".*", "frozen()")],
                                   [(".*Dense_0/kernel", "deep_lora(3, width=4, scale=0.1)"),
                                    (".*kernel", "subspace(7, seed=2)"), (".*", "frozen()")]])
def test_save_load_round_trip_and_sizes(tmp_path, rules):
    model = CNN()
    base = model.init(jax.random.key(1), X)["params"]
    bound = binding.bind(base, rules, key=3)
    trained = jax.tree.map(lambda a: a + 0.01 * jnp.ones_like(a), bound)  # as if training moved every leaf
    trained = binding.Bound({n: ({**t, "base": bound.theta[n]["base"]} if "base" in t else t)
                             for n, t in trained.theta.items()}, bound.params, bound.treedef)
    size = adapters.save(tmp_path / "a", trained)
    loaded = adapters.load(tmp_path / "a", base)
    assert [p for _, p in loaded.params] == [p for _, p in trained.params]
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(trained)):
        np.testing.assert_array_equal(a, b)
    merged = binding.materialize(loaded)  # a plain parameter tree
    np.testing.assert_allclose(model.apply({"params": merged}, X),
                               model.apply({"params": binding.materialize(trained)}, X), rtol=1e-6)
    stored = sum(np.asarray(leaf).size for leaf, role in zip(jax.tree.leaves(trained),
                                                             jax.tree.leaves(binding.roles(trained)))
                 if role != param.FROZEN)
    full = sum(np.asarray(leaf).size for leaf in jax.tree.leaves(base))
    assert stored < full / 2 and size["adapter.npz"] < 4 * full
    with np.load(tmp_path / "a" / "adapter.npz") as z:
        assert sum(z[k].size for k in z.files) == stored and not any("base" in k for k in z.files)


def test_load_refuses_a_different_base(tmp_path):
    base = CNN().init(jax.random.key(1), X)["params"]
    adapters.save(tmp_path / "a", binding.bind(base, [(".*kernel", "lora(2)"), (".*", "frozen()")]))
    other = CNN().init(jax.random.key(1), jnp.zeros((2, 8, 8, 1)))["params"]  # Dense_0 has more inputs
    with pytest.raises(ValueError, match="has shape"):
        adapters.load(tmp_path / "a", other)


LORA = [(".*kernel", "lora(2)"), (".*", "frozen()")]


def _trained_lora(tmp_path):
    """A LoRA adapter of CNN() on the base of key 1 whose ``v`` moved (so the adapted model is not the base),
    saved in ``tmp_path / "a"``; returns ``(base, bound)``."""
    base = CNN().init(jax.random.key(1), X)["params"]
    bound = binding.bind(base, LORA, key=3)
    bound = binding.Bound({n: ({**t, "v": t["v"] + 0.1} if "v" in t else t) for n, t in bound.theta.items()},
                          bound.params, bound.treedef)
    adapters.save(tmp_path / "a", bound)
    return base, bound


def test_load_refuses_another_base_of_the_same_shapes_naming_both_hashes(tmp_path):
    base, bound = _trained_lora(tmp_path)
    other = CNN().init(jax.random.key(2), X)["params"]  # same shapes, other values: it used to load silently
    with pytest.raises(ValueError) as e:
        adapters.load(tmp_path / "a", other)
    recorded = json.loads((tmp_path / "a" / "adapter.json").read_text())["base"]["sha256"]
    assert recorded == adapters.base_hash(bound) and len(recorded) == 64
    theirs = adapters.base_hash(binding.bind(other, LORA))
    assert isinstance(e.value, adapters.WrongBase) and theirs != recorded
    assert recorded in str(e.value) and theirs in str(e.value) and "\n" not in str(e.value)
    adapters.load(tmp_path / "a", base)  # its own base still loads


def test_save_records_how_to_rebuild_the_base(tmp_path):
    base, bound = _trained_lora(tmp_path)
    adapters.save(tmp_path / "b", bound, base_recipe={"model": "CNN", "init": "key(1)"})
    meta = json.loads((tmp_path / "b" / "adapter.json").read_text())
    assert meta["format"] == 2 and meta["base"] == {"sha256": adapters.base_hash(bound),
                                                    "recipe": {"model": "CNN", "init": "key(1)"}}


def _rewrite(directory, change):
    """Rewrite ``directory/adapter.npz`` with ``change(arrays)`` applied to its dict of arrays."""
    with np.load(directory / "adapter.npz") as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez(directory / "adapter.npz", **arrays)


V = "Dense_1/kernel|['v']"
U = "Dense_0/kernel|['u']"


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop(V), re.escape(f"lacks the adapter leaves {V}") + "$"),         # the base model, silently
    (lambda a: a.clear(), "lacks the adapter leaves .*Conv_0/kernel"),                 # an empty adapter.npz
    (lambda a: a.update(extra=np.zeros(2, np.float32)), "not used by the base parameters: extra$"),
    (lambda a: a.update({U: np.full(a[U].shape, 1, np.int32)}), re.escape(f"{U} has dtype int32, the base needs float32")),
    (lambda a: a.update({U: a[U].astype(np.float64)}), re.escape(f"{U} has dtype float64")),
    (lambda a: a[V].__setitem__((0, 0), np.nan), re.escape(f"{V} has 1 non-finite values")),
    (lambda a: a[V].__setitem__((0, 0), np.inf), re.escape(f"{V} has 1 non-finite values")),
], ids=["missing v", "empty", "extra", "int32", "float64", "nan", "inf"])
def test_load_refuses_missing_extra_and_bad_arrays_in_one_line(tmp_path, change, message):
    base, _ = _trained_lora(tmp_path)
    _rewrite(tmp_path / "a", change)
    with pytest.raises(ValueError, match=message) as e:
        adapters.load(tmp_path / "a", base)
    assert isinstance(e.value, adapters.AdapterError) and "\n" not in str(e.value)


@pytest.mark.slow  # a quick train_classifier run (about 45 s on two busy cores)
def test_train_classifier_saves_every_seed_loadable_onto_its_rebuilt_base_only(tmp_path):
    from lrjax import data, models
    from lrjax.harness import cli
    train_classifier = cli.experiment_module("train_classifier")
    m = cli.run_config(str(Path(cli.ROOT) / "configs/train_classifier.py:quick"), workdir=str(tmp_path), quiet=True,
                       overrides=["rules=.*kernel=lora(4)", "steps=50", "eval_every=50"])
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == ["seed_0", "seed_1"]
    for s in range(2):
        assert sorted(p.name for p in (tmp_path / "adapter" / f"seed_{s}").iterdir()) == [
            "adapter.json", "adapter.npz", "merged_params.npz"]
    splits = data.load_splits("digits")
    model = models.make("mlp", (32,), classes=10)
    for s in range(2):
        directory = tmp_path / "adapter" / f"seed_{s}"
        loaded = adapters.load(directory, train_classifier.base_params(directory))
        merged = binding.materialize(loaded)
        with np.load(directory / "merged_params.npz") as z:
            for path, w in jax.tree_util.tree_flatten_with_path(merged)[0]:
                np.testing.assert_array_equal(z[binding.path_to_str(path)], w)
        accuracy = np.mean(np.argmax(model.apply({"params": merged}, splits["test"]["x"]), -1) == splits["test"]["y"])
        assert abs(accuracy - m["test_accuracy"][s]) <= 1.5 / len(splits["test"]["y"]), (s, accuracy, m["test_accuracy"])
    guess = model.init(jax.random.key(0), splits["train"]["x"][:1])["params"]  # the natural guess: not the base
    for directory, wrong in [(tmp_path / "adapter" / "seed_0", guess),
                             (tmp_path / "adapter" / "seed_1", train_classifier.base_params(tmp_path / "adapter" / "seed_0"))]:
        with pytest.raises(adapters.WrongBase, match="was trained on a base of sha256 [0-9a-f]{64}, these base "
                                                     "parameters hash to [0-9a-f]{64}"):
            adapters.load(directory, wrong)


def test_a_format_1_adapter_without_a_base_record_loads_with_a_warning(tmp_path):
    base, bound = _trained_lora(tmp_path)
    meta = json.loads((tmp_path / "a" / "adapter.json").read_text())
    del meta["base"]
    (tmp_path / "a" / "adapter.json").write_text(json.dumps({**meta, "format": 1}))
    with pytest.warns(UserWarning, match="records no base"):
        loaded = adapters.load(tmp_path / "a", base)
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(bound)):
        np.testing.assert_array_equal(a, b)


def test_a_format_2_adapter_without_its_base_record_is_refused_in_one_line(tmp_path):
    import json

    from lrjax.io.adapters import AdapterError
    params = {"kernel": jnp.ones((4, 3)), "bias": jnp.zeros(3)}
    bound = binding.bind(params, [(".*kernel", "lora(2)"), (".*", "frozen()")], key=0)
    adapters.save(tmp_path, bound)
    meta = json.loads((tmp_path / "adapter.json").read_text())
    del meta["base"]
    (tmp_path / "adapter.json").write_text(json.dumps(meta))
    with pytest.raises(AdapterError, match="records no base"):
        adapters.load(tmp_path, params)
