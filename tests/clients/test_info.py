"""`fusetrain info`: this machine's kernel cache without compiling anything; with --server, a server's warm-up."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from fusetrain import engine
from fusetrain.engine import cache


def info(*argv: str, cache_base: Path) -> tuple[str, float]:
    """Run `fusetrain info ARGV` in a fresh process with $NUMBA_CACHE_DIR = cache_base; (stdout, seconds)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_base)}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "fusetrain.client.cli", "info", *argv], capture_output=True,
                       text=True, env=env, timeout=120)
    seconds = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    return r.stdout, seconds


def files(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_info_names_the_cache_numba_cache_dir_selects_and_compiles_nothing(tmp_path):
    base = tmp_path / "empty"
    out, seconds = info(cache_base=base)
    folder = base / f"engine-{cache.source_digest()}"
    assert f"kernel cache  {folder}\n" in out and "$NUMBA_CACHE_DIR" in out
    assert "float32     not compiled" in out and "float64     not compiled" in out
    assert "threading layer" in out and "numba " in out and "BLAS " in out
    assert files(base) == {}          # nothing compiled, nothing written (Numba makes the empty folders)
    assert seconds < 10               # a compile of the float32 kernels alone takes tens of seconds here
    doc = json.loads(info("--json", cache_base=base)[0])
    assert doc["kernel_cache"]["directory"] == str(folder) and doc["kernel_cache"]["base_from"] == "NUMBA_CACHE_DIR"
    assert {d: v["compiled"] for d, v in doc["kernel_cache"]["dtypes"].items()} == {"float32": False, "float64": False}
    assert doc["versions"]["numba"] and doc["threads"]["threading_layer"] in ("omp", "tbb", "workqueue")
    assert files(base) == {}


def test_info_sees_a_filled_cache_and_changes_none_of_it(tmp_path):
    engine.warmup(("float32", "float64"))     # the shared cache holds both (loaded, or compiled once)
    base = tmp_path / "filled"
    shutil.copytree(cache.cache_dir(), base / cache.cache_dir().name, ignore=shutil.ignore_patterns("*.lock"))
    before = files(base)
    doc = json.loads(info("--json", cache_base=base)[0])
    dtypes = doc["kernel_cache"]["dtypes"]
    assert {d: v["compiled"] for d, v in dtypes.items()} == {"float32": True, "float64": True}
    assert "predict_rows" in dtypes["float32"]["kernels"]
    out, _ = info(cache_base=base)
    assert "float32     compiled: " in out and "float64     compiled: " in out
    assert files(base) == before


def test_info_with_server_prints_its_kernel_warm_up(cli):
    code, out, _ = cli("info", "--json")
    assert code == 0
    kernels = {k["dtype"]: k for k in json.loads(out)["kernels"]}
    assert kernels["float32"]["state"] == "ready" and kernels["float32"]["workers_ready"] >= 1
    code, out, _ = cli("info")
    assert code == 0 and "  kernels       float32 ready in " in out and " of 2 workers" in out
