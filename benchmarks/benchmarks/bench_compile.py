"""Engine compilation: cold (empty Numba cache) and cached (load from a filled cache), per configuration.

A configuration is a dtype and a kernel family: "train" (one model: `engine.train`,
`predict`) or "train_many" (many models at once). Each figure is the seconds that
`fusetrain.engine.warm.ensure_compiled(dtype[, many=True])` reports in a fresh Python
process whose NUMBA_CACHE_DIR is a new empty directory (cold) or one that an earlier
process filled (cached). A fresh process is the only honest way: Numba keeps compiled
code in memory, so a second call in the same process costs nothing. The seconds to import
the engine are left out (they are the same whatever the cache holds).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from . import common
from .common import DTYPES

KINDS = ["train", "train_many"]

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
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    env.pop("NUMBA_DISABLE_JIT", None)
    if common.smoke():
        env["NUMBA_DISABLE_JIT"] = "1"
    proc = subprocess.run([sys.executable, "-c", _CHILD, dtype, kind], env=env, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise RuntimeError(f"compile child ({dtype}, {kind}) exited with {proc.returncode}: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
