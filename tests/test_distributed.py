import functools
import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrjax.dynamics import distributed

JOB = Path(__file__).with_name("distributed_job.py")
_spec = importlib.util.spec_from_file_location("distributed_job", JOB)
job = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(job)  # main() is guarded: this only defines make_train and SEEDS


@functools.cache
def reference() -> dict:
    """The sweep as a plain single-process ``jax.vmap`` (computed once)."""
    with jax.enable_x64(True):
        return jax.tree.map(np.asarray, jax.vmap(job.make_train())(jnp.asarray(job.SEEDS)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(tmp_path, num_processes: int, devices_per_process: int, timeout: float = 180) -> list[dict]:
    """Run the job as ``num_processes`` processes on 127.0.0.1; kill them all if any fails or hangs."""
    coordinator = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices_per_process}"}
    outs = [tmp_path / f"out{i}.npz" for i in range(num_processes)]
    procs = [subprocess.Popen([sys.executable, str(JOB), "--coordinator", coordinator, "--num-processes",
                               str(num_processes), "--process-id", str(i), "--out", str(out)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i, out in enumerate(outs)]
    try:
        logs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for i, (p, log) in enumerate(zip(procs, logs)):
        assert p.returncode == 0, f"process {i} exited with {p.returncode}:\n{log[-3000:]}"
    return [dict(np.load(out)) for out in outs]


@pytest.mark.slow
@pytest.mark.parametrize("devices_per_process", [1, 2])
def test_two_process_sweep_matches_vmap(tmp_path, devices_per_process):
    ref = reference()
    assert ref["factors"].dtype == np.float64 and ref["factors"].shape == (4, 3, 12, 12)
    assert np.all(ref["loss"] < 0.05)  # the runs did train, so the comparison is not between initial points
    n_devices = 2 * devices_per_process
    for out in launch(tmp_path, 2, devices_per_process):
        assert out["joined"] and out["joined_again"] and out["process_count"] == 2
        assert out["local_device_count"] == devices_per_process and out["device_count"] == n_devices
        assert out["factors"].dtype == np.float64
        for member in range(len(job.SEEDS)):
            np.testing.assert_allclose(out["loss"][member], ref["loss"][member], rtol=1e-12)
            np.testing.assert_allclose(out["factors"][member], ref["factors"][member], rtol=1e-12, atol=1e-14)
        assert str(out["bad_size_error"]) == (f"sweep: batch size 3 is not divisible by the global device count "
                                              f"{n_devices}")


def test_single_process_sweep_is_vmap():
    ref = reference()
    with jax.enable_x64(True):
        out = distributed.sweep(job.make_train(), job.SEEDS)
    assert isinstance(out["loss"], np.ndarray)
    np.testing.assert_allclose(out["loss"], ref["loss"], rtol=1e-12)
    np.testing.assert_allclose(out["factors"], ref["factors"], rtol=1e-12, atol=1e-14)


@pytest.mark.x64
def test_single_process_sweep_of_keys_and_hyperparameters():
    def fn(member):
        return member["lr"] * jax.random.normal(member["key"], (3,))

    batch = {"key": jax.random.split(jax.random.key(0), 4), "lr": jnp.array([0.1, 0.2, 0.3, 0.4])}
    np.testing.assert_allclose(distributed.sweep(fn, batch), jax.vmap(fn)(batch), rtol=1e-12)
    with pytest.raises(ValueError, match="leading axis"):
        distributed.sweep(fn, {"key": batch["key"], "lr": jnp.ones(3)})


@pytest.mark.parametrize("args, message", [
    (("127.0.0.1", 2, 0), "host:port"),
    (("127.0.0.1:0", 2, 0), "host:port"),
    ((":1234", 2, 0), "host:port"),
    (("127.0.0.1:1234", 2, 2), r"process_id=2 must be in 0\.\.1"),
    (("127.0.0.1:1234", 2, -1), r"process_id=-1 must be in 0\.\.1"),
    (("127.0.0.1:1234", 0, 0), "num_processes=0 must be at least 1"),
    (("127.0.0.1:1234", None, 0), "num_processes is required"),
    (("127.0.0.1:1234", "two", 0), "num_processes='two' is not an integer"),
])
def test_initialize_rejects_bad_values(monkeypatch, args, message):
    for name in ("LRJAX_COORDINATOR", "LRJAX_NUM_PROCESSES", "LRJAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match=message) as e:
        distributed.initialize(*args)
    assert "\n" not in str(e.value)
    assert not jax.distributed.is_initialized()


def test_initialize_reads_environment(monkeypatch):
    monkeypatch.delenv("LRJAX_COORDINATOR", raising=False)
    assert distributed.initialize() is False  # no coordinator: single process, nothing started
    monkeypatch.setenv("LRJAX_COORDINATOR", "127.0.0.1:1234")
    monkeypatch.setenv("LRJAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("LRJAX_PROCESS_ID", "5")
    with pytest.raises(ValueError, match=r"process_id=5 must be in 0\.\.1"):
        distributed.initialize()
    assert not jax.distributed.is_initialized()


def _sweep_config(**overrides):
    from lrjax.harness import cli
    config, _ = cli.load_config("configs/completion_sweep.py:quick")
    for k, v in overrides.items():
        config[k] = v
    return config, cli.experiment_module("completion_sweep")


@pytest.mark.slow
@pytest.mark.parametrize("method, eta", [("compressed", 150.0), ("two_factor", 150.0), ("original", 30.0)])
def test_completion_sweep_members_equal_single_runs(method, eta):
    """Every (seed, eps) member of the sharded sweep follows sparse_recovery.fit's run with that seed and eps."""
    from lrjax.studies import sparse_recovery
    from lrjax.tasks import sparse_completion as sc
    config, module = _sweep_config(method=method, eta=eta, steps=300, record_every=50)
    with jax.enable_x64(True):
        task, _ = sc.low_rank_completion(config.seed, (config.d, config.d), config.rank, config.observed,
                                         config.held_out or None, config.spectrum, jnp.float64)
        data = task.data(jnp.float64)
        train = module.member_train(config, task, data, config.eta, jnp.float64)
        members = {"seed": np.array([0, 1, 1], np.int32), "eps": np.array([0.1, 0.1, 0.05])}
        out = distributed.sweep(train, members)
        for i, (seed, eps) in enumerate(zip(members["seed"], members["eps"])):
            single = sparse_recovery.make_method(method, task, data, depth=config.depth, eps=float(eps),
                                                 rank=config.rank, gamma=config.gamma, seed=int(seed))
            fit = sparse_recovery.fit(single, data, config.eta, config.steps, chunk_size=100,
                                      record_every=config.record_every, progress=False)
            assert fit.evaluation.shape == out["recovery_error"][i].shape == (7,)
            assert fit.evaluation[-1] < 0.9 * fit.evaluation[0]  # the member trained
            np.testing.assert_allclose(out["recovery_error"][i], fit.evaluation, rtol=1e-9)
            np.testing.assert_allclose(out["loss"][i, :-1], fit.loss[::config.record_every], rtol=1e-9)


def run_two_processes(workdirs: list[Path], sets: list[str], timeout: float = 240,
                      own_sets: tuple[list[str], list[str]] = ([], [])) -> list[tuple[int, str]]:
    """``lrjax run configs/completion_sweep.py:quick`` as processes 0 and 1 on 127.0.0.1 (one work directory
    each, ``sets`` for both and ``own_sets[i]`` for process i only); ``(exit code, output)`` per process;
    kills both if either hangs."""
    coordinator = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    procs = [subprocess.Popen([sys.executable, "-m", "lrjax.harness.cli", "run", "configs/completion_sweep.py:quick",
                               *(a for kv in [*sets, *own_sets[i]] for a in ("--set", kv)),
                               "--workdir", str(workdir), "--coordinator", coordinator,
                               "--num-processes", "2", "--process-id", str(i)],
                              cwd=JOB.parent.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for i, workdir in enumerate(workdirs)]
    try:
        logs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [(p.returncode, log) for p, log in zip(procs, logs)]


@pytest.mark.slow
def test_completion_sweep_command_spans_two_processes(tmp_path):
    """``lrjax run ... --coordinator`` with 2 processes: process 0's metrics equal a one-process run's (3
    members: padded to 4 for the 2 devices); only process 0 writes the work directory."""
    from lrjax.harness import cli
    sets = ["seeds=1", "eps_values=(0.01, 0.05, 0.1)"]
    single = cli.run_config("configs/completion_sweep.py:quick", sets, workdir=str(tmp_path / "one"), quiet=True)
    (rc0, log0), (rc1, log1) = run_two_processes([tmp_path / "two0", tmp_path / "two1"], sets)
    assert (rc0, rc1) == (0, 0), (log0, log1)
    assert not (tmp_path / "two1").exists() and "results in" not in log1
    import json
    two = json.loads((tmp_path / "two0" / "metrics.json").read_text())
    assert (single["processes"], two["processes"], two["devices"]) == (1, 2, 2)
    assert (single["padded_members"], two["padded_members"]) == (0, 1)
    assert two["members"] == single["members"] == [[0, 0.01], [0, 0.05], [0, 0.1]]
    assert all(e < 1e-2 * e0 for e, e0 in zip(two["recovery_error"], two["recovery_error_initial"]))
    np.testing.assert_allclose(two["recovery_error"], single["recovery_error"], rtol=1e-12)
    np.testing.assert_allclose(two["final_loss"], single["final_loss"], rtol=1e-12)


def test_process_0_refusing_its_workdir_stops_every_process(tmp_path):
    """Process 0's work directory holds another experiment's run: it refuses in one line (exit code 2) and
    process 1, already joined, learns it at once and stops the same way (no wait for a timeout)."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"experiment": "deep_mf"}')
    before = sorted(p.name for p in other.iterdir())
    (rc0, log0), (rc1, log1) = run_two_processes([other, tmp_path / "unused"], ["seeds=1"], timeout=120)
    assert (rc0, rc1) == (2, 2), (log0, log1)
    assert "lrjax:" in log0 and "deep_mf" in log0, log0
    assert "process 0 refused the run" in log1, log1
    assert sorted(p.name for p in other.iterdir()) == before and not (tmp_path / "unused").exists()


@pytest.mark.slow
def test_processes_started_with_different_configs_refuse_before_any_work(tmp_path):
    """Process 1 started with another eta: every process exits 2 with one line naming the key and both
    values, and neither writes anything (before, both exited 0 and process 0's metrics held process 1's
    members)."""
    (rc0, log0), (rc1, log1) = run_two_processes([tmp_path / "w0", tmp_path / "w1"], ["seeds=1"], timeout=120,
                                                 own_sets=([], ["eta=100.0"]))
    assert (rc0, rc1) == (2, 2), (log0, log1)
    for log in (log0, log1):
        errors = [line for line in log.splitlines() if line.startswith("lrjax: error:")]
        assert len(errors) == 1 and "different runs" in errors[0] and "eta: 150.0 in process 0, 100.0 in process 1" \
            in errors[0], log
    assert not (tmp_path / "w0").exists() and not (tmp_path / "w1").exists()


@pytest.mark.slow
def test_a_process_that_never_joins_is_named_in_one_line(tmp_path):
    """Process 1 is never started: process 0 stops after --join-timeout with one line naming process 1 and
    exit code 2 (before: JAX waited ~300 s and aborted the process with a C++ stack trace, exit 134), and
    writes nothing."""
    coordinator = f"127.0.0.1:{free_port()}"
    out = subprocess.run([sys.executable, "-m", "lrjax.harness.cli", "run", "configs/completion_sweep.py:quick",
                          "--workdir", str(tmp_path / "w"), "--coordinator", coordinator, "--num-processes", "2",
                          "--process-id", "0", "--join-timeout", "3"], cwd=JOB.parent.parent,
                         env={**os.environ, "JAX_PLATFORMS": "cpu"}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().splitlines() == [f"lrjax: error: process(es) 1 of 2 did not join {coordinator} within 3 s "
                                               "(--join-timeout)"]
    assert not (tmp_path / "w").exists()
