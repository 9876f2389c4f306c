"""`make bench-compare` fails on a deliberately slowed engine (opt-in: FUSETRAIN_ASV_REGRESSION=1).

In a scratch clone of the repository (the working tree is never touched), one commit adds
a 20 ms sleep to every `engine.train` call; `make bench-compare BASE=HEAD~1` then has asv
build and install both commits in its own virtualenv, run the tiny and small training
benchmarks on each and compare. The sleep makes tiny (~5 ms) several times slower and
small (~30 ms) about 1.7x slower, far beyond the 1.2 factor: asv must report them and
the target must exit non-zero. Takes a few minutes (a virtualenv with the project's
dependencies, two installs, two cold compiles), hence opt-in:

    FUSETRAIN_ASV_REGRESSION=1 .venv/bin/python -m pytest -s tests/benchmarks/test_asv_regression.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent

pytestmark = pytest.mark.skipif(os.environ.get("FUSETRAIN_ASV_REGRESSION", "") in ("", "0"),
                                reason="builds asv environments for two commits (minutes): "
                                       "set FUSETRAIN_ASV_REGRESSION=1 to run")

SLOWDOWN = '''

# Deliberate slowdown for the asv regression test (never committed to the real repository).
_train_unslowed = train


def train(*args, **kwargs):
    time.sleep(0.02)
    return _train_unslowed(*args, **kwargs)
'''

BENCH = r"TrainShapes.time_train\('(tiny|small)', 'float32', 1\)"


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_bench_compare_flags_a_slowed_engine(tmp_path):
    if not (VENV / "bin" / "asv").exists():
        pytest.skip("asv is not installed (pip install -e '.[bench]')")
    clone = tmp_path / "fusetrain"
    _git(tmp_path, "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone))
    for who in (("user.name", "asv regression test"), ("user.email", "asv-test@localhost")):
        _git(clone, "config", *who)
    # The suite, Makefile and pyproject as they are in the working tree: the test checks what is
    # being edited, and the same pyproject lets make find this .venv's install stamps.
    for name in ("Makefile", "pyproject.toml", "benchmarks/asv.conf.json"):
        shutil.copy(REPO / name, clone / name)
    shutil.rmtree(clone / "benchmarks" / "benchmarks", ignore_errors=True)
    shutil.copytree(REPO / "benchmarks" / "benchmarks", clone / "benchmarks" / "benchmarks",
                    ignore=shutil.ignore_patterns("__pycache__"))
    _git(clone, "add", "Makefile", "pyproject.toml", "benchmarks")
    _git(clone, "commit", "--quiet", "--allow-empty", "-m", "base: the working tree's suite and Makefile")
    trainer = clone / "engine" / "trainer.py"
    trainer.write_text(trainer.read_text() + SLOWDOWN)
    _git(clone, "commit", "--quiet", "-am", "engine: 20 ms sleep in every train() call")

    env = dict(os.environ, BENCH=BENCH)
    env.setdefault("NUMBA_CACHE_DIR", str(tmp_path / "numba-cache"))
    make = ["make", "--no-print-directory", "bench-compare", "BASE=HEAD~1", f"VENV={VENV}"]
    os.utime(clone / "pyproject.toml", (0, 0))   # older than this .venv's install stamps
    dry = subprocess.run(make + ["-n"], cwd=clone, env=env, capture_output=True, text=True).stdout
    if "pip install" in dry:      # never install the clone into this .venv
        pytest.skip("this .venv is not installed from the current pyproject.toml: run `make bench` first")
    proc = subprocess.run(make, cwd=clone, env=env, capture_output=True, text=True, timeout=1800)
    out = proc.stdout + proc.stderr
    print(out)
    assert proc.returncode != 0, out
    assert "PERFORMANCE DECREASED" in out, out
    for shape in ("tiny", "small"):
        assert f"bench_engine.TrainShapes.time_train('{shape}', 'float32', 1)" in out, out
