"""Adapter files: only the trained leaves are stored; loading onto the base gives back the bound model."""
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
