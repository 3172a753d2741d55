"""Readers for the file formats the offline datasets ship in: IDX (the MNIST family) and pixel CSV.

- IDX (LeCun et al.): 2 zero bytes, a type byte (0x08 ``uint8``, 0x09 ``int8``, 0x0B ``int16``,
  0x0C ``int32``, 0x0D ``float32``, 0x0E ``float64``), the number of dimensions ``k``, then ``k``
  big-endian ``uint32`` sizes and the values, big-endian, row-major. Gzipped files (``.gz``) are read
  through ``gzip``.
- Pixel CSV: one example per row, ``pixels..., label`` (the label last), no header.

A truncated or corrupt gzip stream is a ``ValueError`` naming the file, like every other malformed file.
"""
from __future__ import annotations

import contextlib
import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_BLOCK = 1 << 24  # bytes read at a time, so a header's claimed size is never allocated up front


@contextlib.contextmanager
def _reading(path: str | os.PathLike):
    """``path`` opened for reading (through ``gzip`` for ``.gz``); gzip errors become one ``ValueError`` naming it."""
    path = Path(path)
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
        try:
            yield f
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise ValueError(f"{path}: truncated or corrupt gzip data ({e})") from None


def _read_at_most(f, n: int) -> bytes:
    """Up to ``n`` bytes of ``f`` (fewer at the end of the file), read in blocks."""
    parts = []
    while n > 0 and (block := f.read(min(n, _BLOCK))):
        parts.append(block)
        n -= len(block)
    return b"".join(parts)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file (gzipped or not), in native byte order. The header is checked from
    the first bytes, and no more data than its shape calls for is read (or decompressed)."""
    with _reading(path) as f:
        magic = f.read(4)
        if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_TYPES:
            raise ValueError(f"{path}: not an IDX file (header {magic!r})")
        dims = f.read(4 * magic[3])
        if len(dims) != 4 * magic[3]:
            raise ValueError(f"{path}: IDX header truncated ({magic[3]} dimensions, {len(dims) // 4} sizes)")
        shape = tuple(int(s) for s in np.frombuffer(dims, ">u4"))
        dtype = np.dtype(IDX_TYPES[magic[2]])
        expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
        raw = _read_at_most(f, expected)
        if len(raw) != expected or f.read(1):
            raise ValueError(f"{path}: IDX header says shape {shape} ({expected} bytes of data), file has "
                             f"{len(raw) if len(raw) < expected else 'more'}")
    return np.frombuffer(raw, dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` (a dtype of ``IDX_TYPES``) as an IDX file, gzipped when ``path`` ends in ``.gz``
    (tests use it to make small files in the real format)."""
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_TYPES.items()}
    code = codes[np.dtype(array.dtype).newbyteorder("=")]
    body = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes() + \
        np.ascontiguousarray(array).astype(IDX_TYPES[code]).tobytes()
    path = Path(path)
    with (gzip.open(path, "wb") if path.suffix == ".gz" else open(path, "wb")) as f:
        f.write(body)


def read_pixel_csv(path: str | os.PathLike, pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """``(pixels (n, pixels) float64, labels (n,) int32)`` from a CSV of ``pixels`` values then a label."""
    with _reading(path) as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    if table.shape[1] != pixels + 1:
        raise ValueError(f"{path}: expected {pixels} pixel columns and a label, got {table.shape[1]} columns")
    labels = table[:, -1]
    ok = (labels == np.round(labels)) & (np.abs(labels) < 2 ** 31)
    if not ok.all():
        raise ValueError(f"{path}: the last column holds non-integer (or not int32) labels, e.g. "
                         f"{labels[np.argmin(ok)]:g}")
    return table[:, :-1], labels.astype(np.int32)
