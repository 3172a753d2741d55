"""Experiment: a grid of ``few_shot`` runs, every method x rank x training-set size (``methods``, ``ranks``,
``sample_sizes``), each in ``<workdir>/<method>_r<rank>_n<samples>/`` with its own metrics, figure and PEFT
adapters. A cell whose stored ``config.json`` equals its config is read back, not re-run, so an interrupted
sweep continues where it stopped; a cell with another config is run again (``dynamics.run`` continues its
checkpoints only when they are of the same run, e.g. fewer ``steps``, and refuses those of another).

Metrics: ``cells`` (one row per cell: method, rank, samples, ``val_<metric>_mean``/``_std`` and per seed
``val_<metric>`` (``accuracy`` for sentiment, ``pearson`` for similarity), ``ms_per_step``,
``train_loss_final_mean``: the training loss at the end, over seeds; ``update_rank_median``: median over the
kernels that learned and the seeds of the final update's numerical rank, singular values above ``1e-3`` of the
largest; ``few_shot.final_update_ranks`` says which learned). Figure ``few_shot_sweep.png``: the held-out score
against the rank (at the smallest training set) and against the training-set size (at the smallest rank), in the
paper's form (mean over seeds, a band of +- std / 2, as the authors' ``scripts/stsb_varying_rank.py`` plots), and
histograms of the numerical ranks of the final updates that learned (every such kernel and seed) at the smallest
rank and largest training set.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import jax
import numpy as np

from lrjax.harness.cli import experiment_module, run_experiment
from lrjax.harness.figures import pyplot, save_figure
from lrjax.harness.schema import ConfigError, Int, Names, Schema, Seq
from lrjax.io.files import to_jsonable, write_json

few_shot = experiment_module("few_shot")   # each cell is a few_shot run, loaded through the harness
SWEPT = ("method", "rank", "samples")
CHANCE = {"accuracy": 0.5, "pearson": 0.0}   # two balanced classes; no correlation


class SweepSchema(Schema):
    """few_shot's fields less the swept ones, plus the grid; every cell is validated as a few_shot config."""

    def validate(self, config) -> None:
        super().validate(config)
        for cell in cells(config):
            try:
                few_shot.SCHEMA.validate(cell)
            except ConfigError as e:
                raise ConfigError(f"cell {name(cell)}: {e}") from None


SCHEMA = SweepSchema(
    checks=[r for r in few_shot.SCHEMA.checks if not set(r.keys) & set(SWEPT)],
    methods=Names("lora", "deep_lora"), ranks=Seq(Int(min=1), distinct=True), sample_sizes=Seq(Int(min=2), distinct=True),
    **{k: f for k, f in few_shot.SCHEMA.fields.items() if k not in SWEPT})


def cells(config) -> list:
    """One few_shot config (a ConfigDict) per method x rank x samples, in that order."""
    shared = {k: v for k, v in config.items() if k not in ("experiment", "methods", "ranks", "sample_sizes")}
    out = []
    for method, rank, samples in itertools.product(
            Names.split(config.methods), config.ranks, config.sample_sizes):
        cell = type(config)(dict(shared, experiment="few_shot", method=method, rank=rank, samples=samples))
        out.append(cell)
    return out


def name(cell) -> str:
    return f"{cell.method}_r{cell.rank}_n{cell.samples}"


def run_cell(cell, folder: Path) -> dict:
    """The cell's metrics: read back when ``folder`` holds a finished run of exactly this config."""
    record, done = folder / "config.json", folder / "metrics.json"
    want = to_jsonable(cell.to_dict())
    if record.is_file() and done.is_file() and json.loads(record.read_text()) == want:
        return json.loads(done.read_text())
    done.unlink(missing_ok=True)
    write_json(record, want)
    metrics = run_experiment(few_shot, cell, folder)   # the cell's own context: its identity, its precision
    write_json(done, metrics)
    return metrics


def final_ranks(folder: Path) -> np.ndarray:
    """Numerical ranks of the final updates that learned (``few_shot.final_update_ranks``), every matrix and
    seed, from the cell's ``trajectory.npz``."""
    data = np.load(folder / "trajectory.npz")
    _, ranks, learned = few_shot.final_update_ranks(
        {k: data[k] for k in data.files if k.startswith("update_sv/")})
    return ranks[learned]


def run(config, ctx) -> dict:
    workdir = ctx.workdir
    rows, ranks = [], {}
    metric = few_shot.METRIC[config.task]
    grid = cells(config)
    for i, cell in enumerate(grid):
        print(f"few_shot_sweep: cell {i + 1}/{len(grid)}: {name(cell)}", flush=True)
        m = run_cell(cell, workdir / name(cell))
        ranks[name(cell)] = final_ranks(workdir / name(cell))
        rows.append({"method": cell.method, "rank": cell.rank, "samples": cell.samples,
                     f"val_{metric}_mean": m[f"val_{metric}_mean"], f"val_{metric}_std": m[f"val_{metric}_std"],
                     f"val_{metric}": m[f"val_{metric}"], "ms_per_step": m["ms_per_step"],
                     "trainable_params": m["trainable_params"],
                     "train_loss_final_mean": float(np.mean(m["train_loss_final"])),
                     "update_rank_median": float(np.median(ranks[name(cell)]))})
    plot(rows, ranks, config, ctx.figure("few_shot_sweep"))
    return {"cells": rows, "device": jax.devices()[0].device_kind}


def plot(rows, ranks, config, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    methods = Names.split(config.methods)
    n0, r0 = min(config.sample_sizes), min(config.ranks)
    metric = few_shot.METRIC[config.task]
    for method in methods:
        for ax, key, fixed, other in ((axes[0], "rank", "samples", n0), (axes[1], "samples", "rank", r0)):
            pts = sorted((r[key], r[f"val_{metric}_mean"], r[f"val_{metric}_std"]) for r in rows
                         if r["method"] == method and r[fixed] == other)
            x, y, e = map(np.array, zip(*pts))
            line = ax.plot(x, y, marker="o", label=method)[0]
            ax.fill_between(x, y - e / 2, y + e / 2, alpha=0.15, color=line.get_color())
            if len(x) == 1:                  # a band over one point is invisible: its bar instead
                ax.errorbar(x, y, yerr=e / 2, capsize=4, color=line.get_color())
    for ax, values in ((axes[0], config.ranks), (axes[1], config.sample_sizes)):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(values), labels=[str(v) for v in sorted(values)])   # as the paper's axes
        ax.minorticks_off()
    width = {"full": f"full width {few_shot.HIDDEN}", "rank": "width r"}[config.deep_width]
    deep = f"compressed from {width}" if config.compress else f"{width}, uncompressed"
    axes[0].set_xlabel(f"adapter rank r (Deep LoRA: {deep})")
    axes[0].set_title(f"{n0} training examples ({config.task})", fontsize=9)
    axes[1].set_xlabel("training examples")
    axes[1].set_title(f"rank r = {r0}", fontsize=9)
    for ax in axes[:2]:
        ax.set_ylabel(f"held-out {metric} (mean, band +- std/2, {config.seeds} seeds)")
        ax.axhline(CHANCE[metric], color="gray", ls=":", lw=1, label=f"chance ({CHANCE[metric]:g})")
        ax.legend(fontsize=8)
    n1 = max(config.sample_sizes)
    hist = {m: ranks[f"{m}_r{r0}_n{n1}"] for m in methods}
    top = max(int(v.max()) for v in hist.values())
    bins = np.arange(0.5, top + 1.5)
    for m, v in hist.items():
        axes[2].hist(v, bins=bins, alpha=0.6, label=f"{m} (median {np.median(v):g})")
    axes[2].set_xlabel(f"numerical rank of the final update (s > {few_shot.RANK_RTOL:g} s_1)")
    axes[2].set_ylabel("kernels that learned x seeds")
    axes[2].set_title(f"r = {r0}, {n1} training examples", fontsize=9)
    axes[2].legend(fontsize=8)
    save_figure(fig, path)
