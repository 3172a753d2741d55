"""One training recipe and one result type for every study that trains.

A study supplies its task, its model and its records; ``train`` does the rest: the role-based optimizer
(frozen leaves get no update, outer leaves the discrepant rate ``outer_lr_scale * lr``:
``lrjax.binding.optimizer``), the compiled dynamics (``lrjax.dynamics``: seeds as one batched program,
full-batch or on-device minibatches, checkpoints and resume), and a ``Training``:

    tr = recipe.train(loss, params, optax.sgd(eta), steps, data=data, roles=roles,
                      evaluation=("test_error", test_error), record_every=100, batched=True)
    tr.loss         # (seeds, steps): the training loss before each step
    tr.step         # (T,): the recorded steps (multiples of record_every, then the last)
    tr.evaluation   # (seeds, T): the study's headline curve (a test error, a test accuracy)
    tr.steps_to(1e-6)            # first recorded step whose evaluation is <= 1e-6 (-1: never)

``loss(params, data)`` (``loss(params, batch, key)`` with ``minibatches``); ``evaluation=(name, fn)`` with
``fn(params, data)`` returning a scalar or a dict of scalars (then ``evaluation_key`` picks the headline);
``records``: more recorders (``lrjax.dynamics``). Batched runs put the seed axis first everywhere.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import numpy as np
import optax

from lrjax import dynamics
from lrjax.binding.optim import optimizer


def first_step_below(curve: np.ndarray, level: float) -> np.ndarray | int:
    """Index of the first entry ``<= level`` along the last axis (``-1`` where none)."""
    hit = np.asarray(curve) <= level
    idx = np.where(hit.any(axis=-1), np.argmax(hit, axis=-1), -1)
    return int(idx) if np.ndim(idx) == 0 else idx


@dataclasses.dataclass
class Training:
    """What ``train`` returns (module docstring). ``result``: the runner's ``dynamics.Result`` (params,
    optimizer state, every per-step scalar and record); ``evaluation_key``: which record is the headline
    curve; ``num_params``, ``parameterization`` (what the params are materialized with) and ``initial``
    (one member's initial params) when the study gives them."""

    label: str
    result: dynamics.Result
    evaluation_key: str | None = None
    num_params: int | None = None
    parameterization: Any = None
    initial: Any = None

    @property
    def loss(self) -> np.ndarray:
        return self.result.scalars["loss"]

    @property
    def step(self) -> np.ndarray:
        return self.result.records["step"]

    @property
    def records(self) -> dict:
        return self.result.records

    @property
    def evaluation(self) -> np.ndarray:
        return self.result.records[self.evaluation_key]

    @property
    def params(self):
        return self.result.params

    @property
    def steps(self) -> int:
        return self.result.steps

    @property
    def steps_to_tol(self):
        return self.result.steps_to_tol

    @property
    def ms_per_step(self) -> float:
        """Execution time per step (compilation excluded) over every process that ran this run's steps,
        earlier ones read from its checkpoints (``dynamics.Result.ms_per_step``; ``nan`` when none were
        timed)."""
        return self.result.ms_per_step

    @property
    def seconds(self) -> float:
        """Wall time of this process's run, compilation included."""
        return self.result.wall_time + self.result.compile_time

    def steps_to(self, level: float, curve: str = "evaluation"):
        """First recorded step whose evaluation is ``<= level`` (``curve="loss"``: first step whose training
        loss is); ``-1`` where never; per member when batched."""
        if curve == "loss":
            return first_step_below(self.loss, level)
        i = first_step_below(self.evaluation, level)
        return np.where(np.asarray(i) >= 0, self.step[i], -1) if np.ndim(i) else (int(self.step[i]) if i >= 0 else -1)


def train(loss: Callable, params, tx: optax.GradientTransformation, steps: int, *, data=None, roles=None,
          outer_lr_scale: float = 1.0, evaluation: tuple[str, Callable] | None = None,
          evaluation_key: str | None = None, records: Mapping[str, Any] | None = None, label: str = "train",
          num_params: int | None = None, parameterization=None, initial=None, **options) -> Training:
    """Train ``params`` (module docstring). ``tx`` is applied through ``binding.optimizer(tx, roles,
    outer_lr_scale)`` when ``roles`` is given. ``options``: ``dynamics.run``'s (``batched``, ``record_every``,
    ``chunk_size``, ``batches``, ``key``, ``checkpoint``, ``tol``, ``on_divergence``, ``progress``, ...);
    ``desc`` defaults to ``label``."""
    if roles is not None:
        tx = optimizer(tx, roles, outer_lr_scale=outer_lr_scale)
    recorders = dict(records or {})
    key = None
    if evaluation is not None:
        name, fn = evaluation
        recorders[name] = dynamics.with_data(fn)
        key = evaluation_key or name
    options.setdefault("desc", label)
    result = dynamics.run(loss, params, tx, steps, data=data, recorders=recorders, **options)
    return Training(label, result, key, num_params, parameterization, initial)
