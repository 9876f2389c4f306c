"""The asv suites run: every benchmark's setup, body and teardown once, on tiny data.

This is CI's check that no benchmark is broken (timings are never judged here). Each suite
module under benchmarks/benchmarks/ is imported the way asv imports it (as the package
`benchmarks`), and every benchmark method of every class runs once per parameter
combination with FUSETRAIN_BENCH_SMOKE=1: at most 256 rows, one epoch, a compile child
with the JIT off, a two-job service batch. When asv itself is installed (the .[bench]
extra), `asv check` also discovers the suite with the project's asv.conf.json.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / "benchmarks"
SUITE_DIR = BENCH_DIR / "benchmarks"
CONF = BENCH_DIR / "asv.conf.json"
PREFIXES = ("time_", "track_", "peakmem_", "mem_", "timeraw_")


def _suite_modules() -> list[str]:
    return sorted(f"benchmarks.{p.stem}" for p in SUITE_DIR.glob("bench_*.py"))


def _import(name: str):
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    return importlib.import_module(name)


def _benchmarks() -> list[tuple[str, str, str]]:
    """(module, class, method) of every benchmark, found as asv finds them (name prefixes)."""
    found = []
    for modname in _suite_modules():
        module = _import(modname)
        for cname, cls in vars(module).items():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            for mname in sorted(vars(cls)):
                if mname.startswith(PREFIXES) and callable(getattr(cls, mname)):
                    found.append((modname, cname, mname))
    return found


BENCHMARKS = _benchmarks()


def test_every_suite_is_found():
    names = {f"{m.split('.')[-1]}.{c}" for m, c, _ in BENCHMARKS}
    for expected in ("bench_engine.TrainShapes", "bench_engine.TrainShapesMemory",
                     "bench_compile.CompileCold", "bench_compile.CompileCached",
                     "bench_compile.CompileJobCold", "bench_compile.CompileJobCached",
                     "bench_compile.ServerColdStart",
                     "bench_service.ServiceRoundTrip", "bench_service.ServiceBatch"):
        assert expected in names


def test_engine_suite_covers_the_issue_matrix():
    engine = _import("benchmarks.bench_engine")
    shapes, dtypes, threads = engine.TrainShapes.params
    assert shapes == ["tiny", "small", "medium", "large", "wide"]
    assert dtypes == ["float32", "float64"] and threads == [1, 2]
    for prefix in ("time_", "track_"):
        assert any(m.startswith(prefix) for m in vars(engine.TrainShapes))
    assert any(m.startswith("peakmem_") for m in vars(engine.TrainShapesMemory))


def test_config_commits_results_and_ignores_the_rest():
    """Results (the history) go to benchmarks/results/ (committed); environments and HTML to .asv/."""
    text = CONF.read_text()
    conf = json.loads("\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//")))
    assert conf["results_dir"] == "results"
    for key in ("env_dir", "html_dir"):
        assert conf[key].startswith(".asv/"), key
    ignored = (REPO / ".gitignore").read_text().split()
    assert "benchmarks/.asv/" in ignored and not any(line.startswith("benchmarks/results") for line in ignored)
    assert conf["repo"] == ".." and conf["benchmark_dir"] == "benchmarks"
    machine = json.loads((BENCH_DIR / "results" / "ci-2core" / "machine.json").read_text())
    assert machine["machine"] == "ci-2core" and machine["num_cpu"] == "2"
    for field in ("arch", "cpu", "os", "ram"):
        assert machine[field], field


def test_every_bench_target_names_the_machine_profile():
    """Every make bench* target that runs asv records under --machine $(MACHINE) (ci-2core)."""
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^MACHINE \?= ci-2core$", makefile, re.M)
    runs = re.findall(r"\$\(ASV\) (?:run|continuous)\b[^\n]*", makefile)
    assert len(runs) >= 4, runs           # the existing-environment run, history, backfill, compare
    assert all("--machine $(MACHINE)" in line for line in runs), runs
    for target in ("bench", "bench-record", "bench-history", "bench-backfill", "bench-compare"):
        assert re.search(rf"^{target}: bench-machine$", makefile, re.M), target


@pytest.mark.parametrize("modname,cname,mname", BENCHMARKS,
                         ids=[f"{m.split('.')[-1]}.{c}.{f}" for m, c, f in BENCHMARKS])
def test_benchmark_runs_once(modname, cname, mname, monkeypatch, tmp_path):
    monkeypatch.setenv("FUSETRAIN_BENCH_SMOKE", "1")
    monkeypatch.chdir(tmp_path)                  # asv runs benchmarks in a scratch directory
    cls = getattr(_import(modname), cname)
    bench = cls()
    cache = (bench.setup_cache(),) if hasattr(cls, "setup_cache") else ()
    params = list(itertools.product(*getattr(cls, "params", []))) or [()]
    for p in params:
        args = (*cache, *p)
        if hasattr(bench, "setup"):
            try:
                bench.setup(*args)
            except NotImplementedError as exc:   # asv's skip; only real data may be missing
                assert "real data absent" in str(exc), f"{cname}{p} skipped: {exc}"
                continue
        try:
            value = getattr(bench, mname)(*args)
        finally:
            if hasattr(bench, "teardown"):
                bench.teardown(*args)
        if mname.startswith("track_"):
            assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (p, value)


def test_asv_check_discovers_the_suite():
    asv = Path(sys.executable).with_name("asv")
    if not asv.exists():
        pytest.skip("asv is not installed (pip install -e '.[bench]', or make bench)")
    proc = subprocess.run([str(asv), "--config", str(CONF), "check", "-E", f"existing:{sys.executable}"],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No problems found" in proc.stdout, proc.stdout


def test_compare_regex_leaves_out_higher_is_better():
    """make bench-compare's default --bench regex: everything but the *_per_second figures."""
    makefile = (REPO / "Makefile").read_text()
    pattern = re.search(r"^export COMPARE_BENCH := (\S+?)\$\(if", makefile, re.M).group(1)
    assert re.search(pattern, "bench_engine.TrainShapes.time_train('tiny', 'float32', 1)")
    assert re.search(pattern, "bench_compile.CompileCold.track_cold_seconds('float32', 'train')")
    assert not re.search(pattern, "bench_engine.TrainShapes.track_samples_per_second('tiny', 'float32', 1)")
    assert not re.search(pattern, "bench_service.ServiceBatch.track_batch_jobs_per_second")
