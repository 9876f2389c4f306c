"""Side-by-side training speed: fusetrain against PyTorch (CPU eager), JAX and scikit-learn.

    python benchmarks/compare.py [--shapes tiny,small,...] [--threads N] [--peers torch,jax,sklearn]
                                 [--repeat R] [--quick] [--json PATH] [--skip many,compile,optimizers]
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

import compare_report  # noqa: E402
from compare_shapes import SHAPES, Shape, evaluate, load, save  # noqa: E402
from peers import PEERS, load as load_peer, missing  # noqa: E402

OPTIMIZER_SHAPE = "large"
OPTIMIZER_PEERS = ("fusetrain", "baseline", "torch")
REPO = HERE.parent
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

    if name == "baseline":
        # The engine exported at the baseline revision comes first on the path (fusetrain.engine).
        sys.path.insert(0, job["baseline"]["path"])
    peer = load_peer("fusetrain" if name == "baseline" else name)
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

QUIET = 0.15   # cores kept busy by other processes below which the machine counts as quiet


def _busy_seconds() -> float | None:
    """CPU seconds all processes on the machine have used so far, from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class Runner:
    """Runs worker processes, each on a machine as quiet as it can get.

    Before a worker starts it waits (up to `wait` seconds) until other processes keep less
    than QUIET cores busy; while it runs it measures how busy they kept the cores (all CPU
    time used on the machine minus the worker's own); a worker that ran beside a neighbour
    is run again, up to `retries` times. Every attempt counts (the best figures win).
    """

    def __init__(self, workdir: Path, wait: float, retries: int):
        self.workdir, self.wait, self.retries = workdir, wait, retries
        self.loads: list[tuple[str, float]] = []   # (worker, foreign cores) of accepted attempts
        self.waited = 0.0

    def _wait_quiet(self) -> None:
        deadline = time.perf_counter() + self.wait
        announced = False
        while True:
            b0, t0 = _busy_seconds(), time.perf_counter()
            time.sleep(1.0)
            b1, dt = _busy_seconds(), time.perf_counter() - t0
            if b0 is None or (b1 - b0) / dt < QUIET or time.perf_counter() >= deadline:
                return
            if not announced:
                print(" (waiting for a quiet machine)", end="", flush=True)
                announced = True
            self.waited += 1.0

    def spawn(self, name: str, job: dict, env: dict | None = None) -> tuple[dict, float]:
        """Run one worker once: (its JSON result or {"error": ...}, foreign cores meanwhile)."""
        self._wait_quiet()
        job_path = self.workdir / f"job-{name}.json"
        out_path = self.workdir / f"out-{name}.json"
        out_path.unlink(missing_ok=True)
        job_path.write_text(json.dumps(job))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name,
               "--job", str(job_path), "--out", str(out_path)]
        busy0, kids0, t0 = _busy_seconds(), os.times(), time.perf_counter()
        proc = subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
        busy1, kids1, wall = _busy_seconds(), os.times(), time.perf_counter() - t0
        load = 0.0
        if busy0 is not None and wall > 0:
            ours = (kids1.children_user + kids1.children_system) - (kids0.children_user + kids0.children_system)
            load = max(0.0, (busy1 - busy0) - ours) / wall
        if proc.returncode != 0 or not out_path.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            return {"error": f"worker {name} exited with {proc.returncode}: " + " | ".join(tail)}, load
        return json.loads(out_path.read_text()), load

    def attempts(self, name: str, job: dict):
        """Yield (result, foreign cores) per attempt: again while the machine was busy, up to `retries` more."""
        for attempt in range(1 + self.retries):
            result, load = self.spawn(name, job)
            yield result, load
            if load <= QUIET or "error" in result or attempt == self.retries:
                self.loads.append((name, load))
                return
            print(f" (again: {load:.2f} busy cores beside it)", end="", flush=True)


def _tag(result: dict, load: float) -> dict:
    """Note on a measurement how many cores other processes kept busy while it ran."""
    if "error" not in result:
        result["foreign_load"] = load
        for key in ("gemm_peak",):
            if key in result:
                result[key]["foreign_load"] = load
        for floor in result.get("floor", {}).values():
            floor["foreign_load"] = load
    return result


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


def _merge_many(a: dict | None, b: dict) -> dict:
    """Best of two many-models measurements, each of the two timings on its own."""
    if a is None or "error" in a:
        return b
    if "error" in b:
        return a
    out = dict(a)
    for key in ("batch", "alone"):
        if b[f"{key}_seconds"] < a[f"{key}_seconds"]:
            out[f"{key}_seconds"], out[f"{key}_samples_per_s"] = b[f"{key}_seconds"], b[f"{key}_samples_per_s"]
            out[f"{key}_foreign_load"] = b["foreign_load"]
        else:
            out.setdefault(f"{key}_foreign_load", a["foreign_load"])
    out["speedup"] = out["alone_seconds"] / out["batch_seconds"]
    out["foreign_load"] = max(out["batch_foreign_load"], out["alone_foreign_load"])
    out["identical"] = a["identical"] and b["identical"]
    return out


def _compile_probe(runner: Runner, job: dict, tmp: str) -> dict:
    """Cold (empty Numba cache) then cached compile seconds, each in a fresh process.

    The pair is taken again, against a new empty cache, while a neighbour kept the machine
    busy; the quietest pair counts.
    """
    best, best_load = None, None
    for attempt in range(1 + runner.retries):
        with tempfile.TemporaryDirectory(prefix="numba-cache-", dir=tmp) as cache:
            env = {"NUMBA_CACHE_DIR": cache}
            cold, l1 = runner.spawn("probe", job, env)
            cached, l2 = runner.spawn("probe", job, env)
        load = max(l1, l2)
        if best is None or load < best_load:
            best, best_load = {"cold": cold, "cached": cached, "foreign_load": load}, load
        if load <= QUIET or "error" in cold or "error" in cached:
            break
        if attempt < runner.retries:
            print(f" (again: {load:.2f} busy cores beside it)", end="", flush=True)
    runner.loads.append(("probe", best_load))
    return best


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
    p.add_argument("--skip", default="", help="comma-separated parts to skip: many, compile, optimizers")
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
    if args.threads < 1 or args.repeat < 1 or args.retries < 0:
        p.error("--threads and --repeat must be at least 1, --retries at least 0")
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
        for rnd in range(args.repeat):
            print(f"round {rnd + 1}/{args.repeat}: limits", end="", flush=True)
            for res, load in runner.attempts("limits", job):
                limits = _merge_limits(limits, _tag(res, load))
            for n in running:
                print(f", {n}", end="", flush=True)
                for res, load in runner.attempts(n, job):
                    if "error" in res:
                        meta.setdefault(n, {})["error"] = res["error"]
                        continue
                    meta[n] = {k: res.get(k) for k in ("version", "blas", "import_seconds")}
                    for s, row in res["shapes"].items():
                        rows.setdefault(n, {})[s] = _best(rows.get(n, {}).get(s), _tag(row, load))
                    for k, row in res["optimizers"].items():
                        opts.setdefault(n, {})[k] = _best(opts.get(n, {}).get(k), _tag(row, load))
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
                many = _merge_many(many, _tag(res, load))
            print(flush=True)
        if "fusetrain" in running and "compile" not in args.skip:
            print("compile, cold and cached:", end="", flush=True)
            compile_times = {}
            # The engine compiles per dtype, not per architecture; one small-network shape and
            # one BLAS-sized shape stand for the rest (one only with --quick).
            probes = [n for n in COMPILE_SHAPES if n in shapes] or list(shapes)[:1]
            for n in probes[:1] if args.quick else probes:
                print(f" {n}", end="", flush=True)
                compile_times[n] = _compile_probe(runner, {**job, "probe": {"shape": shapes[n].to_dict(),
                                                                            "data": data[n]}}, tmp)
            print(flush=True)

    report = {
        "date": time.strftime("%Y-%m-%d", time.localtime(started)),
        "command": " ".join(["python", "benchmarks/compare.py"] + (argv if argv is not None else sys.argv[1:])),
        "threads": args.threads, "cores": os.cpu_count(), "repeat": args.repeat, "quick": args.quick,
        "python": sys.version.split()[0],
        "shapes": {n: {**s.to_dict(), "data": notes[n]} for n, s in shapes.items()},
        "skipped": skipped, "peers": meta, "limits": limits, "rows": rows, "optimizers": opts,
        "many": many, "compile": compile_times, "seconds": time.time() - started,
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
