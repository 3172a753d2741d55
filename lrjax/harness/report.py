"""``lrjax report RUN... --out FILE.html``: one self-contained HTML page to share runs.

For each run (a work directory with ``config.json`` and ``metrics.json``): its provenance, the headline
metrics (numbers, and per-seed lists with every seed's value and their median), the config, and every
``figures/*.png`` embedded as an ``<img>`` with a ``data:image/png;base64`` URI, so the page opens offline
with nothing beside it. With several runs a comparison table comes first (``lrjax.harness.compare``).
No script, no external resource.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from lrjax.harness import compare
from lrjax.harness.schema import ConfigError
from lrjax.io.files import write_text

STYLE = ("body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}"
         "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}th{background:#f3f3f3}"
         "img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}pre{background:#f6f6f6;padding:1em;overflow:auto}")


def _table(columns: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><tr>{head}</tr>{body}</table>'


def _metric_rows(metrics: dict) -> list[list[str]]:
    rows = []
    for k, v in sorted(metrics.items()):
        if k == "provenance":
            continue
        if compare.is_numbers(v):
            per_seed = ", ".join(compare.cell(None if x is None else float(x)) for x in v)
            rows.append([k, compare.cell(compare.seed_summary(v)[0]), per_seed])
        elif compare.is_number(v) or isinstance(v, (str, bool)) or v is None:
            rows.append([k, compare.cell(v), ""])
    return rows


def run_section(folder: Path) -> str:
    """The HTML of one run: provenance, metrics, figures, config."""
    config, metrics = compare.load_run(folder)
    parts = [f"<h2>{html.escape(str(folder))}</h2>",
             f"<p>experiment <b>{html.escape(str(config.get('experiment')))}</b></p>"]
    prov = metrics.get("provenance") or {}
    if prov:
        parts.append("<h3>Provenance</h3>" + _table(["key", "value"], [[k, str(v)] for k, v in sorted(prov.items())],
                                                    "provenance"))
    parts.append("<h3>Metrics</h3>" + _table(["metric", "value (median over seeds)", "per seed"],
                                             _metric_rows(metrics), "metrics"))
    figures = sorted((folder / "figures").glob("*.png"))
    if figures:
        parts.append("<h3>Figures</h3>")
        for png in figures:
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="{html.escape(png.stem)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(png.name)}</figcaption></figure>")
    parts.append("<h3>Config</h3><pre>" + html.escape(json.dumps(config, indent=2, sort_keys=True)) + "</pre>")
    return "<section>" + "\n".join(parts) + "</section>"


def build(folders: list) -> str:
    """The whole page for ``folders`` (module docstring)."""
    if not folders:
        raise ConfigError("report needs at least one run directory")
    folders = [Path(f) for f in folders]
    parts = []
    if len(folders) > 1:
        columns, rows = compare.table(folders)
        parts.append("<h2>Comparison</h2>" + _table(columns, [[compare.cell(r[c]) for c in columns] for r in rows],
                                                    "comparison"))
    parts += [run_section(f) for f in folders]
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>lrjax report</title>"
            f"<style>{STYLE}</style></head><body><h1>lrjax report</h1>" + "\n".join(parts) + "</body></html>\n")


def write(folders: list, out: str | Path) -> Path:
    """Write ``build(folders)`` to ``out`` (atomically); returns its path."""
    out = Path(out)
    if not out.parent.is_dir():
        raise ConfigError(f"--out {str(out)!r}: the folder {str(out.parent)!r} does not exist")
    write_text(out, build(folders))
    return out
