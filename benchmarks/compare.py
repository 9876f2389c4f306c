"""Side-by-side training speed: fusetrain against PyTorch (CPU eager), JAX and scikit-learn.

    python benchmarks/compare.py [--shapes tiny,small,...] [--threads N] [--peers torch,jax,sklearn]
                                 [--repeat R] [--quick] [--json PATH]
                                 [--skip many,compile,optimizers,memory,convergence,speed]
                                 [--wait-quiet SECONDS] [--retries N] [--baseline REV]

Every library trains the same architecture, batch size, epoch count, float32 data and
initial weights with plain SGD. Each library runs in a worker process of its own (so one
library's thread pools never spin beside another's), once per round; the best round counts.
First-call compilation is excluded from every timing and reported on its own. On a shared
machine each worker waits for the other processes to leave the cores idle, and runs again
when they did not; the report warns when figures were taken beside a busy neighbour.

Besides samples/s and the ratio fusetrain/peer, every row gives GFLOP/s (6·W − 2·W₁ per
row: forward 2W, weight gradients 2W, input gradients 2(W − W₁) — the first layer needs no
input gradient) as a fraction of two limits measured in the same run: the machine's GEMM
peak and the shape's BLAS floor (the training step's own GEMM calls timed alone).

Beside speed: the peak RSS of a fresh process per library and shape (compare_memory.py), and
each library's final loss and accuracy as mean ± sd over five shuffle seeds on the shuffled
shapes (compare_convergence.py). Workers are run by compare_runner.py; what a worker does is in
compare_worker.py.

--baseline REV adds fusetrain's engine as it was at git revision REV as one more row, run in
its own worker beside today's in every round, so a change is measured before and after in
one run on the same machine state.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import compare_convergence  # noqa: E402
import compare_memory  # noqa: E402
import compare_report  # noqa: E402
from compare_runner import Runner, best, compile_probe, merge_limits, merge_many, tag  # noqa: E402
from compare_shapes import SHAPES, save  # noqa: E402
from peers import PEERS, missing  # noqa: E402

OPTIMIZER_SHAPE = "large"
REPO = HERE.parent
MANY_MODELS = 1000
COMPILE_SHAPES = ("small", "large")
SKIPPABLE = ("many", "compile", "optimizers", "memory", "convergence", "speed")


def export_baseline(rev: str, where: Path) -> dict:
    """Write `engine/` as of git revision `rev` to where/fusetrain/engine; {"rev", "path"}."""
    described = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO, capture_output=True, text=True)
    if described.returncode != 0:
        raise SystemExit(f"--baseline {rev}: not a git revision of this repository ({described.stderr.strip()})")
    target = where / "fusetrain"
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev, "engine"], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    short = described.stdout.strip()
    return {"rev": rev if short.startswith(rev) else f"{rev} ({short})", "path": str(where)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated, from: " + ", ".join(SHAPES))
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0))
                   if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                   help="threads for every library (default: all cores)")
    p.add_argument("--peers", default="torch,jax,sklearn", help="comma-separated peers to run")
    p.add_argument("--repeat", type=int, default=3, help="rounds; the best round of each row counts")
    p.add_argument("--quick", action="store_true",
                   help="a tenth of the epochs and at most 10,000 rows (CI smoke; targets not judged)")
    p.add_argument("--json", metavar="PATH", help="write every figure to this JSON file")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: many, compile, optimizers, "
                   "memory, convergence, speed (the timed rounds and the limits)")
    p.add_argument("--wait-quiet", type=float, default=120.0, metavar="SECONDS",
                   help="before each worker, wait up to this long for other processes to leave the cores "
                        "idle (default 120; 0 = never wait)")
    p.add_argument("--retries", type=int, default=2,
                   help="run a worker again, up to this many times, when other processes kept the cores "
                        "busy beside it (default 2)")
    p.add_argument("--baseline", metavar="REV", default=None,
                   help="also run fusetrain's engine as of this git revision (e.g. HEAD~1, main), as a row "
                        "of its own beside today's")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--job", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return args
    args.shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in args.shapes if s not in SHAPES]
    if unknown:
        p.error(f"unknown shape(s) {', '.join(unknown)}; choose from {', '.join(SHAPES)}")
    args.peers = [s.strip() for s in args.peers.split(",") if s.strip()]
    unknown = [s for s in args.peers if s not in PEERS or s == "fusetrain"]
    if unknown:
        p.error(f"unknown peer(s) {', '.join(unknown)}; choose from torch, jax, sklearn")
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.skip - set(SKIPPABLE):
        p.error(f"unknown part(s) to skip {', '.join(sorted(args.skip - set(SKIPPABLE)))}; choose from "
                + ", ".join(SKIPPABLE))
    if args.threads < 1 or args.repeat < 1 or args.retries < 0:
        p.error("--threads and --repeat must be at least 1, --retries at least 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        from compare_worker import run_worker
        job = json.loads(Path(args.job).read_text())
        Path(args.out).write_text(json.dumps(run_worker(args.worker, job)))
        return 0

    started = time.time()
    names = ["fusetrain"] + args.peers
    skipped = {n: why for n in names if (why := missing(n))}
    running = [n for n in names if n not in skipped]
    for n, why in skipped.items():
        print(f"skipping {n}: {why}", flush=True)

    shapes = {n: SHAPES[n].scaled(args.quick) for n in args.shapes}
    with tempfile.TemporaryDirectory(prefix="fusetrain-compare-") as tmp:
        workdir = Path(tmp)
        baseline = None
        if args.baseline and "fusetrain" in running:
            baseline = export_baseline(args.baseline, workdir / "baseline")
            running.insert(1, "baseline")
        notes, data = {}, {}
        for n, s in shapes.items():
            data[n] = str(workdir / f"{n}.npz")
            notes[n] = save(s, Path(data[n]))
        job = {"threads": args.threads, "shapes": {n: s.to_dict() for n, s in shapes.items()},
               "data": data, "baseline": baseline}
        if "optimizers" not in args.skip:
            opt_shape = SHAPES[OPTIMIZER_SHAPE].scaled(args.quick)
            if OPTIMIZER_SHAPE in shapes:
                job["optimizer_data"] = data[OPTIMIZER_SHAPE]
            else:
                job["optimizer_data"] = str(workdir / "optimizers.npz")
                save(opt_shape, Path(job["optimizer_data"]))
            job["optimizer_shape"] = opt_shape.to_dict()

        runner = Runner(workdir, args.wait_quiet, args.retries)
        limits, rows, opts, meta = None, {}, {}, {}
        for rnd in range(0 if "speed" in args.skip else args.repeat):
            print(f"round {rnd + 1}/{args.repeat}: limits", end="", flush=True)
            for res, load in runner.attempts("limits", job):
                limits = merge_limits(limits, tag(res, load))
            for n in running:
                print(f", {n}", end="", flush=True)
                for res, load in runner.attempts(n, job):
                    if "error" in res:
                        meta.setdefault(n, {})["error"] = res["error"]
                        continue
                    meta[n] = {k: res.get(k) for k in ("version", "blas", "import_seconds")}
                    for s, row in res["shapes"].items():
                        rows.setdefault(n, {})[s] = best(rows.get(n, {}).get(s), tag(row, load))
                    for k, row in res["optimizers"].items():
                        opts.setdefault(n, {})[k] = best(opts.get(n, {}).get(k), tag(row, load))
            print(flush=True)

        many = compile_times = None
        if "fusetrain" in running and "many" not in args.skip:
            print("many models", end="", flush=True)
            small = SHAPES["small"].scaled(args.quick)
            path = workdir / "many.npz"
            save(small, path)
            models = MANY_MODELS // 10 if args.quick else MANY_MODELS
            many_job = {**job, "many": {"shape": small.to_dict(), "data": str(path), "models": models}}
            for res, load in runner.attempts("many", many_job):
                many = merge_many(many, tag(res, load))
            print(flush=True)
        if "fusetrain" in running and "compile" not in args.skip:
            print("compile, cold and cached:", end="", flush=True)
            compile_times = {}
            # The engine compiles per dtype, not per architecture; one small-network shape and
            # one BLAS-sized shape stand for the rest (one only with --quick).
            probes = [n for n in COMPILE_SHAPES if n in shapes] or list(shapes)[:1]
            for n in probes[:1] if args.quick else probes:
                print(f" {n}", end="", flush=True)
                compile_times[n] = compile_probe(runner, {**job, "probe": {"shape": shapes[n].to_dict(),
                                                                           "data": data[n]}}, tmp)
            print(flush=True)
        memory = convergence = None
        if "memory" not in args.skip:
            print("peak memory, a fresh process each:", end="", flush=True)
            memory = compare_memory.run(runner, running, shapes, job)
            print(flush=True)
        if "convergence" not in args.skip and compare_convergence.shuffled(shapes):
            print(f"convergence over {len(compare_convergence.SEEDS)} shuffle seeds:", end="", flush=True)
            convergence = compare_convergence.run(runner, running, shapes, job)
            print(flush=True)

    report = {
        "date": time.strftime("%Y-%m-%d", time.localtime(started)),
        "command": " ".join(["python", "benchmarks/compare.py"] + (argv if argv is not None else sys.argv[1:])),
        "threads": args.threads, "cores": os.cpu_count(), "repeat": args.repeat, "quick": args.quick,
        "python": sys.version.split()[0],
        "shapes": {n: {**s.to_dict(), "data": notes[n]} for n, s in shapes.items()},
        "skipped": skipped, "peers": meta, "limits": limits, "rows": rows, "optimizers": opts,
        "many": many, "compile": compile_times, "memory": memory, "convergence": convergence,
        "seconds": time.time() - started,
        "foreign_loads": runner.loads, "waited_for_quiet_seconds": runner.waited,
        "baseline": baseline and baseline["rev"],
    }
    print()
    print(compare_report.render(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
