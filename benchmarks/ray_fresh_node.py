"""The first jobs on a fresh Ray node (a benchmark, not a test): `make bench-ray-node`.

A head (0 CPUs) and a worker node (2 CPUs) start on this machine with `ray start`, the worker node
with a HOME of its own: an empty kernel cache (the default, ~/.cache/fusetrain/numba, under that
HOME) and an empty node file cache, as on a machine that has never run fusetrain. The server's
executor joins the head without warming up (as when a node joins a running cluster). Then:
  first job     one seeds job (7-5-3, 20 epochs): submit -> STARTED -> outcome; the node's first
                worker compiles what the job needs into the node's kernel cache
  2 at once     two jobs of another optimizer (Adam) at once, in two worker processes: one
                compiles, the other waits on the cache's lock and loads what it wrote
  again         the first job's kind once more: its kernels are loaded, nothing compiles
Each line: submit to STARTED, STARTED to outcome, and the compile seconds the job reports.
The cluster is stopped with `ray stop` at the end (which stops every Ray of this user here).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from fusetrain.service import executor as ex  # noqa: E402
from fusetrain.service.config import ServiceLimits  # noqa: E402
from helpers import seeds_spec  # noqa: E402

RAY = str(Path(sys.executable).parent / "ray")


def seeds_task(n: int, data_dir: str, kind: str) -> ex.Task:
    spec = seeds_spec(epochs=20, seed=n, batch_size=16, kind=kind, learning_rate=0.3 if kind == "sgd" else 0.01)
    return ex.Task(job_id=f"fresh-{n}", attempt=1, spec=spec.SerializeToString(), data_dir=data_dir, threads=1,
                   time_limit=600.0, checkpoint_seconds=60.0, limits=ServiceLimits(), threads_per_worker=1)


class Clock:
    """on_progress: when each job STARTED."""

    def __init__(self):
        self.started, self.lock = {}, threading.Lock()

    def __call__(self, job_id, kind, payload):
        if kind == ex.STARTED:
            with self.lock:
                self.started[job_id] = time.perf_counter()


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="fusetrain-fresh-node-"))
    port = 6391
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    for var in ("NUMBA_CACHE_DIR", "FUSETRAIN_NODE_CACHE", "XDG_CACHE_HOME"):
        env.pop(var, None)
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats", "--object-store-memory=200000000"]
    home = root / "node-home"
    home.mkdir()
    print(f"first jobs on a fresh Ray node (an empty kernel cache under its own HOME), "
          f"{os.cpu_count()} cores here, {time.strftime('%Y-%m-%d')}", flush=True)
    try:
        subprocess.run([RAY, "start", "--head", f"--port={port}", "--num-cpus=0", "--include-dashboard=false",
                        f"--temp-dir={root / 'head'}", *common], env=env, check=True, capture_output=True)
        os.environ.update({k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")})
        from fusetrain.service.ray_executor import RayExecutor
        clock = Clock()
        executor = RayExecutor(clock, address=f"127.0.0.1:{port}", warmup=False)
        t0 = time.perf_counter()
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", "--num-cpus=2", *common],
                       env={**env, "HOME": str(home)}, cwd=home, check=True, capture_output=True)
        import ray
        while ray.cluster_resources().get("CPU", 0) < 2:
            time.sleep(0.1)
        print(f"worker node joined in {time.perf_counter() - t0:.2f} s")
        data_dir = str(root / "data")
        n = iter(range(1000))
        print(f"\n{'':<34}{'submit->STARTED':>16}{'STARTED->outcome':>18}{'compile s':>11}")
        for label, kinds in [("first job (SGD, a tiny network)", ["sgd"]), ("2 at once (Adam)", ["adam", "adam"]),
                             ("again (SGD)", ["sgd"])]:
            tasks = [seeds_task(next(n), data_dir, k) for k in kinds]
            sent = time.perf_counter()
            outcomes = [f.result(timeout=600) for f in [executor.submit(t) for t in tasks]]
            done = time.perf_counter()
            for t, o in zip(tasks, outcomes):
                assert o.status == ex.SUCCEEDED, o
                start = clock.started[t.job_id]
                print(f"{label:<34}{start - sent:>15.2f}s{done - start:>17.2f}s{o.result['compile_seconds']:>11.2f}")
        cached = sorted(p.name for p in (home / ".cache" / "fusetrain" / "numba").glob("*"))
        print(f"\nthe node's kernel cache: {', '.join(cached) or 'empty'} under its HOME")
        executor.close()
    finally:
        for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
            os.environ.pop(k, None)
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
