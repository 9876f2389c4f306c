"""benchmarks/plot_peers.py: reads compare.py's JSON report and writes a PNG (log-scale bars)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("plot_peers", REPO / "benchmarks" / "plot_peers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The parts of a compare.py --json report the plot reads (see compare.py's `report`).
REPORT = {
    "date": "2026-11-23", "threads": 2, "repeat": 3, "quick": False, "foreign_load": 0.0,
    "shapes": {"tiny": {"sizes": [2, 2, 1]}, "large": {"sizes": [784, 512, 256, 10]}},
    "rows": {
        "fusetrain": {"tiny": {"samples_per_s": 8.1e6, "seconds": 0.005},
                      "large": {"samples_per_s": 5.5e4, "seconds": 2.2}},
        "torch": {"tiny": {"samples_per_s": 2.0e4, "seconds": 2.0},
                  "large": {"error": "RuntimeError: out of memory"}},
        "sklearn": {"tiny": {"samples_per_s": 9.0e4, "seconds": 0.4}},
    },
}


def test_series_orders_libraries_and_marks_failures():
    shapes, libraries, values = _load().series(REPORT)
    assert shapes == ["tiny", "large"]
    assert libraries == ["fusetrain", "torch", "sklearn"]
    assert values["fusetrain"] == [8.1e6, 5.5e4]
    assert values["torch"] == [2.0e4, None]        # an error row is n/a
    assert values["sklearn"] == [9.0e4, None]      # a missing row is n/a


def test_main_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="matplotlib comes with the .[bench] extra")
    report = tmp_path / "compare.json"
    report.write_text(json.dumps(REPORT))
    out = tmp_path / "peers.png"
    assert _load().main([str(report), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "fusetrain      tiny 8.1M, large 55k" in printed
    assert "PyTorch eager  tiny 20k, large n/a" in printed
