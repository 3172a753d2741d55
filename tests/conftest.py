"""Test settings: the numerics users get, 64-bit types only where a test asks for them, quiet progress bars.

The process runs as ``lrjax run`` does (``lrjax.setup_process()``), with jax's defaults: no process-wide
``jax_enable_x64`` and the default matmul precision. A test that checks float64 numerics says so, and gets
64-bit types for its own duration only (``jax.enable_x64``, undone after it):
- ``@pytest.mark.x64`` on the test (or ``pytestmark`` on a module whose every test checks float64), or
- a ``float64`` dtype among its parameters (``@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])``):
  the float32 cases run without 64-bit types, as users run them.
Module-scoped fixtures that build float64 data enter ``jax.enable_x64(True)`` themselves.
Experiments run through the CLI choose their own precision (``lrjax.harness.process.precision``).
"""
import os

os.environ.setdefault("LRJAX_QUIET", "1")

import lrjax  # noqa: E402

lrjax.setup_process()   # what the `lrjax` command does first (lrjax.harness.process)

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "x64: the test checks float64 numerics; 64-bit types are on for it alone")


def _is_float64(value) -> bool:
    """``jnp.float64``, ``np.float64``, ``np.dtype("float64")`` or ``"float64"``."""
    if isinstance(value, str):
        return value == "float64"
    try:
        return isinstance(value, (type, np.dtype)) and np.dtype(value) == np.float64
    except TypeError:
        return False


def _asks_for_float64(request) -> bool:
    if request.node.get_closest_marker("x64") is not None:
        return True
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    return any(_is_float64(v) for v in params.values())


@pytest.fixture(autouse=True)
def _float64_when_asked(request):
    """64-bit types for this test only, when it asks for them (module docstring). Every test starts and ends
    with jax's default 32-bit types: none may switch x64 on for the tests after it."""
    assert not jax.config.jax_enable_x64, "an earlier test left jax_enable_x64 on for the whole process"
    if _asks_for_float64(request):
        with jax.enable_x64(True):
            yield
    else:
        yield
    assert not jax.config.jax_enable_x64, "this test left jax_enable_x64 on for the whole process"
