"""The harness around a run: Ctrl-C in one line with the command that continues, progress for logs, a full
disk in one line, restarts that can be interrupted, measured numbers kept on a re-run."""
import errno
import json
from pathlib import Path

import jax.numpy as jnp
import optax
import pytest

from lrjax import dynamics
from lrjax.dynamics import runner
from lrjax.harness import cli, workdir

DEEP_MF = str(Path(__file__).resolve().parent.parent / "configs" / "deep_mf.py")
QUICK = [f"{DEEP_MF}:quick", "--set", "steps=400", "--set", "chunk_size=100", "--set", "checkpoint_every=1"]


@pytest.mark.slow
def test_ctrl_c_prints_one_line_with_the_checkpoint_and_the_command_that_continues(tmp_path, capsys, monkeypatch):
    w = tmp_path / "w"
    calls = []
    original = runner._Progress.update

    def interrupt_after_two_chunks(self, steps, loss):
        original(self, steps, loss)
        calls.append(steps)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(runner._Progress, "update", interrupt_after_two_chunks)
    assert cli.main(["run", *QUICK, "--workdir", str(w)]) == 130
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("lrjax:")]
    assert err[0] == f"lrjax: deep_mf in {w}"                                   # where the run goes, at its start
    assert len(err) == 2 and err[1].startswith("lrjax: interrupted at step 200; newest checkpoint: step 100 in "), err
    command = err[1].split("continue with: ", 1)[1]
    assert command.endswith(f"--workdir {w}") and "--set steps=400" in command
    monkeypatch.setattr(runner._Progress, "update", original)
    metrics = cli.run_config(f"{DEEP_MF}:quick", ["steps=400", "chunk_size=100", "checkpoint_every=1"],
                             workdir=str(w), quiet=True)
    assert metrics["resumed_from"] == 100 and metrics["steps"] == 400


def test_progress_lines_go_to_logs_that_are_not_terminals(capsys, monkeypatch):
    monkeypatch.delenv("LRJAX_QUIET", raising=False)
    monkeypatch.setattr(runner, "PROGRESS_EVERY_S", 0.0)
    dynamics.run(lambda w: jnp.sum(w ** 2), jnp.ones(3), optax.sgd(0.1), 30, chunk_size=10, desc="toy")
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(",")[0] for line in lines] == ["toy: step 10/30 (33%)", "toy: step 20/30 (67%)",
                                                      "toy: step 30/30 (100%)"]
    assert all("steps/s" in line and "loss" in line and "ETA" in line for line in lines)
    monkeypatch.setenv("LRJAX_QUIET", "1")
    dynamics.run(lambda w: jnp.sum(w ** 2), jnp.ones(3), optax.sgd(0.1), 30, chunk_size=10, desc="toy")
    assert capsys.readouterr().err == ""


def test_a_full_disk_is_one_line_and_its_own_exit_code(tmp_path, capsys, monkeypatch):
    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(cli, "write_json", full)
    assert cli.main(["run", f"{DEEP_MF}:quick", "--workdir", str(tmp_path / "w")]) == 74
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lrjax: error: no space left on the device writing "), err


@pytest.mark.slow
def test_an_interrupted_restart_can_be_restarted(tmp_path, monkeypatch):
    w = tmp_path / "w"
    cli.run_config(f"{DEEP_MF}:quick", ["checkpoint_every=1"], workdir=str(w), quiet=True)
    rmtree = workdir.shutil.rmtree

    def interrupted(path, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(workdir.shutil, "rmtree", interrupted)
    with pytest.raises(KeyboardInterrupt):
        workdir.restart(w)
    assert (w / "config.json").is_file()            # deleted last: the directory is still an lrjax run's
    monkeypatch.setattr(workdir.shutil, "rmtree", rmtree)
    metrics = cli.run_config(f"{DEEP_MF}:quick", ["eta=0.2", "checkpoint_every=1"], workdir=str(w), quiet=True,
                             fresh=True)
    assert metrics["resumed_from"] is None and json.loads((w / "config.json").read_text())["eta"] == 0.2


@pytest.mark.slow
def test_a_rerun_with_nothing_left_to_do_keeps_the_measured_numbers(tmp_path):
    w = str(tmp_path / "w")
    first = cli.run_config(f"{DEEP_MF}:quick", [], workdir=w, quiet=True)
    again = cli.run_config(f"{DEEP_MF}:quick", [], workdir=w, quiet=True)   # every step done: nothing timed
    assert first["steps_per_s"] is not None and again["steps_per_s"] == first["steps_per_s"]
    assert again["resumed_from"] == first["steps"]


@pytest.mark.parametrize("args, message", [
    (["run", "README.md"], "lrjax: error: 'README.md' is not a config: a config is a python file, CONFIG.py[:variant]"),
    (["run", f"{DEEP_MF}:quick", "--set", "rnak=3"], "lrjax: error: unknown config key 'rnak' (did you mean 'rank'?);"),
    (["run", f"{DEEP_MF}:quick", "--set", "param=nosuchfamily(2, 2)"],
     "(a family of your own? --import the module that registers it)"),
    (["run", f"{DEEP_MF}:quick", "--set", "param=" + "x" * 100_000], "characters cut"),
    (["run", f"{DEEP_MF}:quick", "--set", "d=2000000"], "its parameters alone need 44,703.5 GiB (float32); this machine"),
])
def test_small_mistakes_get_one_helpful_line(tmp_path, capsys, args, message):
    assert cli.main([*args, "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and message in err[0] and len(err[0]) < 1000, err[0][:300]
    assert not (tmp_path / "w").exists()


def test_list_names_a_config_that_does_not_parse(tmp_path, capsys):
    (tmp_path / "broken.py").write_text("def get_config(:\n")
    assert cli.main(["list", "--configs", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"lrjax: error: config file {str(tmp_path / 'broken.py')!r} has a syntax error at line 1: invalid syntax"]


def test_write_json_is_strict_json_with_null_for_non_finite(tmp_path):
    """A number that is not finite (e.g. ms_per_step of a stage resumed from checkpoints written before they
    carried timings) must still give JSON that strict readers accept, with null in its place."""
    import numpy as np

    from lrjax.io.files import write_json

    def reject(token):
        raise ValueError(f"non-JSON token {token}")

    path = tmp_path / "m.json"
    write_json(path, {"ms_per_step": float("nan"), "bound": np.float32(np.inf),
                      "curve": np.array([1.0, -np.inf, np.nan]), "nested": {"x": [2.5, float("nan")]}, "n": 3})
    loaded = json.loads(path.read_text(), parse_constant=reject)
    assert loaded == {"ms_per_step": None, "bound": None, "curve": [1.0, None, None],
                      "nested": {"x": [2.5, None]}, "n": 3}


def test_compare_reads_null_seeds_as_not_finite():
    """A per-seed list with a diverged seed (written as null) is still a per-seed metric: median nan, the
    spread over the seeds that have a value."""
    import math

    from lrjax.harness import compare

    assert compare.is_numbers([0.5, None, 0.7]) and not compare.is_numbers([None, None]) and not compare.is_numbers([])
    median, lo, hi = compare.seed_summary([0.5, None, 0.7])
    assert math.isnan(median) and (lo, hi) == (0.5, 0.7)
    assert compare.seed_summary([0.5, 0.9, 0.7]) == (0.7, 0.5, 0.9)
    assert compare.cell(compare.seed_summary([0.5, None, 0.7])) == "nan [0.5, 0.7]"
