"""Ray without a shared disk: a head and a worker node on 127.0.0.1, and the worker node's raylet killed.

Two raylets started with `ray start`, each with a temp directory of its own: the head (where this
test process is the driver, as `fusetrain serve` would be) has 0 CPUs, so every job runs on the
worker node, which has another HOME and working directory and is given no path to the server's
data directory. Jobs read a dataset file that reaches the worker node only through Ray's object
store. Then the worker node's raylet gets SIGKILL mid-job; a new worker node joins and the job goes
on, attempt 2, from its last checkpoint, bit-identical to an uninterrupted run.
Runs under `make test-ray`; every process it starts is ended by pid at the end.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fusetrain.service import executor as ex

from contract_helpers import Recorder, admitted, assert_same_result, dataset_task, reference
from service_helpers import long_spec, seeds_data, seeds_spec

RAY_ENABLED = os.environ.get("FUSETRAIN_TEST_RAY") == "1"
pytestmark = pytest.mark.skipif(not RAY_ENABLED, reason="runs under `make test-ray` (FUSETRAIN_TEST_RAY=1)")
RAY = str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pids_under(path: str) -> list[int]:
    """Processes whose command line names `path` (this test's own temp directories)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if path.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return [p for p in pids if p != os.getpid()]


class Node:
    """One `ray start` node with its own temp directory (and, for workers, HOME and cwd)."""

    def __init__(self, root: Path, name: str, *args: str, home: bool = False):
        self.temp = root / name
        self.temp.mkdir()
        env = dict(os.environ)
        env.pop("FUSETRAIN_NODE_CACHE", None)
        env.pop("XDG_CACHE_HOME", None)
        cwd = None
        if home:                     # a node of its own: another HOME and working directory
            env["HOME"] = str(root / f"{name}-home")
            cwd = root / f"{name}-cwd"
            os.makedirs(env["HOME"])
            cwd.mkdir()
            from fusetrain.engine import cache   # compiled kernels: not what this test is about
            env["NUMBA_CACHE_DIR"] = str(cache.base_dir())
        self.home = Path(env["HOME"])
        cmd = [RAY, "start", "--node-ip-address=127.0.0.1", f"--temp-dir={self.temp}", "--disable-usage-stats",
               f"--dashboard-agent-listen-port={_free_port()}", "--object-store-memory=200000000", *args]
        # A session of its own: the node's processes are one process group, ended by stop().
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        self.group = proc.pid
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out

    def raylet(self) -> int:
        return next(p for p in _pids_under(str(self.temp))
                    if b"raylet" in Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0])

    def stop(self) -> None:
        for _ in range(3):
            try:
                os.killpg(self.group, signal.SIGKILL)
            except ProcessLookupError:
                pass
            pids = _pids_under(str(self.temp))
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)


@pytest.fixture
def cluster():
    """(head port, start_worker(name) -> Node): a 0-CPU head; worker nodes are added by the test."""
    # One token per process (Ray reads it once): the one a private Ray of this process set, or a new one.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    root = Path(tempfile.mkdtemp(prefix="ft-2n-"))      # short: Ray's socket paths live under it
    nodes = []
    port = _free_port()
    config = '{"health_check_period_ms": 500, "health_check_failure_threshold": 4}'
    try:
        nodes.append(Node(root, "head", "--head", f"--port={port}", "--num-cpus=0", "--include-dashboard=false",
                          f"--system-config={config}"))

        def start_worker(name: str) -> Node:
            nodes.append(Node(root, name, f"--address=127.0.0.1:{port}", "--num-cpus=1", home=True))
            return nodes[-1]

        yield port, start_worker
    finally:
        for node in reversed(nodes):
            node.stop()
        shutil.rmtree(root, ignore_errors=True)


def _wait_cpus(cpus: float, timeout: float = 120.0) -> None:
    import ray
    end = time.monotonic() + timeout
    while ray.cluster_resources().get("CPU", 0.0) != cpus:
        assert time.monotonic() < end, f"the cluster did not reach {cpus} CPUs"
        time.sleep(0.2)


def test_two_nodes_without_a_shared_disk_survive_a_raylet_kill(cluster, monkeypatch):
    from fusetrain.service.ray_executor import RayExecutor
    monkeypatch.delenv("FUSETRAIN_NODE_CACHE", raising=False)    # each node's default: under its HOME
    port, start_worker = cluster
    rec = Recorder()
    # The driver joins while the head is alone, so it is attached to the head's raylet.
    executor = RayExecutor(rec, address=f"127.0.0.1:{port}", max_retries=1, force_grace=2.0, warmup=False)
    try:
        import ray
        head = ray.get_runtime_context().get_node_id()
        node_a = start_worker("a")
        _wait_cpus(1.0)

        x, y = seeds_data()
        # Small jobs of one kind: those queued while the node is busy train in packs there.
        tasks = [admitted(dataset_task(x, y, seeds_spec(epochs=20, seed=seed)), rows=len(x)) for seed in range(6)]
        outcomes = [f.result(timeout=300) for f in [executor.submit(t) for t in tasks]]
        for t, o in zip(tasks, outcomes):
            assert o.status == ex.SUCCEEDED, o
            assert_same_result(o, reference(replace(t, job=None)))
            started = rec.started(t.job_id)[0]
            assert started["node"] != head
            assert Path(started["data_dir"]).is_relative_to(node_a.home)      # the worker node's own cache
        assert (Path(started["data_dir"]) / "datasets" / f"{_dataset(tasks[0])}.npz").exists()

        # A long job on a dataset file; its node's raylet is killed once a checkpoint arrived.
        rng = np.random.default_rng(0)
        lx = rng.normal(size=(1000, 16)).astype(np.float32)
        ly = (lx[:, :1] > 0).astype(np.float32)
        t = replace(dataset_task(lx, ly, long_spec()), checkpoint_seconds=0.2)
        future = executor.submit(t)
        rec.wait_for(lambda: rec.checkpoints(t.job_id) >= 1, timeout=120)
        os.kill(node_a.raylet(), signal.SIGKILL)
        killed = time.monotonic()
        node_b = start_worker("b")
        rec.wait_for(lambda: len(rec.started(t.job_id)) == 2, timeout=180)
        recovery = time.monotonic() - killed
        events = rec.events[t.job_id]
        second = [i for i, (k, _) in enumerate(events) if k == ex.STARTED][1]
        rec.wait_for(lambda: sum(len(p) for k, p in rec.events[t.job_id][second:] if k == ex.EPOCHS) >= 3)
        assert executor.cancel(t.job_id) == ex.CANCEL_SIGNALLED
        outcome = future.result(timeout=60)
        print(f"\nrecovery after the raylet kill: {recovery:.2f} s (a new node joined, attempt 2 started)")
        assert outcome.status == ex.CANCELLED and outcome.attempt == 2, outcome
        assert Path(rec.started(t.job_id)[1]["data_dir"]).is_relative_to(node_b.home)
        first_epoch = next(p[0, 0] for k, p in rec.events[t.job_id][second:] if k == ex.EPOCHS and len(p))
        assert first_epoch > 1
        planned = long_spec(epochs=outcome.result["epochs_run"])
        planned.data.train.ClearField("x")
        planned.data.train.ClearField("y")
        planned.data.train.dataset_id = _dataset(t)
        assert_same_result(outcome, reference(replace(t, spec=planned.SerializeToString())), same_status=False)
    finally:
        executor.close(grace=1.0)


def _dataset(t: ex.Task) -> str:
    from fusetrain.v1 import job_pb2
    return job_pb2.JobSpec.FromString(t.spec).data.train.dataset_id
