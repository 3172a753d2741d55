"""Test-wide settings: float64 available (tests choose dtypes explicitly), quiet progress bars."""
import os

os.environ.setdefault("LRJAX_QUIET", "1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
