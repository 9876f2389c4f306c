"""The comparison's peak-RSS helper, checked on trivial child processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import compare_memory  # noqa: E402

MIB = 2**20

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")


def _child(body: str) -> dict:
    """Run `body` in a fresh Python that then prints its own RSS figures as JSON."""
    code = (f"import sys, json; sys.path.insert(0, {str(BENCH)!r}); import compare_memory as m\n{body}\n"
            "print(json.dumps({'peak': m.own_peak_rss(), 'now': m.own_rss()}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_peak_counts_memory_the_child_touched_and_then_freed():
    idle = _child("pass")
    busy = _child("b = bytearray(256 * 2**20)\nfor i in range(0, len(b), 4096): b[i] = 1\ndel b")
    assert busy["peak"] >= idle["peak"] + 240 * MIB
    assert busy["now"] < busy["peak"] - 200 * MIB                   # freed again, but the peak stays


def test_a_child_does_not_inherit_the_parents_peak():
    # ru_maxrss would report at least the parent's RSS at the fork; VmHWM starts afresh at exec.
    ballast = bytearray(300 * MIB)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    assert compare_memory.own_peak_rss() >= 300 * MIB
    child = _child("pass")
    del ballast
    assert child["peak"] < 150 * MIB


def test_own_rss_is_at_most_the_peak_in_this_process():
    now, peak = compare_memory.own_rss(), compare_memory.own_peak_rss()
    assert 0 < now <= peak


def test_a_memory_worker_reports_its_own_figures(tmp_path):
    # The whole path: compare_runner.Runner starts `compare.py --worker memory` for one library
    # and one shape; the worker answers RSS before training and its peak after.
    from dataclasses import replace

    from compare_runner import Runner
    from compare_shapes import SHAPES, save

    shape = replace(SHAPES["tiny"], epochs=10)
    save(shape, tmp_path / "tiny.npz")
    job = {"threads": 1, "shapes": {"tiny": shape.to_dict()}, "data": {"tiny": str(tmp_path / "tiny.npz")},
           "baseline": None, "library": "fusetrain"}
    out = compare_memory.run(Runner(tmp_path, wait=0, retries=0), ["fusetrain"], {"tiny": shape}, job)
    row = out["fusetrain"]["tiny"]
    assert "error" not in row, row
    assert 20 * MIB < row["import_rss_bytes"] < row["peak_rss_bytes"] < 2048 * MIB
    assert row["seconds"] > 0
