"""Intrinsic dimension of a pretrained language model's fine-tuning (Aghajanyan et al., arXiv 2012.13255): the
``model=minilm`` path of ``experiments/intrinsic_dimension.py``.

Classifier: all-MiniLM-L6-v2 (``lrjax.models.bert``, the pretrained encoder), mean pooling over the
non-padding tokens (as sentence-transformers pools it; no L2 normalisation, no dropout) and a fresh linear
head ``Dense(2)`` (``head``), on Rotten Tomatoes sentiment (``lrjax.data.text``). Its parameter tree is
``{"bert": <the encoder>, "head": {"kernel", "bias"}}``: ``D = 22,566,146`` floats in 103 tensors (the
encoder's 22,565,376 in 101, embeddings included, and the head's 770 in 2).

``train(weights, data, ...)`` trains ``seeds`` copies (vmapped; seed ``s`` draws its head, its projection and its
data order from ``fold_in(key(seed), s)``) bound by ``weights``: ``".*=dense()"`` (every tensor trained
directly: full fine-tuning, the baseline) or a whole-tree parameterization such as
``intrinsic_dimension.GlobalSubspace`` (``theta = theta_0 + P z`` over all ``D`` parameters, ``theta_0`` the
pretrained encoder and the seed's random head). Minibatches of ``batch_size`` on the device, cross-entropy,
the held-out accuracy every ``eval_every`` steps (the test subset in chunks of ``EVAL_CHUNK``).

``load(train_size, test_size, max_length)``: the training split (or a ``default_rng(0)`` subset of
``train_size`` snippets) and a ``default_rng(1)`` subset of ``test_size`` test snippets (0: all 2,551),
tokenised to at most ``max_length`` tokens and padded to the longest (columns past every input's end are
dropped: masked, so the outputs are unchanged).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from lrjax import dynamics, tasks
from lrjax.data import text
from lrjax.models import bert
from lrjax.studies import classification, recipe

CLASSES = 2
TRAIN_SPLIT = 10201       # snippets in the sentiment training split
TEST_SPLIT = 2551         # and in its test split
EVAL_CHUNK = 100          # held-out inputs per forward pass in evaluation (bounds its memory)


def installed() -> bool:
    """True, or the ``FileNotFoundError`` naming the install command of the model or the data."""
    bert.minilm_dir()
    text.locate_sentiment()
    return True


def classifier(config: bert.BertConfig) -> bert.SentenceClassifier:
    return bert.SentenceClassifier(config, CLASSES, "mean", 0.0)


def head_params(key) -> dict:
    """A fresh ``Dense(2)`` head on the 384-wide pooled state (Flax's default init: LeCun normal, zero bias)."""
    return nn.Dense(CLASSES).init(key, jnp.zeros((1, bert.BertConfig().hidden_size)))["params"]


def initial_params(model: bert.Pretrained, key) -> dict:
    """``{"bert": the pretrained encoder, "head": a fresh head drawn from key}``."""
    return {"bert": model.params, "head": head_params(key)}


def abstract_params(config: bert.BertConfig | None = None) -> dict:
    """The classifier's parameter tree as shapes (nothing allocated; ``config``: all-MiniLM-L6-v2's by default)."""
    config = config or bert.BertConfig()
    x = jnp.zeros((1, 2, 4), jnp.int32)
    return jax.eval_shape(lambda: classifier(config).init(jax.random.key(0), x)["params"])


def _subset(n: int, size: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).permutation(n)[: size or n])


def load(model: bert.Pretrained, train_size: int, test_size: int, max_length: int) -> dict:
    """``{"train": {"x": (n, 2, T) int32, "y": (n,)}, "test": {...}}`` (module docstring)."""
    texts, labels = text.load_sentiment("train")
    ttexts, tlabels = text.load_sentiment("test")
    tr, te = _subset(len(texts), train_size, 0), _subset(len(ttexts), test_size, 1)
    x = model.packed([texts[i] for i in tr], max_length)
    xt = model.packed([ttexts[i] for i in te], max_length)
    length = int(max(x[:, 1].sum(-1).max(), xt[:, 1].sum(-1).max()))
    return {"train": {"x": x[..., :length], "y": labels[tr]}, "test": {"x": xt[..., :length], "y": tlabels[te]}}


def train(weights, data: dict, model: bert.Pretrained, *, optimizer_name: str = "adam", lr: float = 5e-5,
          batch_size: int = 16, steps: int = 100, seeds: int = 1, eval_every: int = 50, seed: int = 0,
          checkpoint: dynamics.Checkpointing | None = None, desc: str = "train") -> recipe.Training:
    """Train the classifier bound by ``weights`` (module docstring); ``evaluation``: the held-out accuracy
    (``records["test/loss"]`` the loss), recorded at step 0, every ``eval_every`` steps and at the end."""
    weights = classification.parameterization(weights)
    net = classifier(model.config)
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(seed), s))(jnp.arange(seeds))
    bounds = jax.vmap(lambda k: weights.init(initial_params(model, jax.random.fold_in(k, 0)),
                                             jax.random.fold_in(k, 1)))(keys)
    one = jax.tree.map(lambda a: a[0], bounds)

    def apply(b, x):
        return net.apply({"params": weights.materialize(b)}, x)

    def objective(b, batch, key):
        return tasks.cross_entropy(apply(b, batch["x"]), batch["y"])

    def test(b, d):
        return tasks.evaluate(apply, b, d["test"]["x"], d["test"]["y"], chunk=EVAL_CHUNK)

    if checkpoint is not None:
        checkpoint = dataclasses.replace(checkpoint, identity={"parameterization": repr(weights), **checkpoint.identity})
    return recipe.train(objective, bounds, classification.make_optimizer(optimizer_name, lr), steps, data=data,
                        roles=weights.roles(one), evaluation=("test", test), evaluation_key="test/accuracy",
                        batches=dynamics.Minibatches(batch_size), batched=True,
                        key=jax.vmap(lambda k: jax.random.fold_in(k, 2))(keys), record_every=eval_every,
                        chunk_size=eval_every, checkpoint=checkpoint, label=desc, parameterization=weights)
