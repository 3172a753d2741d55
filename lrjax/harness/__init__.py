"""The harness that runs experiments: the command line (``cli``), config schemas (``schema``), work
directories (``workdir``), figures (``figures``) and process-wide settings and numerics (``process``).
The library (``param``, ``binding``, ``dynamics``, ``analysis``, ``tasks``, ``data``, ``models``) never imports it."""


def main(argv: list[str] | None = None) -> int:
    """The ``lrjax`` command: ``setup_process()`` before anything loads numpy or jax, then ``cli.main``."""
    from lrjax.harness.process import setup_process
    setup_process()
    from lrjax.harness.cli import main as cli_main
    return cli_main(argv)
