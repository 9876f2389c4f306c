"""Side-by-side training speed: fusetrain against PyTorch (CPU eager), JAX and scikit-learn.

    python benchmarks/compare.py [--shapes tiny,small,...] [--threads N] [--peers torch,jax,sklearn]
                                 [--repeat R] [--quick] [--json PATH] [--skip many,compile,optimizers]

Every library trains the same architecture, batch size, epoch count, float32 data and
initial weights with plain SGD. Each library runs in a worker process of its own (so one
library's thread pools never spin beside another's), once per round; the best round counts.
First-call compilation is excluded from every timing and reported on its own.

Besides samples/s and the ratio fusetrain/peer, every row gives GFLOP/s (6·W − 2·W₁ per
row: forward 2W, weight gradients 2W, input gradients 2(W − W₁) — the first layer needs no
input gradient) as a fraction of two limits measured in the same run: the machine's GEMM
peak and the shape's BLAS floor (the training step's own GEMM calls timed alone).
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

import compare_report  # noqa: E402
from compare_shapes import SHAPES, Shape, evaluate, load, save  # noqa: E402
from peers import PEERS, load as load_peer, missing  # noqa: E402

OPTIMIZER_SHAPE = "large"
OPTIMIZER_PEERS = ("fusetrain", "torch")
MANY_MODELS = 1000
COMPILE_SHAPES = ("small", "large")


# --------------------------------------------------------------------------- worker side

def _set_affinity(threads: int) -> None:
    """Pin the worker to `threads` cores when fewer than all are asked for (every library obeys)."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if cores and threads < len(cores):
        os.sched_setaffinity(0, cores[:threads])


def _train_row(peer, shape: Shape, path: str, threads: int, optimizer: str) -> dict:
    data, layers = load(Path(path))
    try:
        out = peer.train(shape, data, layers, threads, optimizer)
    except Exception as exc:  # a peer failing on one shape must not sink the whole comparison
        return {"error": f"{type(exc).__name__}: {exc}"}
    weights = out.pop("weights")
    out.update(evaluate(shape, weights, data["x"], data["y"]))
    out["samples_per_s"] = out["samples"] / out["seconds"]
    out["gflops"] = out["samples_per_s"] * shape.flops_per_sample / 1e9
    return out


def run_worker(name: str, job: dict) -> dict:
    threads = job["threads"]
    _set_affinity(threads)
    shapes = {n: Shape.from_dict(d) for n, d in job["shapes"].items()}
    if name == "limits":
        import compare_limits
        return compare_limits.measure(list(shapes.values()), threads)
    if name == "many":
        import compare_many
        return compare_many.measure(Shape.from_dict(job["many"]["shape"]), job["many"]["data"],
                                    job["many"]["models"], threads)
    if name == "probe":
        import compare_many
        return compare_many.probe(Shape.from_dict(job["probe"]["shape"]), job["probe"]["data"], threads)

    peer = load_peer(name)
    peer.prepare(threads)
    t0 = time.perf_counter()
    result = {"version": peer.version(), "shapes": {}, "optimizers": {}}
    result["import_seconds"] = time.perf_counter() - t0
    for sname, shape in shapes.items():
        result["shapes"][sname] = _train_row(peer, shape, job["data"][sname], threads, "sgd")
    opt_shape = job.get("optimizer_shape")
    if opt_shape and name in OPTIMIZER_PEERS:
        shape = Shape.from_dict(job["optimizer_shape"])
        for kind in peer.OPTIMIZERS:
            result["optimizers"][kind] = _train_row(peer, shape, job["optimizer_data"], threads, kind)
    import compare_limits
    result["blas"] = compare_limits.blas_info()
    return result


# --------------------------------------------------------------------------- parent side

def _busy_jiffies() -> int | None:
    """CPU time (clock ticks) all processes on the machine have used so far, from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return user + nice + system + irq + softirq + steal


FOREIGN_LOAD = []   # (worker, cores used by other processes on average while it ran)


def spawn(name: str, job: dict, workdir: Path, env: dict | None = None) -> dict:
    """Run one worker process; its JSON result, or {"error": ...} when it failed.

    Also notes how busy the machine's other processes kept the cores meanwhile (all CPU time
    used on the machine minus the worker's own), since a neighbour spoils every figure.
    """
    job_path = workdir / f"job-{name}.json"
    out_path = workdir / f"out-{name}.json"
    out_path.unlink(missing_ok=True)
    job_path.write_text(json.dumps(job))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name,
           "--job", str(job_path), "--out", str(out_path)]
    busy0, kids0, t0 = _busy_jiffies(), os.times(), time.perf_counter()
    proc = subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    busy1, kids1, wall = _busy_jiffies(), os.times(), time.perf_counter() - t0
    if busy0 is not None and wall > 0:
        ours = (kids1.children_user + kids1.children_system) - (kids0.children_user + kids0.children_system)
        machine = (busy1 - busy0) / os.sysconf("SC_CLK_TCK")
        FOREIGN_LOAD.append((name, max(0.0, machine - ours) / wall))
    if proc.returncode != 0 or not out_path.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"error": f"worker {name} exited with {proc.returncode}: " + " | ".join(tail)}
    return json.loads(out_path.read_text())


def _best(a: dict | None, b: dict) -> dict:
    """Keep the faster of two measurements of one row (errors lose)."""
    if a is None or "error" in a:
        return b
    if "error" in b:
        return a
    return b if b["seconds"] < a["seconds"] else a


def _merge_limits(a: dict | None, b: dict) -> dict:
    if a is None or "error" in a:
        return b
    if "error" in b:
        return a
    out = dict(a)
    if b["gemm_peak"]["gflops"] > a["gemm_peak"]["gflops"]:
        out["gemm_peak"] = b["gemm_peak"]
    out["floor"] = {k: b["floor"][k] if b["floor"][k]["gflops"] > v["gflops"] else v
                    for k, v in a["floor"].items()}
    return out


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
    p.add_argument("--skip", default="", help="comma-separated parts to skip: many, compile, optimizers")
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
    if args.threads < 1 or args.repeat < 1:
        p.error("--threads and --repeat must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
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
        notes, data = {}, {}
        for n, s in shapes.items():
            data[n] = str(workdir / f"{n}.npz")
            notes[n] = save(s, Path(data[n]))
        job = {"threads": args.threads, "shapes": {n: s.to_dict() for n, s in shapes.items()},
               "data": data}
        if "optimizers" not in args.skip:
            opt_shape = SHAPES[OPTIMIZER_SHAPE].scaled(args.quick)
            if OPTIMIZER_SHAPE in shapes:
                job["optimizer_data"] = data[OPTIMIZER_SHAPE]
            else:
                job["optimizer_data"] = str(workdir / "optimizers.npz")
                save(opt_shape, Path(job["optimizer_data"]))
            job["optimizer_shape"] = opt_shape.to_dict()

        limits, rows, opts, meta = None, {}, {}, {}
        for rnd in range(args.repeat):
            print(f"round {rnd + 1}/{args.repeat}: limits", end="", flush=True)
            limits = _merge_limits(limits, spawn("limits", job, workdir))
            for n in running:
                print(f", {n}", end="", flush=True)
                res = spawn(n, job, workdir)
                if "error" in res:
                    meta.setdefault(n, {})["error"] = res["error"]
                    continue
                meta[n] = {k: res.get(k) for k in ("version", "blas", "import_seconds")}
                for s, row in res["shapes"].items():
                    rows.setdefault(n, {})[s] = _best(rows.get(n, {}).get(s), row)
                for k, row in res["optimizers"].items():
                    opts.setdefault(n, {})[k] = _best(opts.get(n, {}).get(k), row)
            print(flush=True)

        many = compile_times = None
        if "fusetrain" in running and "many" not in args.skip:
            print("many models", flush=True)
            small = SHAPES["small"]
            models = MANY_MODELS // 10 if args.quick else MANY_MODELS
            small = small.scaled(args.quick)
            path = workdir / "many.npz"
            save(small, path)
            many = spawn("many", {**job, "many": {"shape": small.to_dict(), "data": str(path),
                                                  "models": models}}, workdir)
        if "fusetrain" in running and "compile" not in args.skip:
            print("compile, cold and cached:", end="", flush=True)
            compile_times = {}
            # The engine compiles per dtype, not per architecture; one small-network shape and
            # one BLAS-sized shape stand for the rest (one only with --quick).
            probes = [n for n in COMPILE_SHAPES if n in shapes] or list(shapes)[:1]
            for n in probes[:1] if args.quick else probes:
                s = shapes[n]
                print(f" {n}", end="", flush=True)
                with tempfile.TemporaryDirectory(prefix="numba-cache-", dir=tmp) as cache:
                    probe = {**job, "probe": {"shape": s.to_dict(), "data": data[n]}}
                    env = {"NUMBA_CACHE_DIR": cache}
                    compile_times[n] = {"cold": spawn("probe", probe, workdir, env),
                                        "cached": spawn("probe", probe, workdir, env)}
            print(flush=True)

    report = {
        "date": time.strftime("%Y-%m-%d", time.localtime(started)),
        "command": " ".join(["python", "benchmarks/compare.py"] + (argv if argv is not None else sys.argv[1:])),
        "threads": args.threads, "cores": os.cpu_count(), "repeat": args.repeat, "quick": args.quick,
        "python": sys.version.split()[0],
        "shapes": {n: {**s.to_dict(), "data": notes[n]} for n, s in shapes.items()},
        "skipped": skipped, "peers": meta, "limits": limits, "rows": rows, "optimizers": opts,
        "many": many, "compile": compile_times, "seconds": time.time() - started,
        "foreign_load": max((load for _, load in FOREIGN_LOAD), default=0.0),
    }
    print()
    print(compare_report.render(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
