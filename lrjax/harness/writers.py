"""Metric writers: where a run's curves, figures and config go while it runs (TensorBoard by default).

``MetricWriter`` is the interface (``scalars``, ``image``, ``hparams``, ``close``); ``TensorBoardWriter(logdir)``
writes TensorBoard event files with tensorboardX (no TensorFlow, no PyTorch). Another backend is a class
with the same four methods. ``stream(writer_for)`` is the ``lrjax.dynamics.live`` sink that ``lrjax run``
installs: each runner's per-step scalars go to ``writer_for(label)``, as ``<name>`` (the mean over seeds of a
batched run) and ``<name>/seed_<s>`` (each of the first ``SEEDS_SHOWN`` seeds), and scalar-per-seed records
the same way at their steps (the training loss is the tag ``loss``). A chunk of at most ``POINTS_PER_CHUNK``
steps is written step by step; a longer one at ``POINTS_PER_CHUNK`` evenly spaced steps, its last included
(an event costs ~0.4 ms of Python: every step of a 20,000-step toy run would cost 100x its training;
TensorBoard itself shows about 1,000 points per curve).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

SEEDS_SHOWN = 16
POINTS_PER_CHUNK = 100


class MetricWriter(Protocol):
    def scalars(self, values: dict[str, float], step: int) -> None: ...
    def image(self, tag: str, png: Path, step: int) -> None: ...
    def hparams(self, config: dict, metrics: dict) -> None: ...
    def close(self) -> None: ...


class TensorBoardWriter:
    """TensorBoard event files in ``logdir`` (``tensorboard --logdir`` a parent folder shows them)."""

    def __init__(self, logdir: str | Path):
        from tensorboardX import SummaryWriter
        self.logdir = Path(logdir)
        self._w = SummaryWriter(logdir=str(self.logdir), flush_secs=10)

    def scalars(self, values, step):
        """One event holding every ``tag: value`` at ``step`` (one ``add_scalar`` per value costs ~10x more)."""
        from tensorboardX.proto.summary_pb2 import Summary
        self._w._get_file_writer().add_summary(
            Summary(value=[Summary.Value(tag=t, simple_value=float(v)) for t, v in values.items()]), int(step))

    def image(self, tag, png, step=0):
        from matplotlib.image import imread
        pixels = imread(str(png))                      # (H, W, 3 | 4) floats in [0, 1]
        self._w.add_image(tag, pixels[..., :3], int(step), dataformats="HWC")

    def hparams(self, config, metrics):
        flat = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in config.items()}
        numbers = {f"hparam/{k}": float(v) for k, v in metrics.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)}
        self._w.add_hparams(flat, numbers, name="hparams")

    def close(self):
        self._w.close()


def _series(tag_values: dict, steps: np.ndarray, write: Callable, batched: bool) -> None:
    """Write ``{name: (steps,) | (seeds, steps)}`` at ``steps`` (at most ``POINTS_PER_CHUNK`` of them, the last
    included): per step one ``write({tag: value}, step)`` with the values, or their mean and each seed's."""
    n = len(steps)
    keep = np.arange(n) if n <= POINTS_PER_CHUNK else np.unique(
        np.linspace(n - 1, 0, POINTS_PER_CHUNK).round().astype(int))
    columns = {}
    for name, values in tag_values.items():
        v = np.asarray(values, np.float64)[..., keep]
        if batched:                                      # (seeds, steps)
            columns[name] = v.mean(axis=0)
            columns.update({f"{name}/seed_{s}": v[s] for s in range(min(v.shape[0], SEEDS_SHOWN))})
        else:
            columns[name] = v
    for j, i in enumerate(keep):
        write({tag: col[j] for tag, col in columns.items()}, int(steps[i]))


def stream(writer_for: Callable[[str], MetricWriter]) -> Callable:
    """The ``lrjax.dynamics.live`` sink writing every runner's scalars (module docstring)."""
    def sink(label, first_step, scalars, records, record_steps):
        w = writer_for(label)
        batched = np.ndim(scalars["loss"]) == 2
        n = np.shape(scalars["loss"])[-1]
        _series(scalars, np.arange(first_step + 1, first_step + n + 1), w.scalars, batched)
        if records:
            keep = {name: r for name, r in records.items() if np.ndim(r) == (2 if batched else 1)
                    and np.issubdtype(np.asarray(r).dtype, np.number)}
            if keep:
                _series(keep, record_steps, w.scalars, batched)
    return sink


def slug(label: str) -> str:
    """A folder name for a runner's label."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", label).strip("_") or "run"


class Board:
    """The writers of one run under ``logdir``: one per runner label (``logdir/<slug(label)>/``, a TensorBoard
    "run" each) and ``summary`` for the figures (as images) and the config (as hyper-parameters, with the
    run's numeric metrics). ``backend(logdir)`` makes a ``MetricWriter``."""

    def __init__(self, logdir: str | Path, backend: Callable[[Path], MetricWriter] = TensorBoardWriter):
        self.logdir, self._backend, self._writers = Path(logdir), backend, {}

    def writer(self, label: str) -> MetricWriter:
        name = slug(label)
        if name not in self._writers:
            self._writers[name] = self._backend(self.logdir / name)
        return self._writers[name]

    def finish(self, figures: Path, config: dict, metrics: dict) -> None:
        """Write the figures and the hyper-parameters, then close every writer."""
        summary = self.writer("summary")
        for png in sorted(Path(figures).glob("*.png")):
            summary.image(png.stem, png, 0)
        summary.hparams(config, metrics)
        self.close()

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()
