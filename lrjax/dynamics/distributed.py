"""Sweeps (seeds, hyper-parameters) that span several processes: ``initialize`` joins a multi-process JAX
run, ``sweep`` runs one ``jit(vmap(fn))`` program with its batch axis sharded over all processes' devices.

To span several hosts, every host runs the same command with the same coordinator address (``host:port``
of process 0, a free port there), the process count, and its own process id::

    LRJAX_COORDINATOR=10.0.0.1:1234 LRJAX_NUM_PROCESSES=2 LRJAX_PROCESS_ID=0 python my_sweep.py  # host 0
    LRJAX_COORDINATOR=10.0.0.1:1234 LRJAX_NUM_PROCESSES=2 LRJAX_PROCESS_ID=1 python my_sweep.py  # host 1

where ``my_sweep.py`` calls ``initialize()`` before any other JAX call, then ``sweep(fn, batch)``. Without
``LRJAX_COORDINATOR`` the same script runs in one process.
"""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

_BATCH_AXIS = "batch"


def _env_int(value: int | str | None, name: str, env: str) -> int:
    value = os.environ.get(env) if value is None else value
    if value is None or value == "":
        raise ValueError(f"initialize: {name} is required with a coordinator (argument or {env})")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"initialize: {name}={value!r} is not an integer") from None


def _check_coordinator(coordinator: str) -> None:
    host, sep, port = coordinator.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"initialize: coordinator={coordinator!r} must be 'host:port' with a port in 1..65535")


def resolve(coordinator: str | None = None, num_processes: int | str | None = None,
            process_id: int | str | None = None) -> tuple[str, int, int] | None:
    """``(coordinator, num_processes, process_id)`` from the arguments, else the environment variables
    ``LRJAX_COORDINATOR`` (``"host:port"`` of process 0), ``LRJAX_NUM_PROCESSES`` and ``LRJAX_PROCESS_ID``;
    ``None`` without a coordinator (one process). Checks the values (``ValueError``) and starts nothing."""
    coordinator = coordinator or os.environ.get("LRJAX_COORDINATOR") or None
    if coordinator is None:
        if num_processes is not None or process_id is not None:
            raise ValueError("initialize: num_processes and process_id need a coordinator (argument or "
                             "LRJAX_COORDINATOR)")
        return None
    _check_coordinator(coordinator)
    n = _env_int(num_processes, "num_processes", "LRJAX_NUM_PROCESSES")
    pid = _env_int(process_id, "process_id", "LRJAX_PROCESS_ID")
    if n < 1:
        raise ValueError(f"initialize: num_processes={n} must be at least 1")
    if not 0 <= pid < n:
        raise ValueError(f"initialize: process_id={pid} must be in 0..{n - 1} (num_processes={n})")
    return coordinator, n, pid


class JoinError(RuntimeError):
    """A process of a multi-process run did not join (or process 0 could not be reached) in time."""


def _send_line(sock: socket.socket, text: str) -> None:
    sock.sendall(text.encode() + b"\n")


def _read_line(sock: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(256)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def rendezvous(coordinator: str, num_processes: int, process_id: int, timeout: float) -> None:
    """Wait until every process is there, before JAX joins them (whose own wait ends in a C++ abort).

    Process 0 listens on the coordinator's port for ``timeout`` seconds and answers every peer ``ok`` once all
    ``num_processes - 1`` have said who they are; a peer retries connecting for ``timeout`` seconds. Missing
    processes or an unreachable process 0 raise ``JoinError`` naming them (on every process that is there)."""
    host, _, port = coordinator.rpartition(":")
    deadline = time.monotonic() + timeout
    if process_id == 0:
        server = socket.create_server(("", int(port)), reuse_port=False)
        server.settimeout(0.2)
        peers: dict[int, socket.socket] = {}
        try:
            while len(peers) < num_processes - 1 and time.monotonic() < deadline:
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                conn.settimeout(max(deadline - time.monotonic(), 0.1))
                words = _read_line(conn).split()
                if len(words) == 2 and words[0] == "lrjax" and words[1].isdigit():
                    peers[int(words[1])] = conn
                else:
                    conn.close()
            missing = [i for i in range(1, num_processes) if i not in peers]
            for conn in peers.values():
                _send_line(conn, "ok" if not missing else "missing " + ",".join(map(str, missing)))
                conn.close()
        finally:
            server.close()
        if missing:
            raise JoinError(f"process(es) {', '.join(map(str, missing))} of {num_processes} did not join "
                            f"{coordinator} within {timeout:g} s (--join-timeout)")
        return
    while True:
        try:
            conn = socket.create_connection((host, int(port)), timeout=1.0)
            break
        except OSError:
            if time.monotonic() >= deadline:
                raise JoinError(f"process 0 could not be reached at {coordinator} within {timeout:g} s "
                                "(--join-timeout)") from None
            time.sleep(0.2)
    with conn:
        conn.settimeout(max(deadline - time.monotonic(), 1.0))
        _send_line(conn, f"lrjax {process_id}")
        try:
            answer = _read_line(conn)
        except OSError:
            answer = ""
    if answer != "ok":
        missing = answer.removeprefix("missing ").replace(",", ", ") if answer.startswith("missing") else "some"
        raise JoinError(f"process(es) {missing} of {num_processes} did not join {coordinator} within {timeout:g} s "
                        "(--join-timeout)")


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, join_timeout: float | None = None) -> bool:
    """Join a multi-process JAX run; call it before any other JAX call.

    Arguments default to the environment variables (``resolve``). Returns ``False`` and does nothing
    without a coordinator (single process), ``True`` once joined. Bad values raise ``ValueError`` before
    anything is started; CPU collectives are set to gloo (unless chosen already) so cross-process
    collectives work on CPU. A second call with the same arguments does nothing; with other arguments it
    raises ``RuntimeError``. ``join_timeout``: seconds to wait for every process (``rendezvous``) before JAX
    joins them; ``None``: JAX's own wait.
    """
    resolved = resolve(coordinator, num_processes, process_id)
    if resolved is None:
        return False
    coordinator, n, pid = resolved
    if jax.distributed.is_initialized():
        from jax._src.distributed import global_state  # the only record of the arguments jax keeps
        joined = (global_state.coordinator_address, global_state.num_processes, global_state.process_id)
        if joined != (coordinator, n, pid):
            raise RuntimeError(f"initialize: already joined as coordinator={joined[0]!r}, num_processes={joined[1]}, "
                               f"process_id={joined[2]}; cannot join again as {coordinator!r}, {n}, {pid}")
        return True
    if join_timeout is not None and n > 1:
        rendezvous(coordinator, n, pid, join_timeout)
    if jax.config.jax_cpu_collectives_implementation is None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    # "deactivate": use exactly these values (no Slurm/MPI/TPU auto-detection); every local device is used.
    jax.distributed.initialize(coordinator, n, pid, cluster_detection_method="deactivate")
    return True


def agree(ok: bool) -> bool:
    """Process 0's ``ok``, received by every process (all must call it; one process: ``ok``). Lets process 0
    tell the others it refused the run (e.g. its work directory) so they stop at once instead of waiting."""
    if jax.process_count() == 1:
        return bool(ok)
    from jax.experimental import multihost_utils
    return bool(multihost_utils.broadcast_one_to_all(np.int32(bool(ok))))


def gather_text(text: str) -> list[str]:
    """Every process's ``text``, in process order, on every process (all must call it; one process:
    ``[text]``). Lets the processes check that they were started with the same run before any work."""
    if jax.process_count() == 1:
        return [text]
    from jax.experimental import multihost_utils
    data = np.frombuffer(text.encode(), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.int32(data.size))).reshape(-1)
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[:data.size] = data
    rows = np.asarray(multihost_utils.process_allgather(padded)).reshape(len(sizes), -1)
    return [bytes(rows[i, :int(n)]).decode() for i, n in enumerate(sizes)]


def _is_key(leaf: Any) -> bool:
    return jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key)


def _to_global(leaf: Any, sharding: NamedSharding) -> jax.Array:
    """A global array with ``leaf``'s value (the same on every process), split along axis 0."""
    value = np.asarray(leaf)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def sweep(fn: Callable, batch: Any) -> Any:
    """``jax.vmap(fn)(batch)`` as numpy arrays, on every process, computed by one ``jit`` program whose batch
    axis is sharded over a 1-D mesh of all processes' devices (``jax.devices()``).

    ``batch`` is a pytree whose leaves (numbers or typed PRNG keys) share a leading axis ``B`` and are the
    same on every process; ``B`` must be divisible by the global device count. In a single process with one
    device this is ``jit(vmap(fn))``.
    """
    leaves, treedef = jax.tree.flatten(batch)
    if not leaves:
        raise ValueError("sweep: batch has no leaves")
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"sweep: batch leaves must share a leading axis, got leading sizes {sorted(map(str, sizes))}")
    size, devices = sizes.pop(), jax.devices()
    if size % len(devices):
        raise ValueError(f"sweep: batch size {size} is not divisible by the global device count {len(devices)}")
    mesh = Mesh(np.array(devices), (_BATCH_AXIS,))
    split, replicated = NamedSharding(mesh, PartitionSpec(_BATCH_AXIS)), NamedSharding(mesh, PartitionSpec())
    # Typed PRNG keys travel as their raw key data and are rebuilt inside the program.
    impls = [jax.random.key_impl(leaf) if _is_key(leaf) else None for leaf in leaves]
    raw = [jax.random.key_data(leaf) if impl is not None else leaf for leaf, impl in zip(leaves, impls)]

    def batched(*raw_leaves):
        rebuilt = [jax.random.wrap_key_data(x, impl=impl) if impl is not None else x
                   for x, impl in zip(raw_leaves, impls)]
        return jax.vmap(fn)(jax.tree.unflatten(treedef, rebuilt))

    program = jax.jit(batched, out_shardings=replicated)  # replicated outputs: every process holds all of them
    out = program(*(_to_global(x, split) for x in raw))
    return jax.tree.map(np.asarray, out)
