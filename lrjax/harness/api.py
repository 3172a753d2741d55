"""``lrjax.run``: run an experiment config from Python, as ``lrjax run`` does.

``run(config, workdir=None, **overrides) -> RunResult(metrics, workdir)``: ``config`` is a config file with an
optional variant (``"configs/deep_mf.py:quick"``), a short name (``"deep_mf:quick"``: ``configs/deep_mf.py``) or
an ``ml_collections.ConfigDict`` (copied, not changed); ``overrides`` are config keys (``steps=200``; a dotted
key as ``**{"a.b": 1}``). The same validation as the CLI: a bad config, key or value raises ``ValueError``
(``lrjax.harness.schema.ConfigError``) with the one-line message the CLI prints after ``lrjax: error:``.
``workdir`` None: ``runs/<experiment>/<timestamp>``; an existing run there resumes as with ``--workdir``.
"""
from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import ml_collections

from lrjax.harness import cli
from lrjax.harness.process import setup_process
from lrjax.harness.schema import ConfigError
from lrjax.harness.workdir import default_workdir
from lrjax.io.files import to_jsonable


@dataclasses.dataclass(frozen=True)
class RunResult:
    """``metrics``: the dict written to ``metrics.json``; ``workdir``: the run's directory."""

    metrics: dict
    workdir: Path


def run(config: str | ml_collections.ConfigDict, workdir: str | Path | None = None, quiet: bool = True,
        **overrides) -> RunResult:
    """Run one experiment (module docstring); ``quiet=False`` prints what ``lrjax run`` prints."""
    setup_process()
    try:
        loaded = config if isinstance(config, ml_collections.ConfigDict) else cli.load_config(config)[0]
        if not isinstance(loaded.get("experiment"), str):
            raise ConfigError("the config has no 'experiment' key naming a module in experiments/")
        loaded = copy.deepcopy(loaded)
        cli.apply_overrides(loaded, [f"{k}={v!r}" if not isinstance(v, str) else f"{k}={v}"
                                     for k, v in overrides.items()])
        cli.experiment_module(loaded.experiment).SCHEMA.validate(loaded)   # before a default workdir is made
        out = Path(workdir) if workdir is not None else default_workdir(loaded.experiment)
        metrics = cli.run_config(loaded, workdir=str(out), quiet=quiet)
    except ConfigError as e:
        raise ConfigError(cli.one_line(str(e))) from None
    written = out / "metrics.json"      # the dict as stored (JSON types), what a later reader of the run sees
    return RunResult(json.loads(written.read_text()) if written.is_file() else to_jsonable(metrics), out)
