"""Worker processes of the comparison (benchmarks/compare.py), run on a machine as quiet as it gets, and merged.

The parent process never trains: it writes a job file, runs `compare.py --worker NAME` in a
fresh process, reads the worker's JSON answer, and keeps the best of several attempts. The
worker side (what a worker does with its job) is in compare_worker.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "compare.py"
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

    def spawn(self, name: str, job: dict, env: dict | None = None, quiet: bool = True) -> tuple[dict, float]:
        """Run one worker once: (its JSON result or {"error": ...}, foreign cores meanwhile).

        quiet=False starts it at once (for figures that other processes do not move, such as
        memory or final losses).
        """
        if quiet:
            self._wait_quiet()
        job_path = self.workdir / f"job-{name}.json"
        out_path = self.workdir / f"out-{name}.json"
        out_path.unlink(missing_ok=True)
        job_path.write_text(json.dumps(job))
        cmd = [sys.executable, str(SCRIPT), "--worker", name, "--job", str(job_path), "--out", str(out_path)]
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


def tag(result: dict, load: float) -> dict:
    """Note on a measurement how many cores other processes kept busy while it ran."""
    if "error" not in result:
        result["foreign_load"] = load
        for key in ("gemm_peak",):
            if key in result:
                result[key]["foreign_load"] = load
        for floor in result.get("floor", {}).values():
            floor["foreign_load"] = load
    return result


def best(a: dict | None, b: dict) -> dict:
    """Keep the faster of two measurements of one row (errors lose)."""
    if a is None or "error" in a:
        return b
    if "error" in b:
        return a
    return b if b["seconds"] < a["seconds"] else a


def merge_limits(a: dict | None, b: dict) -> dict:
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


def merge_many(a: dict | None, b: dict) -> dict:
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


def compile_probe(runner: Runner, job: dict, tmp: str) -> dict:
    """Cold (empty Numba cache) then cached compile seconds, each in a fresh process.

    The pair is taken again, against a new empty cache, while a neighbour kept the machine
    busy; the quietest pair counts.
    """
    found, found_load = None, None
    for attempt in range(1 + runner.retries):
        with tempfile.TemporaryDirectory(prefix="numba-cache-", dir=tmp) as cache:
            env = {"NUMBA_CACHE_DIR": cache}
            cold, l1 = runner.spawn("probe", job, env)
            cached, l2 = runner.spawn("probe", job, env)
        load = max(l1, l2)
        if found is None or load < found_load:
            found, found_load = {"cold": cold, "cached": cached, "foreign_load": load}, load
        if load <= QUIET or "error" in cold or "error" in cached:
            break
        if attempt < runner.retries:
            print(f" (again: {load:.2f} busy cores beside it)", end="", flush=True)
    runner.loads.append(("probe", found_load))
    return found
