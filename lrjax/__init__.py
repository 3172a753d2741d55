"""lrjax: a JAX research framework for the low-rank structure of neural networks.

Importing lrjax (or any of its modules) changes no environment variable and no jax setting. Entry points
call ``lrjax.setup_process()`` once, before their first computation (``lrjax.harness.process``).

Layout: the library (``param``, ``binding``, ``dynamics``, ``analysis``, ``tasks``, ``data``, ``models``,
``polytope``) at the bottom; ``studies`` built on it; ``io`` (file formats); ``harness`` (CLI, schemas,
work directories) on top.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lrjax")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"


def setup_process() -> None:
    """The one call that sets process-wide switches (thread counts, XLA CPU flags): ``lrjax.harness.process``."""
    from lrjax.harness.process import setup_process as setup
    setup()


def run(config, workdir=None, **overrides):
    """Run an experiment config from Python: ``lrjax.harness.api.run`` (returns ``.metrics`` and ``.workdir``)."""
    from lrjax.harness.api import run as run_experiment
    return run_experiment(config, workdir, **overrides)


__all__ = ["__version__", "run", "setup_process"]
