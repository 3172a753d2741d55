"""Command line: ``lrjax run CONFIG.py[:variant] [--set key=value]... [--workdir DIR] [--import MODULE]...
[--restart] [--coordinator HOST:PORT --num-processes N --process-id I]``, ``lrjax list``,
``lrjax bench dynamics|recovery|completion|train|forward|intrinsic``.

A config is a python file with ``get_config(variant) -> ml_collections.ConfigDict`` whose ``experiment``
key names a module ``experiments/<experiment>.py`` of lrjax's repository, which declares ``SCHEMA``
(``lrjax.harness.schema``) and ``run(config, ctx) -> metrics`` (``ctx``: a ``context.RunContext``). ``lrjax run``:

1. loads the config, imports the ``--import`` modules (which may register parameterization families),
   applies the ``--set`` overrides and validates the result against the experiment's schema; checks that
   the work directory can be used. Any problem: one line on stderr, exit code 2, nothing written;
2. in a work directory that already holds a run, continues it only if its ``config.json`` matches, up to
   keys whose schema allows the change (a longer ``steps``, another ``tol``): otherwise it refuses, naming
   the keys (``--restart`` deletes that run's outputs first); one process at a time per work directory;
3. with ``--coordinator HOST:PORT --num-processes N --process-id I`` (or ``LRJAX_COORDINATOR``, ...; only
   for experiments that set ``SPANS_PROCESSES``, e.g. ``completion_sweep``) joins a multi-process JAX run
   first (process 0 waits for the others to join before it checks its work directory); only process 0
   uses the work directory, and when it refuses it (step 2) it tells the others, which stop with one line
   and exit code 2;
4. runs the experiment and writes ``config.json`` and ``metrics.json`` (default work directory
   ``runs/<experiment>/<timestamp>``). Exit code 1 when the run diverged or the experiment's verdict
   (``metrics["passed"]``) is False, 0 otherwise.
"""
from __future__ import annotations

import argparse
import ast
import copy
import difflib
import errno
import importlib
import importlib.util
import json
import os
import re
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path

import ml_collections

from lrjax.dynamics import CheckpointError, DivergenceError, ResumeError, distributed, live
from lrjax.harness import compare, figures, provenance, report, writers
from lrjax.harness.context import RunContext
from lrjax.harness.process import precision, setup_process
from lrjax.harness.schema import ConfigError
from lrjax.harness.workdir import claim_workdir, default_workdir
from lrjax.io.files import DirectoryBusyError, first_line, to_jsonable, write_json, write_text

ROOT = Path(__file__).resolve().parents[2]  # the repository, for an editable install


def _resolve_config(path_str: str) -> Path:
    """The config file: as given (relative to the current directory), else inside the repository."""
    short = [] if path_str.endswith(".py") else [ROOT / "configs" / f"{path_str}.py"]   # "deep_mf" -> configs/deep_mf.py
    for candidate in (Path(path_str), ROOT / path_str, ROOT / "configs" / path_str, *short):
        if candidate.is_file():
            if candidate.suffix != ".py":
                raise ConfigError(f"{path_str!r} is not a config: a config is a python file, CONFIG.py[:variant]")
            return candidate.resolve()
    raise ConfigError(f"config file {path_str!r} does not exist")


def load_config(spec: str) -> tuple[ml_collections.ConfigDict, Path]:
    """``"configs/x.py:quick"`` -> ``(get_config("quick"), path)``; every failure is a ``ConfigError``."""
    path_str, _, arg = spec.partition(":")
    path = _resolve_config(path_str)
    module_spec = importlib.util.spec_from_file_location(f"lrjax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as e:
        raise ConfigError(f"config file {path_str!r} has a syntax error at line {e.lineno}: {e.msg}") from None
    except Exception as e:  # noqa: BLE001 - a broken config file is a user error, reported in one line
        raise ConfigError(f"config file {path_str!r} failed to import: {first_line(e)}") from None
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path_str!r} has no get_config(variant) function")
    try:
        config = module.get_config(arg or None)
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"config {path_str!r}: get_config({arg or None!r}) failed: {first_line(e)}") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"config {path_str!r}: get_config must return an ml_collections.ConfigDict, got "
                          f"{type(config).__name__}")
    if not isinstance(config.get("experiment"), str):
        raise ConfigError(f"config {path_str!r} has no 'experiment' key naming a module in experiments/")
    return config, path


def _parse_value(text: str):
    """A Python literal, ``true``/``false`` (any case) as a bool, or else the text itself."""
    if text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_overrides(config: ml_collections.ConfigDict, overrides: list[str]) -> None:
    """Apply ``key=value`` overrides (dotted keys for nested dicts; values parsed as Python literals or
    ``true``/``false``, kept as text for string keys); unknown keys raise here, bad values when the schema validates the config."""
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
        if leaf not in node or leaf == "experiment":
            valid = sorted(k for k in node.keys() if k != "experiment")
            close = difflib.get_close_matches(leaf, valid, n=1)
            raise ConfigError(f"unknown config key {key!r}{f' (did you mean {close[0]!r}?)' if close else ''}; valid "
                              f"keys: {', '.join(valid)}")
        value = _parse_value(text)
        old = node[leaf]
        if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(old, str) and not isinstance(value, str):
            value = text  # a string key takes the text as written (e.g. param=lowrank(2))
        del node[leaf]  # the experiment's schema, not ConfigDict's type lock, decides what is valid
        node[leaf] = value


def import_modules(names: list[str]) -> None:
    """``--import``: a module name (importable from the current directory) or a ``.py`` file path; a module
    already imported from the same place is not imported again."""
    for name in names:
        try:
            if name.endswith(".py") or os.sep in name:
                path = Path(name).resolve()
                if not path.is_file():
                    raise ConfigError(f"--import {name!r}: no such file")
                mod_name = f"lrjax_user_{path.stem}"
                loaded = sys.modules.get(mod_name)
                if loaded is not None and Path(getattr(loaded, "__file__", "")).resolve() == path:
                    continue
                spec = importlib.util.spec_from_file_location(mod_name, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[mod_name] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[mod_name]
                    raise
            else:
                if os.getcwd() not in sys.path:
                    sys.path.insert(0, os.getcwd())  # as `python -m` does: the current directory first
                importlib.import_module(name)
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001
            raise ConfigError(f"--import {name!r} failed: {first_line(e)}") from None


def repo_package(name: str):
    """Import the package ``name`` (``experiments`` or ``benchmarks``) from lrjax's repository; ``ConfigError``
    when the repository is missing or another package of that name is already imported."""
    package = ROOT / name
    if not (package / "__init__.py").is_file():
        raise ConfigError(f"lrjax is installed without its repository (no {name}/ package beside {ROOT / 'lrjax'}); "
                          "clone the repository and run `pip install -e .` there to run experiment configs")
    loaded = sys.modules.get(name)
    if loaded is None:
        spec = importlib.util.spec_from_file_location(name, package / "__init__.py",
                                                      submodule_search_locations=[str(package)])
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded
        spec.loader.exec_module(loaded)
    elif Path(getattr(loaded, "__file__", "") or "").resolve().parent != package:
        raise ConfigError(f"another package named {name!r} is already imported ({loaded.__file__}); "
                          f"lrjax's {name} cannot be loaded beside it")
    return loaded


def experiment_module(name: str):
    """``experiments.<name>`` from lrjax's repository (``ConfigError`` when it or the repository is missing)."""
    repo_package("experiments")
    package = ROOT / "experiments"
    if not name.isidentifier() or not (package / f"{name}.py").is_file():
        known = sorted(p.stem for p in package.glob("*.py") if not p.name.startswith("_"))
        raise ConfigError(f"config names experiment {name!r}, which is not in {package}; known: {', '.join(known)}")
    module = importlib.import_module(f"experiments.{name}")
    if not hasattr(module, "SCHEMA") or not hasattr(module, "run"):
        raise ConfigError(f"experiments/{name}.py must define SCHEMA (lrjax.harness.schema.Schema) and run(config, ctx)")
    return module


def spanning_experiments() -> list[str]:
    """The experiments that accept ``--coordinator`` (their module sets ``SPANS_PROCESSES = True``)."""
    return sorted(p.stem for p in (ROOT / "experiments").glob("*.py")
                  if "\nSPANS_PROCESSES = True" in p.read_text())


def resolve_processes(module, name: str, coordinator, num_processes, process_id) -> tuple[str, int, int] | None:
    """``(coordinator, num_processes, process_id)`` (arguments, else ``LRJAX_*``; ``distributed.resolve``) or
    ``None`` for one process; ``ConfigError`` for bad values or an experiment that runs in one process."""
    try:
        joined = distributed.resolve(coordinator, num_processes, process_id)
    except ValueError as e:
        raise ConfigError(str(e).replace("initialize: ", "--coordinator/--num-processes/--process-id: ")) from None
    if joined is not None and not getattr(module, "SPANS_PROCESSES", False):
        raise ConfigError(f"experiment {name!r} runs in one process; --coordinator (or LRJAX_COORDINATOR) applies to "
                          f"{', '.join(spanning_experiments())}")
    return joined


def _read_json(path: Path) -> dict:
    """A JSON object from ``path``, ``{}`` when it is missing or not an object."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def check_same_run(config) -> None:
    """In a multi-process run, before any work: every process must run the same experiment with the same
    resolved config and the same lrjax version, or every process refuses (``ConfigError``) naming the keys."""
    import lrjax
    mine = {"lrjax_version": lrjax.__version__, **to_jsonable(config.to_dict())}
    runs = [json.loads(text) for text in distributed.gather_text(json.dumps(mine, sort_keys=True))]
    differ = []
    for pid, other in enumerate(runs[1:], start=1):
        keys = sorted(k for k in set(runs[0]) | set(other) if runs[0].get(k, "<absent>") != other.get(k, "<absent>"))
        differ += [f"{k}: {runs[0].get(k, '<absent>')!r} in process 0, {other.get(k, '<absent>')!r} in process {pid}"
                   for k in keys]
    if differ:
        raise ConfigError(f"the processes were started with different runs ({'; '.join(differ)}); start every "
                          "process with the same config, --set values and lrjax version")


def run_context(module, config, workdir: Path, writes: bool = True) -> RunContext:
    """The experiment's run context (``context``): its identity from the schema, its dtype from the config's
    ``dtype`` key or the module's ``DTYPE`` (default float32), the config's ``checkpoint_every``."""
    dtype = config.get("dtype", getattr(module, "DTYPE", "float32"))
    return RunContext(Path(workdir), module.SCHEMA.fixed(config), dtype, config.get("checkpoint_every", 10), writes)


def run_experiment(module, config, workdir: Path, writes: bool = True) -> dict:
    """``module.run(config, ctx)`` under the run's precision; returns its metrics."""
    ctx = run_context(module, config, workdir, writes)
    with precision(ctx.dtype_name):
        return dict(module.run(config, ctx))


def run_config(spec: str | ml_collections.ConfigDict, overrides: list[str] = (), workdir: str | None = None, quiet: bool = False,
               imports: list[str] = (), fresh: bool = False, coordinator: str | None = None,
               num_processes: int | None = None, process_id: int | None = None,
               join_timeout: float = 300.0, figure_formats: tuple[str, ...] = ()) -> dict:
    """Load, validate, run and record one experiment (module docstring); returns its metrics.
    ``fresh=True`` is ``--restart``. With a coordinator (``distributed.resolve``) the process joins a
    multi-process run before the experiment starts; process 0 alone uses the work directory, the others
    run in a scratch directory that is deleted and print nothing."""
    try:
        figure_formats = figures.check_formats(figure_formats)
    except ValueError as e:
        raise ConfigError(f"--figure-formats: {e}") from None
    config = copy.deepcopy(spec) if isinstance(spec, ml_collections.ConfigDict) else load_config(spec)[0]
    import_modules(list(imports))
    apply_overrides(config, list(overrides))
    module = experiment_module(config.experiment)
    module.SCHEMA.validate(config)
    joined = resolve_processes(module, config.experiment, coordinator, num_processes, process_id)
    if not 0 < join_timeout < float("inf"):
        raise ConfigError(f"--join-timeout must be a positive number of seconds, got {join_timeout!r}")
    if joined is not None:
        try:
            distributed.initialize(*joined, join_timeout=join_timeout)
        except distributed.JoinError as e:
            raise ConfigError(str(e)) from None
        check_same_run(config)
        if joined[2] != 0:
            if not distributed.agree(True):  # process 0's verdict on its work directory
                raise ConfigError("process 0 refused the run (its output says why); nothing was run")
            with tempfile.TemporaryDirectory(prefix="lrjax-process-") as scratch:
                return run_experiment(module, config, Path(scratch), writes=False)
    try:
        out = Path(workdir) if workdir else default_workdir(config.experiment)
        lock, allowed = claim_workdir(out, config.to_dict(), module.SCHEMA, fresh)
    except BaseException:
        if joined is not None:
            try:
                distributed.agree(False)  # the other processes stop now instead of waiting for process 0
            except Exception:  # a peer already gone: process 0's own refusal is the message to show
                pass
        raise
    try:
        if joined is not None:
            distributed.agree(True)
        if allowed and not quiet:
            print(f"lrjax: continuing the run in {out} with {'; '.join(allowed)} (keys that do not change its "
                  "trajectory)", file=sys.stderr)
        record = out / "config.json"
        previous = record.read_text() if record.is_file() else None
        measured = _read_json(out / "metrics.json")
        write_json(record, config.to_dict())
        if not quiet:
            print(f"lrjax: {config.experiment} in {out}", file=sys.stderr, flush=True)
        t0, started = time.perf_counter(), time.time()
        board = writers.Board(out / "tensorboard")
        try:
            with figures.also_write(figure_formats), live.streaming_to(writers.stream(board.writer)), \
                    live.counting() as seconds:
                metrics = run_experiment(module, config, out)
            board.finish(out / "figures", config.to_dict(), metrics)
        except BaseException as e:  # a run that did not complete leaves the stored run described as it was
            if previous is None:
                if not (out / "checkpoints").exists():
                    record.unlink(missing_ok=True)
            else:
                write_text(record, previous)
            e.lrjax_workdir = out  # for the interrupt message (main)
            board.close()          # what was streamed stays readable
            raise
        metrics.setdefault("runtime_s", time.perf_counter() - t0)
        metrics["provenance"] = {**provenance.collect(started, time.time()), **seconds}
        if previous is not None and not allowed and not fresh:  # the same run again, every step done already:
            for key, value in measured.items():               # it measured nothing, so keep what was measured
                if key in metrics and metrics[key] is None and value is not None:
                    metrics[key] = value
        write_json(out / "metrics.json", metrics)
    finally:
        lock.release()
    if not quiet:
        print(f"\n{config.experiment}: results in {out}")
        for k, v in sorted(to_jsonable(metrics).items()):
            if not isinstance(v, (list, dict)):
                print(f"  {k:<34} {v}")
            elif isinstance(v, list) and 0 < len(v) <= 32 and all(isinstance(x, (int, float)) for x in v):
                print(f"  {k:<34} {' '.join(f'{x:.4g}' for x in v)}")   # per seed
    return metrics


def config_variants(tree: ast.Module) -> list[str]:
    """The variants a config's ``get_config(arg)`` tests for (``arg == "quick"``, ``arg in ("a", "b")``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "arg":
            for op, right in zip(node.ops, node.comparators):
                values = right.elts if isinstance(right, (ast.Tuple, ast.List, ast.Set)) else [right]
                if isinstance(op, (ast.Eq, ast.In)):
                    found += [v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)
                              and v.value and v.value not in found]
    return found


def first_sentence(doc: str) -> str:
    """The docstring's first sentence, across line breaks (its first paragraph when no sentence ends there)."""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    end = re.search(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)\.(\s+[A-Z(`]|$)", paragraph)
    return paragraph[:end.start() + 1] if end else paragraph


def list_configs(directory: Path) -> list[tuple[str, str, list[str]]]:
    """``(path, first docstring sentence, variants)`` for each config file."""
    out = []
    for p in sorted(directory.glob("*.py")):
        if p.name.startswith("_") or p.name == "common.py":
            continue
        try:
            tree = ast.parse(p.read_text())
        except SyntaxError as e:
            raise ConfigError(f"config file {str(p)!r} has a syntax error at line {e.lineno}: {e.msg}") from None
        try:
            shown = str(p.relative_to(Path.cwd()))
        except ValueError:
            shown = str(p)
        out.append((shown, first_sentence(ast.get_docstring(tree) or ""), config_variants(tree)))
    return out


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"lrjax: warning: {message}", file=sys.stderr if file is None else file)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lrjax", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run an experiment config")
    p_run.add_argument("config", help="CONFIG.py or CONFIG.py:variant (e.g. configs/deep_mf.py:quick)")
    p_run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p_run.add_argument("--workdir", help="output directory (default runs/<experiment>/<timestamp>); re-running "
                                         "with the same one resumes the same run")
    p_run.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                       help="import a module or .py file first (e.g. one that registers a parameterization)")
    p_run.add_argument("--figure-formats", default="", metavar="pdf,svg",
                       help="also write every figure in these formats beside the PNG (pdf, svg, eps)")
    p_run.add_argument("--restart", action="store_true",
                       help="discard the run stored in --workdir (its outputs and checkpoints) and start over")
    p_run.add_argument("--coordinator", metavar="HOST:PORT",
                       help="join a multi-process run whose process 0 listens there (default $LRJAX_COORDINATOR); "
                            "for experiments that span processes (e.g. completion_sweep)")
    p_run.add_argument("--num-processes", type=int, help="processes in the run (default $LRJAX_NUM_PROCESSES)")
    p_run.add_argument("--join-timeout", type=float, default=300.0, metavar="SECONDS",
                       help="how long the processes of a multi-process run wait for each other (default 300)")
    p_run.add_argument("--process-id", type=int,
                       help="this process, 0..N-1; only process 0 writes --workdir (default $LRJAX_PROCESS_ID)")
    p_list = sub.add_parser("list", help="list the experiment configs")
    p_list.add_argument("--configs", default=str(ROOT / "configs"), help="folder of configs (default: the repository's)")
    p_cmp = sub.add_parser("compare", help="runs side by side: the config keys that differ and the metrics")
    p_cmp.add_argument("runs", nargs="+", metavar="RUN", help="run directories (holding config.json and metrics.json)")
    p_cmp.add_argument("--format", default="table", choices=compare.FORMATS)
    p_cmp.add_argument("--metrics", help="comma-separated metric keys (default: every numeric one all runs have)")
    p_rep = sub.add_parser("report", help="one self-contained HTML page of runs (figures embedded)")
    p_rep.add_argument("runs", nargs="+", metavar="RUN", help="run directories (holding config.json and metrics.json)")
    p_rep.add_argument("--out", required=True, metavar="FILE.html", help="the page to write")
    p_bench = sub.add_parser("bench", help="benchmarks")
    p_bench.add_argument("what", choices=["dynamics", "recovery", "completion", "train", "forward", "intrinsic"],
                         help="dynamics: runner vs loop vs matmul floor, seeds, tracking; recovery: runner vs the "
                              "papers' fori_loop pattern on deep matrix completion (float64); completion: the observed-entries path "
                              "(original, compressed) vs the papers' pattern; train: minibatch "
                              "runner vs the canonical Flax loop on an MLP and a CNN, vmapped vs sequential seeds; forward: "
                              "a bound MLP's gradient with W materialized vs intercepted Dense layers")
    p_bench.add_argument("--sizes", default="100,1000", help="comma-separated d values")
    p_bench.add_argument("--steps", type=int, default=500)
    p_bench.add_argument("--seeds", type=int, default=64)
    p_bench.add_argument("--precision", default="highest", choices=["default", "high", "highest"])
    p_bench.add_argument("--out", help="write the results as JSON here")
    return parser


def _bench(args) -> None:
    repo_package("benchmarks")
    from benchmarks.suites import (bench_completion, bench_dynamics, bench_forward, bench_intrinsic, bench_recovery,
                                   bench_train)
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        raise ConfigError(f"--sizes must be comma-separated integers, got {args.sizes!r}") from None
    if not sizes or min(sizes) < 2 or args.steps < 1 or args.seeds < 0:
        raise ConfigError(f"--sizes must be >= 2, --steps >= 1 and --seeds >= 0; got {args.sizes!r}, "
                          f"{args.steps}, {args.seeds}")
    if args.what == "dynamics":
        bench_dynamics(sizes, steps=args.steps, seeds=args.seeds, precision=args.precision, out=args.out)
    elif args.what == "forward":
        bench_forward(out=args.out)
    elif args.what == "intrinsic":
        bench_intrinsic(out=args.out)
    elif args.what == "completion":
        bench_completion(sizes, steps=args.steps, out=args.out)
    elif args.what == "train":
        bench_train(steps=args.steps, seeds=min(args.seeds, 16) if args.seeds else 0, out=args.out)
    else:
        bench_recovery(sizes, steps=args.steps, out=args.out)


def main(argv: list[str] | None = None) -> int:
    setup_process()   # before the first computation of this process (lrjax.harness.process)
    args = _parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning  # one line per warning (e.g. a checkpoint that failed verification)
        try:
            if args.command == "run":
                metrics = run_config(args.config, args.set, args.workdir, imports=args.imports, fresh=args.restart,
                                     coordinator=args.coordinator, num_processes=args.num_processes,
                                     join_timeout=args.join_timeout,
                                     figure_formats=tuple(f for f in args.figure_formats.split(",") if f),
                                     process_id=args.process_id)
                if metrics.get("passed") is not None and not bool(metrics["passed"]):
                    print(f"lrjax: the experiment's check failed (passed = false; see {args.config})",
                          file=sys.stderr)
                    return 1
            elif args.command == "list":
                rows = list_configs(Path(args.configs))
                if not rows:
                    raise ConfigError(f"no configs found in {args.configs!r}")
                for path, doc, variants in rows:
                    name = Path(path).stem + (f"[:{'|'.join(variants)}]" if variants else "")
                    print(f"{name}\n    {path}: {doc}")
            elif args.command == "compare":
                columns, rows = compare.table(args.runs, args.metrics.split(",") if args.metrics else None)
                print(compare.render(columns, rows, args.format), end="")
            elif args.command == "report":
                print(f"lrjax: report written to {report.write(args.runs, args.out)}")
            else:
                _bench(args)
        except (ConfigError, ResumeError, CheckpointError, DirectoryBusyError) as e:
            print(f"lrjax: error: {one_line(str(e))}", file=sys.stderr)
            return 2
        except DivergenceError as e:
            print(f"lrjax: the run diverged: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt as e:
            print(interrupted_message(e, argv if argv is not None else sys.argv[1:]), file=sys.stderr)
            return 130
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            print(f"lrjax: error: no space left on the device writing {e.filename or 'the run'}; free some space and "
                  "run the same command again (a run with checkpoints continues from its newest one)", file=sys.stderr)
            return 74
    return 0


def one_line(text: str, limit: int = 600) -> str:
    """The first line of ``text``, its middle cut when longer than ``limit`` (a huge --set value is not
    echoed whole)."""
    line = text.splitlines()[0] if text.strip() else text
    if len(line) <= limit:
        return line
    half = limit // 2
    return f"{line[:half]} ... ({len(line) - 2 * half:,} characters cut) ... {line[-half:]}"


def interrupted_message(e: KeyboardInterrupt, argv: list[str]) -> str:
    """One line: where a run stopped, its newest checkpoint, and the command that continues it."""
    import logging
    logging.getLogger("absl").setLevel(logging.CRITICAL)  # orbax's save thread would log the interrupt again
    where = f" at step {e.step}" if getattr(e, "step", None) is not None else ""
    saved = (f"; newest checkpoint: step {e.checkpoint_step} in {e.checkpoint}" if getattr(e, "checkpoint_step", None)
             is not None else "; no checkpoint was saved")
    workdir = getattr(e, "lrjax_workdir", None)
    if workdir is None:
        return f"lrjax: interrupted{where}{saved}"
    args, skip = [], False
    for a in argv:  # the same command with --workdir set to the run's directory
        if skip:
            skip = False
            continue
        if a == "--workdir":
            skip = True
            continue
        if not a.startswith("--workdir="):
            args.append(a)
    command = " ".join(shlex.quote(a) for a in ["lrjax", *args, "--workdir", str(workdir)])
    return f"lrjax: interrupted{where}{saved}; continue with: {command}"


if __name__ == "__main__":
    sys.exit(main())
