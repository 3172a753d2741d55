"""Readers for the file formats the offline datasets ship in: IDX (the MNIST family) and pixel CSV.

- IDX (LeCun et al.): 2 zero bytes, a type byte (0x08 ``uint8``, 0x09 ``int8``, 0x0B ``int16``,
  0x0C ``int32``, 0x0D ``float32``, 0x0E ``float64``), the number of dimensions ``k``, then ``k``
  big-endian ``uint32`` sizes and the values, big-endian, row-major. Gzipped files (``.gz``) are read
  through ``gzip``.
- Pixel CSV: one example per row, ``pixels..., label`` (the label last), no header.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _open(path: str | os.PathLike):
    path = Path(path)
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file (gzipped or not), in native byte order."""
    with _open(path) as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (header {raw[:4]!r})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(raw[4:header], ">u4"))
    dtype = np.dtype(IDX_TYPES[raw[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path}: IDX header says shape {shape} ({expected} bytes of data), file has "
                         f"{len(raw) - header}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


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
    with _open(path) as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    if table.shape[1] != pixels + 1:
        raise ValueError(f"{path}: expected {pixels} pixel columns and a label, got {table.shape[1]} columns")
    labels = table[:, -1]
    if not np.all(labels == np.round(labels)):
        raise ValueError(f"{path}: the last column holds non-integer labels")
    return table[:, :-1], labels.astype(np.int32)
