"""Figures of a run: ``workdir/figures/<name>.png`` written with matplotlib's non-interactive backend.

``with also_write(("pdf", "svg")):`` makes every ``save_figure`` inside the block write ``<name>.pdf`` and
``<name>.svg`` beside the PNG (``lrjax run --figure-formats pdf,svg``); a context variable, scoped to the
block, so nothing outside it changes.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from pathlib import Path

FORMATS = ("pdf", "svg", "eps")     # what ``also_write`` accepts besides the PNG
_ALSO = contextvars.ContextVar("lrjax_figure_formats", default=())


def check_formats(formats) -> tuple[str, ...]:
    """``formats`` as a tuple; ``ValueError`` naming any that is not in ``FORMATS``."""
    formats = tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"figure formats must be among {', '.join(FORMATS)} (PNG is always written), got "
                         f"{', '.join(map(repr, unknown))}")
    return formats


@contextlib.contextmanager
def also_write(formats):
    """Within the block, ``save_figure`` also writes each of ``formats`` (a subset of ``FORMATS``)."""
    token = _ALSO.set(check_formats(formats))
    try:
        yield
    finally:
        _ALSO.reset(token)


def figure_path(workdir: str | os.PathLike, name: str) -> Path:
    """``workdir/figures/<name>.png`` (folder created)."""
    d = Path(workdir) / "figures"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{name}.png"


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path, dpi: int = 110) -> None:
    """Tight layout, write ``path`` (and the ``also_write`` formats beside it), close the figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    for fmt in _ALSO.get():
        fig.savefig(Path(path).with_suffix(f".{fmt}"))
    import matplotlib.pyplot as plt
    plt.close(fig)
