"""The CLI, its errors, and every config executed in its quick variant."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lrjax import cli

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted(p for p in (ROOT / "configs").glob("*.py") if not p.name.startswith("_") and p.name != "common.py")


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_every_config_runs_quick(config, tmp_path):
    metrics = cli.run_config(f"{config}:quick", workdir=str(tmp_path), quiet=True)
    assert (tmp_path / "config.json").is_file()
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved.keys() == metrics.keys() and "runtime_s" in saved
    figures = list((tmp_path / "figures").glob("*.png"))
    assert figures and all(f.stat().st_size > 10_000 for f in figures)


def test_main_demo_outputs(tmp_path):
    metrics = cli.run_config(f"{ROOT / 'configs/invariant_subspace.py'}:quick", workdir=str(tmp_path), quiet=True)
    assert metrics["verdict"] == "PASS" and metrics["singular_value_error"] < 1e-10
    with np.load(tmp_path / "trajectory.npz") as z:
        assert z["singular_values"].shape == (41, 3, 12) and z["step"].shape == (41,)
    bad = cli.run_config(f"{ROOT / 'configs/invariant_subspace.py'}:quick", ["init=gaussian"],
                         workdir=str(tmp_path / "neg"), quiet=True)
    assert bad["verdict"] == "FAIL"


@pytest.mark.parametrize("overrides, match", [
    (["nosuch=1"], "unknown config key 'nosuch'; valid keys: .*depth"),
    (["d=abc"], "bad value 'abc' for config key 'd'"),
    (["d"], "--set expects key=value"),
])
def test_bad_overrides(overrides, match, tmp_path):
    with pytest.raises(cli.ConfigError, match=match):
        cli.run_config(str(ROOT / "configs/invariant_subspace.py"), overrides, workdir=str(tmp_path))


def test_missing_config_and_bad_arg(tmp_path):
    with pytest.raises(cli.ConfigError, match="does not exist"):
        cli.run_config("configs/nope.py", workdir=str(tmp_path))
    with pytest.raises(ValueError, match="unknown config argument 'fast'"):
        cli.run_config(f"{ROOT / 'configs/invariant_subspace.py'}:fast", workdir=str(tmp_path))


def test_command_line_list_and_error_exit_code():
    out = subprocess.run([sys.executable, "-m", "lrjax.cli", "list"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and "configs/invariant_subspace.py" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "lrjax.cli", "run", "configs/invariant_subspace.py", "--set",
                          "depht=2"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown config key 'depht'" in bad.stderr


def test_bench_commands_print_and_save(tmp_path, capsys):
    assert cli.main(["bench", "dynamics", "--sizes", "12", "--steps", "40", "--seeds", "2",
                     "--out", str(tmp_path / "d.json")]) == 0
    rows = json.loads((tmp_path / "d.json").read_text())["rows"]
    assert rows[0]["d"] == 12 and rows[0]["runner_ms"] > 0 and rows[0]["seed_throughput_x"] > 0
    assert rows[0]["track_flops_x"] > rows[0]["topk_flops_x"] > 0  # the bulk moments add a Gram per factor
    assert cli.main(["bench", "recovery", "--sizes", "16", "--steps", "100", "--out", str(tmp_path / "r.json")]) == 0
    row = json.loads((tmp_path / "r.json").read_text())["rows"][0]
    assert row["runner_ms"] > 0 and row["authors_ms"] > 0
    assert "authors/lrjax" in capsys.readouterr().out
