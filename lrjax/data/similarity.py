"""Offline document-similarity data: the Lee corpus (Lee, Pincombe & Welsh 2005), 50 short Australian news
documents and the mean human similarity rating of every pair, read from the test files the PyPI package
``gensim`` ships (``gensim/test/test_data/lee.cor``: one document per line, 50 lines;
``similarities0-1.txt``: a 50 x 50 upper-triangular matrix of mean ratings in [0.2, 1], 1 on the diagonal;
gensim is LGPL-2.1; the package is never imported).

``load_similarity(split) -> (first: list[str], second: list[str], scores (n,) float32)``: the document pairs
``i < j`` and their rating. ``split``: the documents are split by a ``default_rng(0)`` permutation into 25
``train`` and 25 ``test`` documents, and a split holds the 300 pairs of two of its documents (so no test
document is seen in training); ``all``: the 1,225 pairs. ``with_replacement(n, samples, seed)``: ``samples``
indices drawn uniformly with replacement (the Deep LoRA authors' few-shot draw, ``dlt/data.py``).
"""
from __future__ import annotations

import functools

import numpy as np

from lrjax.data.datasets import DatasetNotFoundError, _csv_candidates, _first_existing, data_dirs

PACKAGE_PATH = "gensim/test/test_data"
DOCUMENTS_FILE = "lee.cor"
RATINGS_FILE = "similarities0-1.txt"
INSTALL = "pip install --no-deps gensim==4.4.0   (or `make test`)"
DOCUMENTS = 50


def locate_similarity() -> tuple:
    """``(documents file, ratings file)``, or ``DatasetNotFoundError`` naming the install command."""
    found = [_first_existing(_csv_candidates(data_dirs(), name, PACKAGE_PATH)) for name in (DOCUMENTS_FILE,
                                                                                             RATINGS_FILE)]
    if None in found:
        raise DatasetNotFoundError(f"dataset 'lee_similarity' is not installed (looked in $LRJAX_DATA and "
                                   f"<sys.path>/{PACKAGE_PATH}/{{{DOCUMENTS_FILE},{RATINGS_FILE}}}); install it "
                                   f"with: {INSTALL}")
    return tuple(found)


@functools.lru_cache(maxsize=1)
def _read() -> tuple[tuple[str, ...], np.ndarray]:
    docs_path, ratings_path = locate_similarity()
    docs = tuple(" ".join(line.split()) for line in docs_path.read_text(encoding="latin-1").splitlines()
                 if line.strip())
    ratings = np.loadtxt(ratings_path, dtype=np.float64)
    if len(docs) != DOCUMENTS or ratings.shape != (DOCUMENTS, DOCUMENTS):
        raise ValueError(f"{docs_path} / {ratings_path}: expected {DOCUMENTS} documents and a {DOCUMENTS} x "
                         f"{DOCUMENTS} rating matrix, found {len(docs)} and {ratings.shape}")
    upper = ratings[np.triu_indices(DOCUMENTS, 1)]
    if not np.all((upper > 0) & (upper <= 1)):
        raise ValueError(f"{ratings_path}: ratings must lie in (0, 1]")
    return docs, ratings


def load_similarity(split: str = "train") -> tuple[list[str], list[str], np.ndarray]:
    """``(first, second, scores (n,) float32)`` of ``split`` (module docstring)."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be train, test or all, got {split!r}")
    docs, ratings = _read()
    order = np.random.default_rng(0).permutation(DOCUMENTS)
    keep = {"train": order[:DOCUMENTS // 2], "test": order[DOCUMENTS // 2:], "all": order}[split]
    keep = np.sort(keep)
    i, j = np.triu_indices(len(keep), 1)
    a, b = keep[i], keep[j]
    return [docs[k] for k in a], [docs[k] for k in b], ratings[a, b].astype(np.float32)


def with_replacement(n: int, samples: int, seed: int) -> np.ndarray:
    """``samples`` indices into ``range(n)`` drawn uniformly with replacement by ``default_rng(seed)``."""
    if n < 1 or samples < 1:
        raise ValueError(f"with_replacement: need n >= 1 and samples >= 1, got {n}, {samples}")
    return np.random.default_rng(seed).integers(0, n, samples)
