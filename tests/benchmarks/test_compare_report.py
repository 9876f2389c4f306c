"""The comparison report's memory and convergence columns and tables, rendered from a fixture JSON report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import compare_report  # noqa: E402

MIB = 2**20

# A compare.py --json report cut to two shapes and two libraries; fusetrain's peak on medium is
# above PyTorch's, so the issue-13 target must show a MISSED.
FIXTURE = json.loads("""
{
  "date": "2026-12-02", "threads": 2, "cores": 2, "repeat": 1, "quick": false, "python": "3.11.7",
  "skipped": {}, "baseline": null, "limits": {}, "optimizers": {}, "many": null, "compile": null,
  "peers": {"fusetrain": {"version": "0.1.0"}, "torch": {"version": "2.13.0+cpu"}},
  "shapes": {
    "tiny": {"sizes": [2, 2, 1], "rows": 4, "batch": 4, "epochs": 10000, "hidden": "sigmoid",
             "output": "sigmoid", "loss": "half_sse", "learning_rate": 0.5, "data": "XOR"},
    "medium": {"sizes": [64, 128, 10], "rows": 1797, "batch": 32, "epochs": 50, "hidden": "relu",
               "output": "softmax", "loss": "softmax_cross_entropy", "learning_rate": 0.05,
               "data": "synthetic (fixed seed)"}
  },
  "rows": {
    "fusetrain": {
      "tiny": {"samples_per_s": 8.0e6, "seconds": 0.005, "gflops": 0.22, "loss": 0.00097, "accuracy": 1.0},
      "medium": {"samples_per_s": 1.5e6, "seconds": 0.06, "gflops": 60.9, "loss": 0.5624, "accuracy": 0.755}
    },
    "torch": {
      "tiny": {"samples_per_s": 1.55e4, "seconds": 2.6, "gflops": 0.0, "loss": 0.00097, "accuracy": 1.0},
      "medium": {"samples_per_s": 1.07e5, "seconds": 0.84, "gflops": 4.34, "loss": 0.36, "accuracy": 0.877}
    }
  },
  "memory": {
    "fusetrain": {
      "tiny": {"import_rss_bytes": 125829120, "peak_rss_bytes": 167772160, "seconds": 0.005},
      "medium": {"import_rss_bytes": 125829120, "peak_rss_bytes": 335544320, "seconds": 0.06}
    },
    "torch": {
      "tiny": {"import_rss_bytes": 230686720, "peak_rss_bytes": 314572800, "seconds": 2.6},
      "medium": {"error": "worker memory exited with -9: Killed"}
    }
  },
  "convergence": {
    "fusetrain": {"medium": {"seeds": [1, 2, 3, 4, 5], "loss": [0.56, 0.35, 0.45, 0.40, 0.49],
                             "accuracy": [0.75, 0.88, 0.82, 0.85, 0.80],
                             "loss_mean": 0.45, "loss_sd": 0.08154753215150046,
                             "loss_min": 0.35, "loss_max": 0.56,
                             "accuracy_mean": 0.82, "accuracy_sd": 0.04949747468305833}},
    "torch": {"error": "worker convergence exited with 1: ImportError"}
  }
}
""")


def _render(report=FIXTURE) -> list[str]:
    return compare_report.render(json.loads(json.dumps(report))).splitlines()


def _line(lines, *parts) -> str:
    found = [ln for ln in lines if all(p in ln for p in parts)]
    assert found, f"no line with {parts} in:\n" + "\n".join(lines)
    return found[0]


def test_main_table_prints_peak_rss_and_the_ratio_beside_samples_per_second():
    lines = _render()
    header = _line(lines, "samples/s", "final loss")
    assert header.endswith("acc  peak MiB  MiB ft/x")
    tiny_ft = _line(lines, "tiny 2-2-1", "fusetrain")
    assert tiny_ft.split()[-2:] == ["100.0", "160"]           # 167772160 B = 160 MiB, no ratio on its own row
    torch_rows = [ln for ln in lines if ln.strip().startswith("PyTorch eager")]
    assert torch_rows[0].split()[-3:] == ["100.0", "300", "0.53x"]    # 160 / 300
    assert torch_rows[1].split()[-2:] == ["87.7", "-"]        # its memory worker failed: no MiB, no ratio


def test_memory_table_gives_before_peak_growth_and_error_rows():
    lines = _render()
    start = lines.index(_line(lines, "Peak memory (MiB"))
    table = lines[start + 1:start + 8]
    assert table[0].split() == ["shape", "library", "before", "peak", "peak", "-", "before", "fusetrain/x"]
    assert table[2].split() == ["tiny", "fusetrain", "120", "160", "40"]
    assert table[3].split() == ["PyTorch", "eager", "220", "300", "80", "0.53x"]
    assert table[4].split() == ["medium", "fusetrain", "120", "320", "200"]
    assert table[5].split()[:4] == ["PyTorch", "eager", "error:", "worker"]


def test_issue_13_targets_show_a_miss_and_skip_a_shape_without_figures():
    lines = _render()
    start = lines.index("Targets (issue 13):")
    verdicts = lines[start + 1:]
    assert verdicts == ["  MET     memory on tiny: fusetrain peaks at 160 MiB, PyTorch at 300 MiB (0.53x); "
                        "target <= 1.0x"]
    report = json.loads(json.dumps(FIXTURE))
    report["memory"]["torch"]["medium"] = {"import_rss_bytes": 230686720, "peak_rss_bytes": 268435456}
    lines = _render(report)
    assert "  MISSED  memory on medium: fusetrain peaks at 320 MiB, PyTorch at 256 MiB (1.25x); " \
           "target <= 1.0x" in lines
    assert _line(lines, "medium", "fusetrain", "320", "200")   # the memory table row is still there


def test_convergence_table_gives_mean_sd_and_range_per_library():
    lines = _render()
    start = lines.index(_line(lines, "Convergence over 5 shuffle seeds (1, 2, 3, 4, 5"))
    assert lines[start + 1].split()[:6] == ["shape", "library", "loss", "mean", "±", "sd"]
    row = lines[start + 3]
    assert row.split() == ["medium", "fusetrain", "0.45", "±", "0.082", "82.0", "±", "4.9", "0.35", "-", "0.56"]
    assert lines[start + 4].split()[:4] == ["PyTorch", "eager", "error:", "worker"]
    assert not any("tiny" in ln for ln in lines[start + 1:start + 5])   # full batch: not in the table


def test_report_without_memory_or_convergence_renders_as_before():
    report = json.loads(json.dumps(FIXTURE))
    report["memory"] = report["convergence"] = None
    text = compare_report.render(report)
    assert "Peak memory" not in text and "Convergence over" not in text and "issue 13" not in text
    assert _line(text.splitlines(), "samples/s", "final loss").endswith("final loss    acc")
    medium_torch = [ln for ln in text.splitlines() if ln.strip().startswith("PyTorch eager")][1]
    assert medium_torch.split()[-1] == "87.7"


def test_skip_accepts_the_new_parts_and_refuses_unknown_ones(capsys):
    import pytest

    import compare

    assert compare.parse_args(["--skip", "memory,convergence"]).skip == {"memory", "convergence"}
    assert compare.parse_args(["--skip", "speed, many"]).skip == {"speed", "many"}
    with pytest.raises(SystemExit):
        compare.parse_args(["--skip", "convergance"])
    assert "unknown part(s) to skip convergance" in capsys.readouterr().err
