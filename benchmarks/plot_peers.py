"""Plot samples/s per shape for fusetrain and each peer (log scale) from compare.py's JSON.

    python benchmarks/compare.py --json compare.json      # the side-by-side run (make compare)
    python benchmarks/plot_peers.py compare.json           # writes docs/peers.png
    python benchmarks/plot_peers.py compare.json -o out.png

Reads the report that `compare.py --json PATH` writes: `rows[library][shape]` holds each
library's best round (`samples_per_s`, or `error` when that library failed on the shape),
`shapes[shape]` the architecture and data. One group of bars per shape, one bar per library,
each labelled with its figure; a library that failed or was skipped on a shape gets "n/a".
Needs matplotlib (the .[bench] extra).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_OUT = REPO / "docs" / "peers.png"

ORDER = ["fusetrain", "torch", "jax", "sklearn"]
NAMES = {"fusetrain": "fusetrain", "torch": "PyTorch eager", "jax": "JAX jit+scan", "sklearn": "scikit-learn"}
COLORS = {"fusetrain": "#d62728", "torch": "#1f77b4", "jax": "#2ca02c", "sklearn": "#ff7f0e"}


def si(value: float) -> str:
    """12.4M, 91.2k, 950."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            v = value / scale
            return f"{v:.3g}{unit}" if v < 100 else f"{v:.0f}{unit}"
    return f"{value:.3g}"


def series(report: dict) -> tuple[list[str], list[str], dict]:
    """(shapes, libraries, {library: [samples/s or None per shape]}) from a compare report."""
    shapes = list(report.get("shapes") or {})
    rows = report.get("rows") or {}
    libraries = [n for n in ORDER if n in rows] + sorted(n for n in rows if n not in ORDER and n != "baseline")
    values = {}
    for lib in libraries:
        values[lib] = []
        for shape in shapes:
            row = rows[lib].get(shape)
            ok = row is not None and "error" not in row and row.get("samples_per_s", 0) > 0
            values[lib].append(float(row["samples_per_s"]) if ok else None)
    return shapes, libraries, values


def subtitle(report: dict) -> str:
    parts = [report.get("date", ""), f"{report.get('threads', '?')} thread(s)",
             f"best of {report.get('repeat', '?')} round(s)"]
    if report.get("quick"):
        parts.append("--quick (a tenth of the epochs: not for quoting)")
    if report.get("foreign_load", 0) > 0.25:
        parts.append(f"other processes kept {report['foreign_load']:.1f} cores busy")
    return ", ".join(p for p in parts if p)


def plot(report: dict, out: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes, libraries, values = series(report)
    if not shapes or not libraries:
        raise SystemExit("the report has no shapes or no library rows: nothing to plot")
    width = 0.8 / len(libraries)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.9 * len(shapes)), 4.8), dpi=120)
    present = [v for vs in values.values() for v in vs if v]
    floor = min(present) / 3 if present else 1.0
    for i, lib in enumerate(libraries):
        xs = [k + (i - (len(libraries) - 1) / 2) * width for k in range(len(shapes))]
        for x, v in zip(xs, values[lib]):
            if v is None:
                ax.text(x, floor * 1.15, "n/a", ha="center", va="bottom", fontsize=7, rotation=90, color="grey")
                continue
            ax.bar(x, v, width * 0.92, color=COLORS.get(lib, None), label=NAMES.get(lib, lib))
            ax.text(x, v * 1.08, si(v), ha="center", va="bottom", fontsize=7, rotation=90)
    # One legend entry per library, in bar order.
    handles, labels = ax.get_legend_handles_labels()
    seen = {}
    for h, lab in zip(handles, labels):
        seen.setdefault(lab, h)
    ax.legend(seen.values(), seen.keys(), fontsize=8, loc="upper right", frameon=False)
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor, top=max(present) * 8 if present else 10)
    info = report.get("shapes") or {}
    ax.set_xticks(range(len(shapes)))
    ax.set_xlim(-0.5, len(shapes) - 0.5)
    ax.set_xticklabels([f"{s}\n{'-'.join(str(n) for n in info.get(s, {}).get('sizes', []))}" for s in shapes],
                       fontsize=9)
    ax.set_ylabel("training samples/s (log scale, higher is better)")
    ax.set_title("fusetrain against its peers: plain SGD, same data and initial weights\n"
                 + textwrap.fill(subtitle(report), 110), fontsize=10)
    ax.grid(axis="y", which="major", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("report", type=Path, help="JSON written by benchmarks/compare.py --json PATH")
    p.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT, help=f"PNG to write (default {DEFAULT_OUT.relative_to(REPO)})")
    args = p.parse_args(argv)
    report = json.loads(args.report.read_text())
    out = plot(report, args.output)
    shapes, libraries, values = series(report)
    for lib in libraries:
        figures = ", ".join(f"{s} {si(v) if v else 'n/a'}" for s, v in zip(shapes, values[lib]))
        print(f"{NAMES.get(lib, lib):14s} {figures}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
