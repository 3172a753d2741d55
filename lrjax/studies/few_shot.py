"""Few-shot fine-tuning data, targets and metrics for the pretrained encoder (``experiments/few_shot.py``).

Tasks (offline): ``sentiment``, Rotten Tomatoes snippets (``lrjax.data.text``), 2 classes, cross-entropy,
accuracy; ``similarity``, the Lee document pairs (``lrjax.data.similarity``), one regression output, mean
squared error, Pearson r on the 300 held-out pairs (the Deep LoRA authors' STS-B metric: ``dlt/metrics.py`` MSE loss, ``eval_pearson``). A pair is one
input ``[CLS] a [SEP] b [SEP]`` (a cross-encoder, as BERT on STS-B).

``sampling``: ``balanced`` (sentiment: half per class, without replacement; similarity: without
replacement) or ``with_replacement`` (uniform over the training split, not class-balanced: the authors' draw,
``dlt/data.py``). Seed ``s`` of a run with ``seed`` draws with ``default_rng(seed * 10000 + s)``.

``targets``: a regex over ``query|key|value`` (the self-attention kernels of every layer) or ``"all_dense"``:
every 2-D weight of the encoder with min dimension >= 384 (the hidden size): Q, K, V, O, both FFN kernels of
every layer, the pooler's dense kernel, the word and position embeddings; the 2 x 384 token-type embeddings
are left out. The authors' ``ALL_DENSE`` (``dlt/model_utils.py``) takes min dimension >= 512 in bert-base
(hidden 768), which selects the same kinds of weight there; in a 384-wide model 512 would select nothing.
"""
from __future__ import annotations

import dataclasses
import re

import jax.numpy as jnp
import numpy as np

from lrjax.data import similarity, text
from lrjax.tasks import cross_entropy

TASKS = ("sentiment", "similarity")
SAMPLINGS = ("balanced", "with_replacement")
ALL_DENSE = (r"bert/encoder/layer_\d+/(attention/self/(query|key|value)|attention/output/dense|intermediate/dense"
             r"|output/dense)/kernel|pooler/dense/kernel|bert/embeddings/(word|position)_embeddings/embedding")
SENTIMENT_TEST = 2551      # snippets in the sentiment test split
SIMILARITY_SPLIT = 300     # pairs in each similarity split


def target_pattern(targets: str) -> str:
    """The parameter-path regex of the adapted weights (module docstring)."""
    if targets == "all_dense":
        return ALL_DENSE
    return rf"bert/encoder/layer_\d+/attention/self/({targets})/kernel"


def targets_valid(targets: str) -> bool:
    if targets == "all_dense":
        return True
    try:
        re.compile(targets)
    except re.error:
        return False
    return any(re.fullmatch(targets, name) for name in ("query", "key", "value"))


@dataclasses.dataclass(frozen=True)
class FewShotData:
    """``x: (seeds, samples, 2 | 3, T)`` packed inputs (``bert.SentenceClassifier``), ``y: (seeds, samples)``
    labels (int32) or ratings (float32); ``xv: (n_val, 2 | 3, T)``, ``yv: (n_val,)`` the held-out set;
    ``outputs``: 2 classes or 1 regression output. ``T``: the longest input, at most ``max_length`` (padding
    columns beyond every input's end are dropped: attention and pooling mask them, so outputs are unchanged)."""

    x: np.ndarray
    y: np.ndarray
    xv: np.ndarray
    yv: np.ndarray
    outputs: int


def draw(n: int, labels: np.ndarray | None, samples: int, sampling: str, seed: int) -> np.ndarray:
    """``samples`` training indices (module docstring)."""
    if sampling == "with_replacement":
        return similarity.with_replacement(n, samples, seed)
    if labels is not None:
        return text.few_shot(labels, samples, seed)
    return np.sort(np.random.default_rng(seed).choice(n, samples, replace=False))


def load(task: str, model, *, samples: int, seeds: int, seed: int, sampling: str, max_length: int,
         val_size: int) -> FewShotData:
    """The seeds' training draws and the held-out set of ``task``, tokenised by ``model`` (a
    ``bert.Pretrained``); ``val_size`` held-out examples (0: all), a fixed ``default_rng(1)`` subset."""
    if task == "sentiment":
        texts, labels = text.load_sentiment("train")
        vtexts, vlabels = text.load_sentiment("test")
        pack = lambda idx, t: model.packed([t[i] for i in idx], max_length)  # noqa: E731
        train_inputs, val_inputs, train_y, val_y, n, strata, outputs = texts, vtexts, labels, vlabels, len(texts), labels, 2
    elif task == "similarity":
        a, b, scores = similarity.load_similarity("train")
        va, vb, vscores = similarity.load_similarity("test")
        pack = lambda idx, t: model.packed_pairs([t[0][i] for i in idx], [t[1][i] for i in idx], max_length)  # noqa: E731
        train_inputs, val_inputs, train_y, val_y, n, strata, outputs = (a, b), (va, vb), scores, vscores, len(a), None, 1
    else:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    val = held_out(len(val_y), val_size)
    picks = [draw(n, strata, samples, sampling, seed * 10_000 + s) for s in range(seeds)]
    x = np.stack([pack(p, train_inputs) for p in picks])
    xv = pack(val, val_inputs)
    length = int(max(x[:, :, 1].sum(-1).max(), xv[:, 1].sum(-1).max()))
    return FewShotData(x[..., :length], np.stack([train_y[p] for p in picks]), xv[..., :length], val_y[val], outputs)


def held_out(n: int, val_size: int) -> np.ndarray:
    """The held-out examples scored: ``val_size`` of the ``n`` (0: all), a fixed ``default_rng(1)`` draw, sorted."""
    return np.sort(np.random.default_rng(1).permutation(n)[:val_size or n])


def loss(task: str, outputs: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """Cross-entropy of ``(n, 2)`` logits (sentiment) or the mean squared error of ``(n, 1)`` outputs."""
    if task == "sentiment":
        return cross_entropy(outputs, y)
    return jnp.mean((outputs[:, 0] - y) ** 2)


def pearson(pred: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
    """Pearson's r of two ``(n,)`` vectors (0 when either is constant)."""
    p, t = pred - pred.mean(), target - target.mean()
    denom = jnp.sqrt(jnp.sum(p * p) * jnp.sum(t * t))
    return jnp.where(denom > 0, jnp.sum(p * t) / jnp.where(denom > 0, denom, 1.0), 0.0)


def evaluate(task: str, outputs: jnp.ndarray, y: jnp.ndarray) -> dict:
    """``{"loss", "accuracy"}`` (sentiment) or ``{"loss", "pearson"}`` (similarity) of held-out outputs."""
    if task == "sentiment":
        return {"loss": cross_entropy(outputs, y), "accuracy": jnp.mean(jnp.argmax(outputs, -1) == y)}
    return {"loss": loss(task, outputs, y), "pearson": pearson(outputs[:, 0], y)}
