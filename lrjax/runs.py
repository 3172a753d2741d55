"""Helpers every experiment uses: work directories, JSON output, figures, precision."""
from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np


def default_workdir(experiment: str) -> Path:
    """``runs/<experiment>/<YYYYmmdd-HHMMSS>`` under the current directory."""
    return Path("runs") / experiment / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


def to_jsonable(x: Any) -> Any:
    """Numpy/JAX scalars and arrays to Python numbers and lists (NaN/inf kept as floats)."""
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, (np.ndarray, jax.Array)):
        return to_jsonable(np.asarray(x).tolist())
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    return x


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON (atomically: temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(obj), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


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


def set_dtype(dtype: str):
    """Enable float64 when asked (theory checks) and return the jnp dtype. Call before creating arrays."""
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    return jax.numpy.dtype(dtype)
