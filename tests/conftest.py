"""Test-wide settings: float64 available (tests choose dtypes explicitly), true float32 matmuls (no TF32 on
GPUs: the float32 tolerances are set for IEEE float32; no effect on CPU), quiet progress bars."""
import os

os.environ.setdefault("LRJAX_QUIET", "1")

import jax  # noqa: E402

from lrjax.runs import avoid_xla_cpu_deadlock  # noqa: E402

avoid_xla_cpu_deadlock()   # XLA:CPU hangs on overlapped large batched LAPACK calls (lrjax.runs)

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_default_matmul_precision", "highest")
