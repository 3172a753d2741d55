"""``lrjax compare RUN...``: runs side by side, one row per run.

A run is a work directory holding ``config.json`` and ``metrics.json``. The table's columns are the config
keys whose values differ between the runs (nested keys dotted), then the headline metrics: every metric that
is a number, or a list of numbers (one per seed), in every run (``provenance`` and the timing keys
``runtime_s``, ``setup_s`` left out; ``--metrics`` picks others). A per-seed list shows as
``median [min, max]`` (its median and spread over seeds); the CSV writes ``<key>`` (the median),
``<key>_min`` and ``<key>_max``. A metric named as a differing config key shows as ``metrics.<key>``.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from lrjax.harness.schema import ConfigError

SKIPPED = ("provenance", "runtime_s", "setup_s")
FORMATS = ("table", "markdown", "csv")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_numbers(v) -> bool:
    """A per-seed list: numbers, and ``null`` where a seed's value was not finite (``metrics.json`` writes
    NaN and +-inf as ``null``)."""
    return (isinstance(v, list) and any(is_number(x) for x in v)
            and all(is_number(x) or x is None for x in v))


def seed_summary(values) -> tuple[float, float, float]:
    """``(median, min, max)`` of a per-seed list; the median is ``nan`` when a seed's value is ``null``, the
    min and max are over the seeds with a value."""
    known = [x for x in values if x is not None]
    median = float(np.median(known)) if len(known) == len(values) else float("nan")
    return median, float(min(known)), float(max(known))


def load_run(folder: str | Path) -> tuple[dict, dict]:
    """``(config, metrics)`` of a run directory; ``ConfigError`` naming what is missing."""
    folder = Path(folder)
    out = []
    for name in ("config.json", "metrics.json"):
        path = folder / name
        if not path.is_file():
            raise ConfigError(f"{folder} is not a finished run: it has no {name}")
        try:
            out.append(json.loads(path.read_text()))
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path} is not valid JSON: {e}") from None
    return out[0], out[1]


def table(folders: list, metrics: list[str] | None = None) -> tuple[list[str], list[dict]]:
    """``(columns, rows)``: ``run``, the differing config keys, then the headline metrics (module docstring);
    each row maps a column to its value (a per-seed metric to ``(median, min, max)``)."""
    if not folders:
        raise ConfigError("compare needs at least one run directory")
    runs = [(str(f), *load_run(f)) for f in folders]
    configs = [_flat(c) for _, c, _ in runs]
    keys = sorted(set().union(*configs))
    differing = [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1]
    if metrics is None:
        common = set.intersection(*(set(m) for _, _, m in runs))
        metrics = sorted(k for k in common if k not in SKIPPED
                         and all(is_number(m[k]) or is_numbers(m[k]) for _, _, m in runs))
    else:
        missing = [(k, f) for k in metrics for f, _, m in runs if k not in m]
        if missing:
            raise ConfigError(f"run {missing[0][1]} has no metric {missing[0][0]!r}")
    named = {k: f"metrics.{k}" if k in differing or k == "run" else k for k in metrics}   # no clash with a key
    rows = []
    for (folder, _, m), c in zip(runs, configs):
        row = {"run": folder, **{k: c.get(k) for k in differing}}
        for k in metrics:
            v = m[k]
            row[named[k]] = seed_summary(v) if is_numbers(v) else v
        rows.append(row)
    return ["run", *differing, *named.values()], rows


def cell(v) -> str:
    if isinstance(v, tuple):
        return f"{cell(v[0])} [{cell(v[1])}, {cell(v[2])}]"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def render(columns: list[str], rows: list[dict], fmt: str = "table") -> str:
    """The table as aligned text (``table``), a Markdown table or CSV."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "csv":
        seeded = {c for c in columns if any(isinstance(r[c], tuple) for r in rows)}
        spread = lambda v: list(v) if isinstance(v, tuple) else [v, "", ""]  # noqa: E731
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([h for c in columns for h in ((c, f"{c}_min", f"{c}_max") if c in seeded else (c,))])
        for r in rows:
            w.writerow([x for c in columns for x in (spread(r[c]) if c in seeded else [r[c]])])
        return buf.getvalue()
    cells = [[cell(r[c]) for c in columns] for r in rows]
    if fmt == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells]) + "\n"
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    fmt_row = lambda row: "  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt_row(columns)] + [fmt_row(row) for row in cells]) + "\n"
