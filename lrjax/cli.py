"""Command line: ``lrjax run CONFIG.py[:arg] [--set key=value]... [--workdir DIR]``, ``lrjax list``,
``lrjax bench dynamics``, ``lrjax bench recovery``.

A config is a python file with ``get_config(arg) -> ml_collections.ConfigDict`` whose ``experiment`` key
names a module ``experiments/<experiment>.py`` (beside the ``configs/`` folder) with
``run(config, workdir) -> metrics``. Every run writes ``config.json`` and ``metrics.json`` to its work
directory (default ``runs/<experiment>/<timestamp>``); the experiment adds figures and trajectories.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys
import time
from pathlib import Path

import ml_collections

from lrjax.runs import default_workdir, to_jsonable, write_json


class ConfigError(ValueError):
    """A bad config path, argument or ``--set`` override."""


def load_config(spec: str) -> tuple[ml_collections.ConfigDict, Path]:
    """``"configs/x.py:quick"`` -> ``(get_config("quick"), path)``."""
    path_str, _, arg = spec.partition(":")
    path = Path(path_str)
    if not path.is_file():
        raise ConfigError(f"config file {path_str!r} does not exist")
    module_spec = importlib.util.spec_from_file_location(f"lrjax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path_str!r} has no get_config(arg) function")
    config = module.get_config(arg or None)
    if "experiment" not in config:
        raise ConfigError(f"config {path_str!r} has no 'experiment' key naming a module in experiments/")
    return config, path.resolve()


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_overrides(config: ml_collections.ConfigDict, overrides: list[str]) -> None:
    """Apply ``key=value`` overrides (dotted keys for nested dicts); unknown keys and bad types raise."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        *parents, leaf = key.split(".")
        node = config
        for p in parents:
            if p not in node or not isinstance(node[p], ml_collections.ConfigDict):
                raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(sorted(config.keys()))}")
            node = node[p]
        if leaf not in node:
            raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(sorted(node.keys()))}")
        value = _parse_value(text)
        old = node[leaf]
        if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if old is not None and isinstance(old, str) and not isinstance(value, str):
            value = text
        try:
            node[leaf] = value
        except (TypeError, ValueError) as e:
            raise ConfigError(f"bad value {text!r} for config key {key!r} (currently {old!r}): {e}") from None


def run_config(spec: str, overrides: list[str] = (), workdir: str | None = None, quiet: bool = False) -> dict:
    """Load, override, run and record one experiment; returns its metrics."""
    config, path = load_config(spec)
    apply_overrides(config, list(overrides))
    root = str(path.parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    name = config.experiment
    try:
        module = importlib.import_module(f"experiments.{name}")
    except ModuleNotFoundError as e:
        raise ConfigError(f"config names experiment {name!r} but experiments/{name}.py cannot be imported: {e}") from None
    out = Path(workdir) if workdir else default_workdir(name)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", config.to_dict())
    t0 = time.perf_counter()
    metrics = dict(module.run(config, out))
    metrics.setdefault("runtime_s", time.perf_counter() - t0)
    write_json(out / "metrics.json", metrics)
    if not quiet:
        print(f"\n{name}: results in {out}")
        for k, v in sorted(to_jsonable(metrics).items()):
            if not isinstance(v, (list, dict)):
                print(f"  {k:<34} {v}")
    return metrics


def list_configs(directory: Path) -> list[tuple[str, str]]:
    """``(path, first docstring line)`` for each config file."""
    out = []
    for p in sorted(directory.glob("*.py")):
        if p.name.startswith("_") or p.name == "common.py":
            continue
        doc = ast.get_docstring(ast.parse(p.read_text())) or ""
        out.append((str(p), doc.strip().splitlines()[0] if doc.strip() else ""))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lrjax", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run an experiment config")
    p_run.add_argument("config", help="CONFIG.py or CONFIG.py:arg (e.g. configs/deep_mf.py:quick)")
    p_run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p_run.add_argument("--workdir", help="output directory (default runs/<experiment>/<timestamp>)")
    p_list = sub.add_parser("list", help="list the experiment configs")
    p_list.add_argument("--configs", default="configs")
    p_bench = sub.add_parser("bench", help="benchmarks")
    p_bench.add_argument("what", choices=["dynamics", "recovery"],
                         help="dynamics: runner vs loop vs matmul floor, seeds, tracking; recovery: runner vs the "
                              "papers' fori_loop pattern on deep matrix completion (float64)")
    p_bench.add_argument("--sizes", default="100,1000", help="comma-separated d values")
    p_bench.add_argument("--steps", type=int, default=500)
    p_bench.add_argument("--seeds", type=int, default=64)
    p_bench.add_argument("--precision", default="highest", choices=["default", "high", "highest"])
    p_bench.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            run_config(args.config, args.set, args.workdir)
        elif args.command == "list":
            rows = list_configs(Path(args.configs))
            if not rows:
                raise ConfigError(f"no configs found in {args.configs!r}")
            for path, doc in rows:
                print(f"{path:<40} {doc}")
        elif args.command == "bench":
            from lrjax.bench import bench_dynamics, bench_recovery
            sizes = [int(s) for s in args.sizes.split(",")]
            if args.what == "dynamics":
                bench_dynamics(sizes, steps=args.steps, seeds=args.seeds, precision=args.precision, out=args.out)
            else:
                bench_recovery(sizes, steps=args.steps, out=args.out)
    except ConfigError as e:
        print(f"lrjax: error: {e}", file=sys.stderr)
        return 2
    except FloatingPointError as e:  # lrjax.dynamics.DivergenceError
        print(f"lrjax: the run diverged: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
