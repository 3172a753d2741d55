"""PEFT export carries every trained leaf (LoRA, biases through ``bias``, whole modules through
``modules_to_save``) or refuses naming it; PEFT import errs on what it cannot apply, never ignores it.
(The export PEFT itself loads, on all-MiniLM-L6-v2: ``tests/test_bert.py``.)"""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from lrjax import binding
from lrjax.io import peft
from lrjax.models import bert
from lrjax.param import FROZEN

TINY = bert.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=24, max_position_embeddings=12)
IDS = jnp.array([[2, 7, 9, 3, 0, 0], [2, 5, 3, 11, 4, 0]], jnp.int32)
QV = r"encoder/layer_\d+/attention/self/(query|value)/kernel"


def _tiny_params(key=0):
    return bert.Bert(TINY).init(jax.random.key(key), jnp.zeros((1, 4), jnp.int32), jnp.ones((1, 4)))["params"]


def _trained(bound, seed=3):
    """``bound`` with N(0, 0.1^2) added to every leaf that is not frozen (what training changes)."""
    rng, theta = np.random.default_rng(seed), {}
    for name, p in bound.params:
        roles = p.roles(bound.theta[name])
        theta[name] = jax.tree.map(lambda t, r: t if r == FROZEN else t + jnp.asarray(rng.normal(0, 0.1, t.shape), t.dtype),
                                   bound.theta[name], roles)
    return binding.Bound(theta, bound.params, bound.treedef)


def _same_model(a, b, atol=1e-6):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=atol), binding.materialize(a), binding.materialize(b))
    mask = (IDS != 0).astype(jnp.int32)
    ha = bert.Bert(TINY).apply({"params": binding.materialize(a)}, IDS, mask)
    hb = bert.Bert(TINY).apply({"params": binding.materialize(b)}, IDS, mask)
    np.testing.assert_allclose(ha, hb, atol=1e-5)


def _config(directory):
    return json.loads((directory / "adapter_config.json").read_text())


def test_lora_on_every_kernel_with_the_rest_dense_exports_biases_and_modules_to_save(tmp_path):
    """The issue's ``rules=".*kernel=lora(4)"`` (leaves no rule names train densely): the biases, LayerNorms and
    embeddings train, so the export carries them and loading it back is the trained model (it used to write
    ``bias: "none"`` and lose them)."""
    params = _tiny_params()
    b = _trained(binding.bind(params, [(".*kernel", "lora(4)"), (".*", "dense()")], key=1))
    info = peft.export(tmp_path / "a", b, bert.hf_module)
    config, tensors = _config(tmp_path / "a"), load_file(str(tmp_path / "a" / "adapter_model.safetensors"))
    layers = [f"encoder.layer.{l}" for l in range(2)]
    norms = ["embeddings.LayerNorm"] + [f"{l}.{m}.LayerNorm" for l in layers for m in ("attention.output", "output")]
    embeddings = [f"embeddings.{e}_embeddings" for e in ("position", "token_type", "word")]
    assert config["bias"] == info["bias"] == "lora_only"
    assert config["modules_to_save"] == info["modules_to_save"] == sorted(norms + embeddings)
    assert len(info["modules"]) == 12 and info["discarded"] == 0.0
    # 12 adapted modules: A, B and the bias; 5 LayerNorms: weight and bias; 3 embeddings: weight
    assert len(tensors) == 12 * 3 + 5 * 2 + 3
    q = "encoder.layer.1.attention.self.query"
    np.testing.assert_array_equal(tensors[f"base_model.model.{q}.base_layer.bias"],
                                  b.theta["encoder/layer_1/attention/self/query/bias"]["w"])
    np.testing.assert_array_equal(tensors["base_model.model.encoder.layer.0.output.LayerNorm.weight"],
                                  b.theta["encoder/layer_0/output/LayerNorm/scale"]["w"])
    np.testing.assert_array_equal(tensors["base_model.model.embeddings.word_embeddings.weight"],
                                  b.theta["embeddings/word_embeddings/embedding"]["w"])
    back = peft.load(tmp_path / "a", params, bert.hf_module)
    _same_model(back, b)
    assert binding.count_params(back) == binding.count_params(b)    # what trained is trainable again
    again = peft.export(tmp_path / "b", back, bert.hf_module)       # and exports the same directory
    assert _config(tmp_path / "b") == config and again["modules_to_save"] == info["modules_to_save"]
    retensors = load_file(str(tmp_path / "b" / "adapter_model.safetensors"))
    assert sorted(retensors) == sorted(tensors)
    for k in tensors:
        np.testing.assert_allclose(retensors[k], tensors[k], atol=1e-6)


def test_trained_biases_outside_the_adapted_modules_export_as_bias_all(tmp_path):
    params = _tiny_params()
    b = _trained(binding.bind(params, [(QV, "lora(2, alpha=4.0)"), (".*bias", "dense()"), (".*", "frozen()")], key=2))
    info = peft.export(tmp_path / "all", b, bert.hf_module)
    config, tensors = _config(tmp_path / "all"), load_file(str(tmp_path / "all" / "adapter_model.safetensors"))
    assert config["bias"] == info["bias"] == "all" and config["modules_to_save"] is None
    biases = [p for p, _ in b.params if p.endswith("/bias")]
    assert len(tensors) == 4 * 2 + len(biases)                      # every bias of the model, as PEFT saves "all"
    assert "base_model.model.encoder.layer.0.attention.self.value.base_layer.bias" in tensors
    np.testing.assert_array_equal(tensors["base_model.model.encoder.layer.0.intermediate.dense.bias"],
                                  b.theta["encoder/layer_0/intermediate/dense/bias"]["w"])
    np.testing.assert_array_equal(tensors["base_model.model.embeddings.LayerNorm.bias"],
                                  b.theta["embeddings/LayerNorm/bias"]["w"])
    _same_model(peft.load(tmp_path / "all", params, bert.hf_module), b)
    # only the adapted modules' biases train: lora_only, and only theirs are written
    b = _trained(binding.bind(params, [(QV, "lora(2, alpha=4.0)"), (r".*/self/(query|value)/bias", "dense()"),
                                       (".*", "frozen()")], key=2))
    info = peft.export(tmp_path / "only", b, bert.hf_module)
    tensors = load_file(str(tmp_path / "only" / "adapter_model.safetensors"))
    assert info["bias"] == _config(tmp_path / "only")["bias"] == "lora_only" and len(tensors) == 4 * 3
    _same_model(peft.load(tmp_path / "only", params, bert.hf_module), b)


def test_a_dense_head_beside_the_encoder_is_a_module_to_save(tmp_path):
    """``experiments/few_shot.py``'s binding: LoRA on query/value, a new head trained densely, the rest frozen."""
    head = {"kernel": jnp.zeros((16, 2)), "bias": jnp.zeros((2,))}
    params = {"bert": _tiny_params(), "head": head}
    b = _trained(binding.bind(params, [(f"bert/{QV}", "lora(4)"), ("head/.*", "dense()"), (".*", "frozen()")]))
    info = peft.export(tmp_path / "h", b, bert.hf_module)
    tensors = load_file(str(tmp_path / "h" / "adapter_model.safetensors"))
    assert info["modules_to_save"] == _config(tmp_path / "h")["modules_to_save"] == ["head"] and info["bias"] == "none"
    np.testing.assert_array_equal(tensors["base_model.model.head.weight"], np.asarray(b.theta["head/kernel"]["w"]).T)
    np.testing.assert_array_equal(tensors["base_model.model.head.bias"], b.theta["head/bias"]["w"])
    back = peft.load(tmp_path / "h", params, bert.hf_module)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-6), binding.materialize(back), binding.materialize(b))
    with pytest.raises(ValueError, match="modules_to_save entry 'head' matches no module"):
        peft.load(tmp_path / "h", {"bert": params["bert"]}, bert.hf_module)


def _dotted(path):
    return path.rsplit("/", 1)[0].replace("/", ".")


@pytest.mark.parametrize("tree, rules, module_name, names", [
    # a trained leaf the module names cannot name
    ({"bert": {"encoder": {"layer_0": {"attention": {"self": {"query": {"kernel": np.ones((4, 4))}}}}}},
      "gain": np.ones(3)},
     [(".*kernel", "lora(2)"), (".*", "dense()")], bert.hf_module, "'gain'"),
    # a trained leaf of a kind with no torch name
    ({"a": {"kernel": np.ones((4, 3))}, "b": {"gain": np.ones(3)}},
     [(".*kernel", "lora(2)"), (".*", "dense()")], _dotted, "'b/gain'"),
    # a conv kernel trained (a matricized adapter is no PEFT LoRA here either)
    ({"a": {"kernel": np.ones((4, 3))}, "conv": {"kernel": np.ones((3, 3, 2, 4))}},
     [("a/kernel", "lora(2)"), (".*", "lora(2)")], _dotted, "'conv/kernel'"),
    # an adapter on an embedding (PEFT stores those as lora_embedding_A/B)
    ({"a": {"kernel": np.ones((4, 3))}, "emb": {"embedding": np.ones((10, 4))}},
     [(".*", "lora(2)")], _dotted, "'emb/embedding'"),
    # a leaf other than the bias trained in an adapted module
    ({"a": {"kernel": np.ones((4, 3)), "scale": np.ones(3)}},
     [(".*kernel", "lora(2)"), (".*", "dense()")], _dotted, "'a/scale'"),
    # a module to save whose name ends another module's name (PEFT would replace both)
    ({"a": {"kernel": np.ones((4, 3))}, "head": {"kernel": np.ones((3, 2))},
      "cls": {"head": {"kernel": np.ones((3, 2))}}},
     [("a/kernel", "lora(2)"), ("head/kernel", "dense()"), (".*", "frozen()")], _dotted, "'cls.head'"),
])
def test_export_refuses_what_peft_cannot_carry_in_one_line(tmp_path, tree, rules, module_name, names):
    b = _trained(binding.bind(jax.tree.map(jnp.asarray, tree), rules))
    with pytest.raises(ValueError, match=names) as e:
        peft.export(tmp_path / "x", b, module_name)
    assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A LoRA on query/value with trained biases (``bias="lora_only"``): the directory and the bound model."""
    params = _tiny_params()
    b = _trained(binding.bind(params, [(QV, "lora(2)"), (r".*/self/(query|value)/bias", "dense()"),
                                       (".*", "frozen()")], key=4))
    directory = tmp_path_factory.mktemp("peft") / "qv"
    peft.export(directory, b, bert.hf_module)
    return directory, params, b


def _edited(exported, tmp_path, config=None, drop=(), rename=None, name="edited"):
    """A copy of the exported directory, ``config`` merged into its config, tensors whose key holds one of ``drop``
    left out, keys renamed by ``rename``."""
    directory, _, _ = exported
    out = tmp_path / name
    out.mkdir()
    tensors = load_file(str(directory / "adapter_model.safetensors"))
    tensors = {(rename or {}).get(k, k): v for k, v in tensors.items() if not any(d in k for d in drop)}
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    (out / "adapter_config.json").write_text(json.dumps({**_config(directory), **(config or {})}))
    return out


TARGETS = [f"encoder.layer.{l}.attention.self.{m}" for l in range(2) for m in ("query", "value")]


@pytest.mark.parametrize("config, names", [
    ({"use_dora": True}, "use_dora"),
    ({"fan_in_fan_out": True}, "fan_in_fan_out"),
    ({"bias": "boft_only"}, "bias='boft_only'"),
    ({"init_lora_weights": "pissa"}, "init_lora_weights='pissa'"),
    ({"layers_to_transform": [0]}, "layers_to_transform"),
    ({"lora_bias": True}, "lora_bias"),
    ({"trainable_token_indices": [1, 2]}, "trainable_token_indices"),
    ({"rank_pattern": {"query": 4}}, "rank_pattern"),
    ({"target_modules": "all-linear"}, "all-linear"),
    ({"target_modules": TARGETS + ["encoder.layer.0.attention.self.key"]}, r"'encoder\.layer\.0\.attention\.self\.key'"),
    ({"target_modules": ["query", "value", "qkv"]}, "'qkv'"),
    ({"modules_to_save": ["embeddings.LayerNorm"]}, r"'embeddings\.LayerNorm'"),
    ({"modules_to_save": ["classifier"]}, "'classifier'"),
])
def test_load_refuses_options_and_modules_it_cannot_apply_in_one_line(exported, tmp_path, config, names):
    with pytest.raises(ValueError, match=names) as e:
        peft.load(_edited(exported, tmp_path, config), exported[1], bert.hf_module)
    assert "\n" not in str(e.value)


def test_load_refuses_a_target_module_without_tensors_and_tensors_nothing_uses(exported, tmp_path):
    directory, params, _ = exported
    missing = _edited(exported, tmp_path, drop=["layer.1.attention.self.value.lora_B"])
    with pytest.raises(ValueError, match=r"'encoder\.layer\.1\.attention\.self\.value' has no lora_A/lora_B"):
        peft.load(missing, params, bert.hf_module)
    with pytest.raises(ValueError, match="base_layer.bias"):       # biases present, but the config says none
        peft.load(_edited(exported, tmp_path, {"bias": "none"}, name="none"), params, bert.hf_module)


def test_load_reads_peft_written_configs(exported, tmp_path):
    """What PEFT itself writes: every LoraConfig field at its default, ``target_modules`` as suffixes, a bias
    under the pre-``base_layer`` key, ``exclude_modules``; and a ``lora_only`` directory without biases (PEFT up
    to 0.19 drops them) loads with the base biases."""
    directory, params, b = exported
    full = {"alpha_pattern": {}, "auto_mapping": None, "corda_config": None, "eva_config": None, "exclude_modules": None,
            "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True, "layer_replication": None,
            "layers_pattern": None, "layers_to_transform": None, "loftq_config": {}, "lora_bias": False,
            "lora_dropout": 0.1, "megatron_config": None, "megatron_core": "megatron.core", "peft_version": "0.20.0",
            "qalora_group_size": 16, "rank_pattern": {}, "revision": None, "target_modules": ["value", "query"],
            "target_parameters": None, "task_type": "FEATURE_EXTRACTION", "trainable_token_indices": None,
            "use_dora": False, "use_qalora": False}
    q = "base_model.model.encoder.layer.0.attention.self.query"
    legacy = _edited(exported, tmp_path, full, rename={f"{q}.base_layer.bias": f"{q}.bias"})
    _same_model(peft.load(legacy, params, bert.hf_module), b)
    excluded = _edited(exported, tmp_path, {"target_modules": ["query", "value"],
                                                 "exclude_modules": ["encoder.layer.1.attention.self.value"]},
                       drop=["layer.1.attention.self.value"], name="excluded")
    back = peft.load(excluded, params, bert.hf_module)
    assert "u" not in back.theta["encoder/layer_1/attention/self/value/kernel"]
    assert "u" in back.theta["encoder/layer_1/attention/self/query/kernel"]
    nobias = _edited(exported, tmp_path, drop=["bias"], name="nobias")
    back = peft.load(nobias, params, bert.hf_module)
    np.testing.assert_array_equal(back.theta["encoder/layer_0/attention/self/query/bias"]["w"],
                                  params["encoder"]["layer_0"]["attention"]["self"]["query"]["bias"])
