"""Compilation and cold start: the engine's kernels cold and cached, per configuration and per job
family, and a server's start on an empty kernel cache.

Kernel groups (`CompileCold`, `CompileCached`): a configuration is a dtype and a kernel family: "train" (one model: `engine.train`,
`predict`) or "train_many" (many models at once). Each figure is the seconds that
`fusetrain.engine.warm.ensure_compiled(dtype[, many=True])` reports in a fresh Python
process whose NUMBA_CACHE_DIR is a new empty directory (cold) or one that an earlier
process filled (cached). A fresh process is the only honest way: Numba keeps compiled
code in memory, so a second call in the same process costs nothing. The seconds to import
the engine are left out (they are the same whatever the cache holds).

Job families (`CompileJobCold`, `CompileJobCached`): what a user's first job pays. A fresh
process with an empty (or filled) NUMBA_CACHE_DIR imports the engine and calls `engine.train`
once on a small job of the family; the figure is that first call's wall time less the
engine's own `train_seconds` (the epochs: a few milliseconds here), i.e. compiling or loading
plus validation and allocation. Families: `sgd_medium` (plain SGD on the comparison's medium
shape 64-128-10 relu/softmax, batch 32), `adam_small` (Adam on the small shape 7-5-3 sigmoid,
batch 16), `xor_tiny` (2-2-1 sigmoid XOR, full batch). Float32. The job is built from plain
`ModelSpec`/`OptimizerSpec`/`TrainConfig` arguments that every commit since the first engine
accepts, so the history of these figures goes back to the first commit with an engine.

Server cold start (`ServerColdStart`): `fusetrain serve` on a free 127.0.0.1 port with an empty
kernel cache (NUMBA_CACHE_DIR a new directory) and a new data directory, 2 workers x 1 thread;
seconds from starting the process until grpc.health.v1 answers SERVING. The server is stopped
(SIGTERM) and both directories removed afterwards.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import common
from .common import DTYPES

KINDS = ["train", "train_many"]
FAMILIES = ["sgd_medium", "adam_small", "xor_tiny"]

# A job per family: sizes (I, hidden..., O), activations, loss, optimizer, rows, batch (0: full).
# Epochs stay at 1: the figure is the first call's cost, not training.
JOBS = {
    "sgd_medium": dict(sizes=[64, 128, 10], hidden="relu", output="softmax", loss="softmax_cross_entropy",
                       optimizer="sgd", learning_rate=0.05, rows=256, batch=32),
    "adam_small": dict(sizes=[7, 5, 3], hidden="sigmoid", output="sigmoid", loss="half_sse",
                       optimizer="adam", learning_rate=0.01, rows=210, batch=16),
    "xor_tiny": dict(sizes=[2, 2, 1], hidden="sigmoid", output="sigmoid", loss="half_sse",
                     optimizer="sgd", learning_rate=0.5, rows=4, batch=0),
}

_JOB_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import fusetrain.engine as e
t1 = time.perf_counter()
job = json.loads(sys.argv[1])
sizes, rows = job["sizes"], job["rows"]
if sizes[0] == 2 and sizes[-1] == 1:
    x = np.tile(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32), (-(-rows // 4), 1))[:rows]
    y = (x[:, :1] != x[:, 1:]).astype(np.float32)
else:
    rng = np.random.default_rng(1234)
    x = rng.random((rows, sizes[0]), dtype=np.float32)
    y = np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], rows)]
layers = [e.LayerSpec(u, job["output"] if k == len(sizes) - 2 else job["hidden"])
          for k, u in enumerate(sizes[1:])]
model = e.ModelSpec(sizes[0], layers, loss=job["loss"], seed=1, dtype="float32")
optimizer = e.OptimizerSpec(job["optimizer"], learning_rate=job["learning_rate"])
config = e.TrainConfig(epochs=1, batch_size=job["batch"], shuffle=job["batch"] > 0, seed=1, threads=1)
t2 = time.perf_counter()
result = e.train(model, optimizer, config, x, y)
t3 = time.perf_counter()
print(json.dumps({"import_seconds": t1 - t0, "first_call_seconds": t3 - t2,
                  "train_seconds": result.train_seconds, "engine_compile_seconds": result.compile_seconds}))
"""

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from fusetrain.engine.warm import ensure_compiled
t1 = time.perf_counter()
dtype, kind = sys.argv[1], sys.argv[2]
seconds = ensure_compiled(dtype, many=True) if kind == "train_many" else ensure_compiled(dtype)
print(json.dumps({"import_seconds": t1 - t0, "compile_seconds": seconds}))
"""


def _check_engine() -> None:
    common.engine_or_skip()
    if importlib.util.find_spec("fusetrain.engine.warm") is None:
        raise NotImplementedError("fusetrain.engine.warm (ensure_compiled) is absent at this commit")


def compile_in_child(cache_dir: str, dtype: str, kind: str, timeout: float = 300) -> dict:
    """Run ensure_compiled in a new process with NUMBA_CACHE_DIR=cache_dir; its JSON figures.

    Under the tooling test (FUSETRAIN_BENCH_SMOKE=1) the child runs with NUMBA_DISABLE_JIT=1:
    the plumbing is what that test checks, not a 15 s compilation.
    """
    proc = subprocess.run([sys.executable, "-c", _CHILD, dtype, kind], env=_child_env(cache_dir), capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise RuntimeError(f"compile child ({dtype}, {kind}) exited with {proc.returncode}: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _child_env(cache_dir: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    env.pop("NUMBA_DISABLE_JIT", None)
    if common.smoke():
        env["NUMBA_DISABLE_JIT"] = "1"
    return env


def job_in_child(cache_dir: str, family: str, timeout: float = 300) -> dict:
    """A family's job, once, in a new process with NUMBA_CACHE_DIR=cache_dir; its JSON figures.

    `first_job_seconds` is the first train call's wall time less its train_seconds. Under the
    tooling test (FUSETRAIN_BENCH_SMOKE=1) the child runs with the JIT off.
    """
    proc = subprocess.run([sys.executable, "-c", _JOB_CHILD, json.dumps(JOBS[family])],
                          env=_child_env(cache_dir), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise RuntimeError(f"job child ({family}) exited with {proc.returncode}: {tail}")
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["first_job_seconds"] = figures["first_call_seconds"] - figures["train_seconds"]
    return figures


class CompileCold:
    """Seconds to compile every kernel of a configuration from nothing (an empty cache)."""

    params = [DTYPES, KINDS]
    param_names = ["dtype", "kind"]
    processes = 1          # one cold compile (~10-20 s) per configuration and run is enough
    timeout = 600

    def setup(self, dtype, kind):
        _check_engine()
        self.tmp = tempfile.TemporaryDirectory(prefix="fusetrain-numba-cold-")

    def teardown(self, dtype, kind):
        self.tmp.cleanup()

    def track_cold_seconds(self, dtype, kind):
        return compile_in_child(self.tmp.name, dtype, kind)["compile_seconds"]

    track_cold_seconds.unit = "seconds"


class CompileCached:
    """Seconds to load every kernel of a configuration from a filled Numba cache.

    `setup_cache` fills one cache directory (in asv's per-class working directory) for
    every configuration once; each measurement is a new process reading it.
    """

    params = [DTYPES, KINDS]
    param_names = ["dtype", "kind"]
    timeout = 600

    def setup_cache(self):
        try:
            _check_engine()
        except NotImplementedError as exc:
            return f"skip: {exc}"      # setup() turns this into a skip (a failing setup_cache fails)
        cache = str(Path("numba-cache").resolve())
        for dtype in DTYPES:
            for kind in KINDS:
                compile_in_child(cache, dtype, kind)
        return cache

    setup_cache.timeout = 900

    def setup(self, cache, dtype, kind):
        if cache.startswith("skip: "):
            raise NotImplementedError(cache[len("skip: "):])

    def track_cached_seconds(self, cache, dtype, kind):
        return compile_in_child(cache, dtype, kind)["compile_seconds"]

    track_cached_seconds.unit = "seconds"


class CompileJobCold:
    """Seconds a family's first job spends before training, in a fresh process on an empty cache."""

    params = [FAMILIES]
    param_names = ["family"]
    processes = 1
    timeout = 600

    def setup(self, family):
        common.engine_or_skip()
        self.tmp = tempfile.TemporaryDirectory(prefix="fusetrain-numba-cold-")

    def teardown(self, family):
        self.tmp.cleanup()

    def track_cold_seconds(self, family):
        return job_in_child(self.tmp.name, family)["first_job_seconds"]

    track_cold_seconds.unit = "seconds"


class CompileJobCached:
    """The same with a cache that an earlier process filled by running the same job.

    `setup_cache` only names the root; each family's cache is filled on first use (in
    `setup`, untimed), so narrowing the run to one family compiles that family only.
    """

    params = [FAMILIES]
    param_names = ["family"]
    processes = 1
    timeout = 900

    def setup_cache(self):
        return str(Path("numba-job-cache").resolve())

    def setup(self, root, family):
        common.engine_or_skip()
        self.cache = Path(root) / family
        marker = self.cache / ".filled"
        if not marker.exists():
            self.cache.mkdir(parents=True, exist_ok=True)
            job_in_child(str(self.cache), family)
            marker.touch()

    def track_cached_seconds(self, root, family):
        return job_in_child(str(self.cache), family)["first_job_seconds"]

    track_cached_seconds.unit = "seconds"


class ServerColdStart:
    """Seconds from starting `fusetrain serve` (empty kernel cache) until health answers SERVING."""

    processes = 1
    repeat = 1
    timeout = 600

    def setup(self):
        from .bench_service import _check_service
        _check_service()
        common.engine_or_skip()

    def track_cold_start_seconds(self):
        from .bench_service import ServiceServer
        with tempfile.TemporaryDirectory(prefix="fusetrain-numba-serve-") as cache:
            # The tooling test keeps the user's cache (a server cannot run with the JIT off).
            env = None if common.smoke() else dict(os.environ, NUMBA_CACHE_DIR=cache)
            t0 = time.perf_counter()
            server = ServiceServer(env=env)
            seconds = time.perf_counter() - t0
            server.stop()
        return seconds

    track_cold_start_seconds.unit = "seconds"
