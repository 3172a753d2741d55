"""What the frozen pretrained encoder already carries for a few-shot task, before any adapter trains
(``experiments/few_shot.py``, ``method=none``): the references a few-shot score is read against.

- ``zero_shot_pearson``: the checkpoint used as sentence-transformers uses it (each document on its own,
  mean-pooled, L2-normalised; ``bert.sentence_embeddings``): Pearson r of the cosine of a pair's two
  embeddings against the ratings, no training, no head.
- ``frozen_features`` of the packed inputs a few-shot run sees: ``pooler`` = ``tanh([CLS] W + b)`` with the
  checkpoint's pooler (what a ``pooling="cls"`` head reads), ``cls`` = the final ``[CLS]`` state, ``mean`` =
  the masked mean of the final states; each ``(n, 384)``.
- ``segment_cosine``: inside the joint pass over ``[CLS] a [SEP] b [SEP]``, the cosine of the mean final
  state over ``a``'s tokens and over ``b``'s (special tokens left out): a pair score the joint pass holds, but
  not as a linear function of one pooled vector.
- ``ridge_readout``: a linear readout of fixed features fitted on a training set: ridge regression at
  penalty ``lam``, ``w = A^T (A A^T + lam I)^{-1} (y - ybar)`` on centred features ``A`` (targets: the
  rating, or +-1 per class), scored on held-out features by the task's metric (``few_shot.pearson``, or the
  accuracy of the sign).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lrjax.data import similarity
from lrjax.models import bert
from lrjax.studies import few_shot as fs

FEATURES = ("pooler", "cls", "mean")
LAMBDAS = tuple(10.0 ** k for k in range(-2, 9))   # ridge penalties tried, 1e-2 ... 1e8 (features: norm ~1-10;
                                                   # at 1e8 a Pearson score is at its lam -> infinity limit)


def zero_shot_pearson(val_size: int, max_length: int = bert.MAX_SEQ_LENGTH) -> float:
    """Pearson r (``few_shot.pearson``) between the held-out pairs' ratings and the cosine of their two
    documents' sentence embeddings, each document truncated to ``max_length`` tokens (256: as
    sentence-transformers does)."""
    first, second, scores = similarity.load_similarity("test")
    docs = sorted(set(first) | set(second))
    row = {d: i for i, d in enumerate(docs)}
    e = bert.sentence_embeddings(docs, max_length=max_length)          # (documents, 384), unit rows
    idx = fs.held_out(len(scores), val_size)
    cos = np.array([e[row[first[i]]] @ e[row[second[i]]] for i in idx])
    return float(fs.pearson(jnp.asarray(cos), jnp.asarray(scores[idx])))


@functools.lru_cache(maxsize=4)
def _features_fn(config: bert.BertConfig, cls_id: int, sep_id: int):
    """``(params, pooler, x) -> frozen_features``'s dict for one batch (``pooler``: the checkpoint's pooler
    params, or None), compiled once per encoder shape."""
    net = bert.Bert(config)

    @jax.jit
    def fn(params, pooler, x):
        ids, mask = x[:, 0], x[:, 1]
        types = x[:, 2] if x.shape[1] > 2 else jnp.zeros_like(ids)
        h = net.apply({"params": params}, ids, mask, types)                             # (n, T, 384)
        out = {"cls": h[:, 0], "mean": bert.mean_pool(h, mask)}
        if pooler is not None:
            out["pooler"] = bert.Pooler(config.hidden_size).apply({"params": pooler}, h)
        words = (mask > 0) & (ids != cls_id) & (ids != sep_id)
        a = bert.mean_pool(h, words & (types == 0))
        b = bert.mean_pool(h, words & (types == 1))
        out["segment_cosine"] = jnp.sum(a * b, -1) / jnp.maximum(
            jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1), 1e-12)
        return out
    return fn


def frozen_features(model: bert.Pretrained, x: np.ndarray, batch_size: int = 50) -> dict[str, np.ndarray]:
    """``x (n, 2 | 3, T)`` packed inputs -> ``{"pooler", "cls", "mean": (n, 384), "segment_cosine": (n,)}``
    of the frozen encoder (no adapter, no dropout; ``pooler`` only when the checkpoint has one;
    ``segment_cosine`` is meaningful for pairs only)."""
    fn = _features_fn(model.config, model.tokenizer.token_to_id("[CLS]"), model.tokenizer.token_to_id("[SEP]"))
    parts = [fn(model.params, model.pooler, jnp.asarray(x[i:i + batch_size])) for i in range(0, len(x), batch_size)]
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}


def ridge_readout(task: str, f: np.ndarray, y: np.ndarray, fv: np.ndarray, yv: np.ndarray, lam: float) -> float:
    """Held-out score (Pearson r, or accuracy of the sign) of ridge regression fitted on ``f (n, d)``,
    ``y (n,)`` (module docstring), applied to ``fv (m, d)`` against ``yv (m,)``."""
    f, fv = np.asarray(f, np.float64), np.asarray(fv, np.float64)
    target = np.where(y > 0, 1.0, -1.0) if task == "sentiment" else np.asarray(y, np.float64)
    mu, ym = f.mean(0), target.mean()
    a = f - mu
    w = a.T @ np.linalg.solve(a @ a.T + lam * np.eye(len(a)), target - ym)
    pred = (fv - mu) @ w + ym
    if task == "sentiment":
        return float(np.mean((pred > 0) == (yv > 0)))
    return float(fs.pearson(jnp.asarray(pred, jnp.float32), jnp.asarray(yv, jnp.float32)))
