"""Draw the recorded asv history: samples/s and compile/start seconds per commit.

    python benchmarks/plot_history.py                      # docs/asv-history.png, profile ci-2core
    python benchmarks/plot_history.py -o out.png --machine NAME --results DIR
    python benchmarks/plot_history.py --table              # also print the history as a Markdown table

Reads the result files asv wrote under benchmarks/results/<machine>/ (one per commit and
environment: `make bench-backfill` builds commits in virtualenvs, `make bench-record` measures
HEAD in .venv; both are merged per commit, the later run winning). Commits are ordered by
their commit date. Top panel: `TrainShapes.track_samples_per_second` for float32, 1 thread,
per shape (log scale). Bottom panel (log scale): seconds of `CompileJobCold` per family, of
`CompileJobCached` (sgd_medium) and of `ServerColdStart`. Missing points (a benchmark skipped
or not run at a commit) are gaps. matplotlib with the Agg backend: no display needed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
SAMPLES = "bench_engine.TrainShapes.track_samples_per_second"
SHAPES = ["tiny", "small", "medium", "large", "wide"]
SECONDS = [
    ("bench_compile.CompileJobCold.track_cold_seconds", "'sgd_medium'", "cold: SGD medium"),
    ("bench_compile.CompileJobCold.track_cold_seconds", "'adam_small'", "cold: Adam small"),
    ("bench_compile.CompileJobCold.track_cold_seconds", "'xor_tiny'", "cold: XOR tiny"),
    ("bench_compile.CompileJobCached.track_cached_seconds", "'sgd_medium'", "cached: SGD medium"),
    ("bench_compile.ServerColdStart.track_cold_start_seconds", None, "server cold start to SERVING"),
]


def _values(entry: list, columns: list[str]) -> dict:
    """{param tuple (asv's repr strings) or (): value} of one benchmark's result entry."""
    row = dict(zip(columns, entry))
    result = row.get("result")
    params = row.get("params") or []
    if result is None:
        return {}
    if not params:
        value = result[0] if isinstance(result, list) else result
        return {(): value}
    return dict(zip(itertools.product(*params), result))


def load_history(results_dir: Path, machine: str) -> list[dict]:
    """One dict per commit, oldest first: hash, date (UTC datetime), values {(name, params): value}."""
    commits: dict[str, dict] = {}
    folder = results_dir / machine
    runs = []
    for path in sorted(folder.glob("*.json")):
        if path.name == "machine.json":
            continue
        data = json.loads(path.read_text())
        if "commit_hash" not in data or "results" not in data:
            continue
        started = max((dict(zip(data["result_columns"], e)).get("started_at") or 0
                       for e in data["results"].values()), default=0)
        runs.append((started, data))
    for _, data in sorted(runs, key=lambda r: r[0]):          # later runs override earlier ones
        commit = commits.setdefault(data["commit_hash"], {
            "hash": data["commit_hash"],
            "date": datetime.fromtimestamp(data["date"] / 1000, tz=timezone.utc),
            "values": {},
        })
        for name, entry in data["results"].items():
            for params, value in _values(entry, data["result_columns"]).items():
                if value is not None and value == value:       # asv writes NaN for a failure
                    commit["values"][(name, params)] = value
    return sorted(commits.values(), key=lambda c: c["date"])


def series(history: list[dict]) -> tuple[dict, dict]:
    """({shape: [samples/s or None per commit]}, {label: [seconds or None per commit]})."""
    samples = {}
    for shape in SHAPES:
        key = (SAMPLES, (f"'{shape}'", "'float32'", "1"))
        points = [c["values"].get(key) for c in history]
        if any(p is not None for p in points):
            samples[shape] = points
    seconds = {}
    for name, param, label in SECONDS:
        key = (name, (param,) if param else ())
        points = [c["values"].get(key) for c in history]
        if any(p is not None for p in points):
            seconds[label] = points
    return samples, seconds


def subjects(history: list[dict]) -> dict[str, str]:
    """{hash: first line of its commit message}, where git knows the commit (else empty)."""
    out = {}
    for c in history:
        try:
            out[c["hash"]] = subprocess.run(["git", "log", "-1", "--format=%s", c["hash"]], cwd=REPO,
                                            capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out[c["hash"]] = ""
    return out


def table(history: list[dict]) -> str:
    """The history as Markdown: commit, date, samples/s per shape, seconds per figure."""
    samples, seconds = series(history)
    head = (["commit", "date (UTC)"] + [f"{s} samples/s" for s in samples] + list(seconds))
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, c in enumerate(history):
        cells = [f"`{c['hash'][:8]}`", c["date"].strftime("%Y-%m-%d %H:%M")]
        cells += [f"{v[i]:,.0f}" if v[i] is not None else "n/a" for v in samples.values()]
        cells += [f"{v[i]:.2f}" if v[i] is not None else "n/a" for v in seconds.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(history: list[dict], out: Path, machine: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples, seconds = series(history)
    xs = list(range(len(history)))
    labels = [f"{c['hash'][:7]}\n{c['date']:%m-%d %H:%M}" for c in history]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    for shape, points in samples.items():
        pts = [(x, p) for x, p in zip(xs, points) if p is not None]
        top.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{shape}")
    top.set_yscale("log")
    top.set_ylabel("samples/s (float32, 1 thread)")
    top.set_title(f"fusetrain performance per commit (asv, machine profile {machine})")
    top.grid(True, which="both", alpha=0.3)
    top.legend(title="shape", fontsize=8, loc="best")
    for label, points in seconds.items():
        pts = [(x, p) for x, p in zip(xs, points) if p is not None]
        style = "--" if label.startswith("cached") else "-"
        bottom.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="s", label=label)
    bottom.set_yscale("log")
    bottom.set_ylabel("seconds (log scale)")
    bottom.grid(True, which="both", alpha=0.3)
    bottom.legend(fontsize=8, loc="best")
    bottom.set_xticks(xs)
    bottom.set_xticklabels(labels, fontsize=7)
    bottom.set_xlabel("commit (oldest left; UTC commit date)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=REPO / "docs" / "asv-history.png")
    parser.add_argument("--machine", default="ci-2core")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--table", action="store_true", help="print the history as a Markdown table too")
    args = parser.parse_args(argv)
    history = load_history(args.results, args.machine)
    if not history:
        print(f"plot_history: no results in {args.results / args.machine}", file=sys.stderr)
        return 1
    plot(history, args.output, args.machine)
    print(f"plot_history: {len(history)} commits -> {args.output}")
    if args.table:
        titles = subjects(history)
        print(table(history))
        print()
        for c in history:
            print(f"- `{c['hash'][:8]}` {titles.get(c['hash'], '')[:100]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
