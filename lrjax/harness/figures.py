"""Figures of a run: ``workdir/figures/<name>.png`` written with matplotlib's non-interactive backend."""
from __future__ import annotations

import os
from pathlib import Path


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
    """Tight layout, write ``path``, close the figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    import matplotlib.pyplot as plt
    plt.close(fig)
