"""Hostile proof: every attack class of issue 11 that the service bounds, run concurrently by
mallory's threads for a fixed time beside honest clients (alice) that submit small real jobs and
watch them to the end, against one `fusetrain serve` on 127.0.0.1 with default limits.
Prints status codes per attack class, honest jobs, health latency (sampled every 0.2 s from its
own process) and peak memory of the server and its workers; exits 1 when a requirement fails.

    python tests/reliability/hostile.py --seconds 120 --honest 8      (make hostile)
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "service"), str(HERE.parents[1] / "benchmarks")]

import grpc  # noqa: E402
import numpy as np  # noqa: E402

from hostile_attacks import BAD, CLASSES, TERMINAL, TOKENS, Attacks, Owner, Tally, _wait, prepare  # noqa: E402
from reliability_helpers import percentile  # noqa: E402
from service_helpers import seeds_spec, xor_spec  # noqa: E402

from fusetrain.v1 import service_pb2 as pb  # noqa: E402

SERVER_BUDGET_MIB = 1536        # the server process (RPC threads, store, caches), default limits
WORKER_BUDGET_MIB = 2560        # one worker: max_job_memory_bytes (2 GiB) + 512 MiB of runtime
HEALTH_LIMIT_S = 1.0


def honest_client(address: str, c: int, tally: Tally, seeds: str, out: list, hard_end: float) -> None:
    """Submit small real jobs (XOR, seeds) and watch each to its end until the deadline; a refused
    stream (stream slots full) or a lost one is resumed after the last event seen."""
    alice, n = Owner(address, "alice"), 0
    while not tally.over():
        n += 1
        spec = xor_spec(epochs=500) if n % 2 else seeds_spec(seeds, epochs=30, seed=c)
        spec.model.seed = c * 1000 + n
        job = None
        while job is None and time.monotonic() < hard_end:
            job = tally.call("honest SubmitJob", lambda: alice.stub.SubmitJob(
                pb.SubmitJobRequest(spec=spec, request_id=f"honest-{c}-{n}"), metadata=alice.md, timeout=30))
            if job is None:
                time.sleep(0.2)
        if job is None:
            break
        seen, final = 0, None
        while final is None and time.monotonic() < hard_end:
            def follow():
                nonlocal seen, final
                for msg in alice.stub.WatchJob(pb.WatchJobRequest(job_id=job.id, after_sequence=seen),
                                               metadata=alice.md, timeout=60):
                    for e in msg.events:
                        seen = e.sequence
                        if e.HasField("state") and e.state.state in TERMINAL:
                            final = e.state.state
            tally.call("honest WatchJob", follow)
            if final is None:
                time.sleep(0.2)
        got = tally.call("honest GetJob", lambda: alice.stub.GetJob(pb.GetJobRequest(job_id=job.id),
                                                                    metadata=alice.md, timeout=30))
        out.append(pb.JobState.Name(got.state) if got is not None else "unknown")
        if got is not None and got.state != pb.SUCCEEDED:
            tally.find(f"honest job {got.id} ended {pb.JobState.Name(got.state)}: {got.message!r}")
    alice.channel.close()


def health_sampler(address: str, seconds: float, out) -> None:
    """In its own process: grpc.health.v1 Check every 0.2 s; sends back (latencies, failures)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    lat, failures = [], Counter()
    end = time.monotonic() + seconds
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < end:
            t = time.perf_counter()
            try:
                ok = stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status == \
                    health_pb2.HealthCheckResponse.SERVING
                if not ok:
                    failures["not SERVING"] += 1
            except grpc.RpcError as exc:
                failures[exc.code().name] += 1
            lat.append(time.perf_counter() - t)
            time.sleep(max(0.0, 0.2 - (time.perf_counter() - t)))
    out.put((lat, dict(failures)))


def _status(pid: int) -> dict:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in lines) if k in ("VmRSS", "VmHWM")}


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*") if Path(f"/proc/{p}/task").exists() else []:
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                kids = []
            out += kids
            todo += kids
    return out


class MemorySampler(threading.Thread):
    """Peak resident memory (VmHWM) of the server and of each of its descendant processes."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.stop, self.peaks = pid, threading.Event(), {}

    def run(self):
        while not self.stop.wait(0.25):
            self.sample()

    def sample(self):
        for p in [self.pid, *descendants(self.pid)]:
            s = _status(p)
            if s:
                self.peaks[p] = max(self.peaks.get(p, 0), s.get("VmHWM", 0), s.get("VmRSS", 0))

    def figures(self) -> tuple[int, int, int]:
        """(server peak, largest worker peak, worker processes seen), bytes."""
        workers = [v for p, v in self.peaks.items() if p != self.pid]
        return self.peaks.get(self.pid, 0), max(workers, default=0), len(workers)


# --------------------------------------------------------------------------------------- the run

def _attack_loop(attacks: Attacks, name: str, tally: Tally, max_attempts: int, pause: float) -> None:
    for _ in range(max_attempts):
        if tally.over():
            return
        getattr(attacks, name)()
        time.sleep(pause)


def _after_checks(address: str, attacks: list[Attacks], tally: Tally, end: float) -> dict:
    """Cancelled jobs never ran to SUCCEEDED; diverged jobs keep no non-finite weights."""
    m = Owner(address, "mallory")
    lost = checked = stale = 0
    for a in attacks:
        for job_id, answered, at in a.cancelled:
            if answered in (pb.QUEUED, pb.CANCELLED) and time.monotonic() < end:
                checked += 1
                job = _wait(m, job_id, max(1.0, end - time.monotonic()))
                if job.state != pb.SUCCEEDED:
                    continue
                if job.started_at.ToMicroseconds() / 1e6 > at:     # started after the cancel's answer
                    lost += 1
                    tally.find(f"6 cancel race: job {job_id}: CancelJob answered {pb.JobState.Name(answered)}, "
                               f"then the job started and SUCCEEDED")
                else:                 # ran before the cancel came; the answer showed the stored state
                    stale += 1
    diverged = nonfinite = 0
    for a in attacks:
        for job_id in a.diverged[:20]:
            job = _wait(m, job_id, max(1.0, end - time.monotonic()))
            diverged += job.state == pb.FAILED and job.failure_reason == pb.DIVERGED
            if job.has_result:
                result = m.stub.GetResult(pb.GetResultRequest(job_id=job_id), metadata=m.md, timeout=30)
                nonfinite += any(not np.isfinite(np.frombuffer(t.data, np.float32 if t.dtype == "float32"
                                                               else np.float64)).all()
                                 for layer in result.layers for t in (layer.weights, layer.bias))
    m.channel.close()
    if nonfinite:
        tally.find(f"7 divergence: {nonfinite} jobs stored non-finite weights")
    return {"cancels_checked": checked, "cancels_lost": lost, "cancels_stale": stale, "diverged": diverged,
            "nonfinite": nonfinite,
            "diverge_checked": sum(min(20, len(a.diverged)) for a in attacks)}


def run_hostile(data_dir: Path, seconds: float = 120, honest: int = 8, long_epochs: int = 200_000,
                list_jobs: int = 1000, pause: float = 0.05, max_attempts: int = 100_000, seed: int = 0) -> dict:
    from helpers import ServerProcess
    data_dir.mkdir(parents=True, exist_ok=True)
    tokens = data_dir.parent / "tokens"
    tokens.write_text("".join(f"{k} {v}\n" for k, v in TOKENS.items()))
    proc = ServerProcess(data_dir, "--token-file", str(tokens))
    try:
        proc.wait_healthy()
        memory = MemorySampler(proc.proc.pid)
        memory.start()
        t0 = time.monotonic()
        fixtures = prepare(proc.address, long_epochs, list_jobs)
        setup_s = time.monotonic() - t0
        ctx = mp.get_context("spawn")
        health_out = ctx.Queue()
        sampler = ctx.Process(target=health_sampler, args=(proc.address, seconds, health_out))
        sampler.start()
        tally = Tally(time.monotonic() + seconds)
        hard_end = tally.deadline + 300
        attacks = [Attacks(proc.address, tally, fixtures, random.Random(seed + i)) for i in range(len(CLASSES))]
        threads = [threading.Thread(target=_attack_loop, args=(a, name, tally, max_attempts, pause))
                   for a, name in zip(attacks, CLASSES)]
        states: list[str] = []
        threads += [threading.Thread(target=honest_client, args=(proc.address, c, tally, fixtures["seeds"],
                                                                 states, hard_end)) for c in range(honest)]
        for t in threads:
            t.start()
        health_lat, health_fail = health_out.get(timeout=seconds + 120)
        sampler.join()
        for t in threads:
            t.join(max(1.0, hard_end - time.monotonic()))
        wall = time.monotonic() - t0 - setup_s
        after = _after_checks(proc.address, attacks, tally, time.monotonic() + 180)
        for a in attacks:
            a.close()
        memory.stop.set()
        memory.join()
        memory.sample()
        server_peak, worker_peak, workers = memory.figures()
        exited = proc.proc.poll()
    finally:
        rc = proc.stop()
    tracebacks = sum("Traceback" in line for line in proc.log)
    errors = Counter()                  # each traceback's logged error line and exception line
    for i, line in enumerate(proc.log):
        if "Traceback" in line:
            end = next((j for j in range(i + 1, len(proc.log)) if not proc.log[j].startswith(" ")), i)
            errors[f"{proc.log[i - 1].split(' ', 3)[-1] if i else ''} -> {proc.log[end][:120]}"] += 1
    return {"seconds": seconds, "wall": wall, "setup": setup_s, "honest": honest, "states": Counter(states),
            "codes": {k: dict(v) for k, v in sorted(tally.codes.items(), key=lambda kv: int(kv[0].split()[0])
                                                       if kv[0][0].isdigit() else 99)},
            "findings": tally.findings, "long": (long_epochs, fixtures["long_state"]),
            "health": health_lat, "health_failures": health_fail, "server_peak": server_peak,
            "worker_peak": worker_peak, "workers": workers, "exited": exited, "stop_rc": rc,
            "tracebacks": tracebacks, "log_errors": dict(errors), **after}


def failures(f: dict, budgets: bool = True) -> list[str]:
    """What failed; `budgets` adds the health-latency and memory budgets (not checked in pytest)."""
    bad = [f"{cls}: {n} {code}" for cls, codes in f["codes"].items() for code, n in codes.items() if code in BAD]
    bad += f["findings"]
    if f["exited"] is not None:
        bad.append(f"the server exited with code {f['exited']} during the run")
    if f["tracebacks"]:
        bad.append(f"{f['tracebacks']} tracebacks in the server log")
    honest = sum(f["states"].values())
    if not honest or f["states"]["SUCCEEDED"] != honest:
        bad.append(f"honest jobs: {dict(f['states'])}")
    if f["health_failures"]:
        bad.append(f"health failures {f['health_failures']}")
    if budgets:
        if max(f["health"], default=99) > HEALTH_LIMIT_S:
            bad.append(f"health answered in {max(f['health']):.2f} s (> {HEALTH_LIMIT_S} s)")
        if f["server_peak"] > SERVER_BUDGET_MIB << 20:
            bad.append(f"server peak {f['server_peak'] / 2**20:.0f} MiB > {SERVER_BUDGET_MIB} MiB")
        if f["worker_peak"] > WORKER_BUDGET_MIB << 20:
            bad.append(f"worker peak {f['worker_peak'] / 2**20:.0f} MiB > {WORKER_BUDGET_MIB} MiB")
    return bad


def report(f: dict) -> str:
    h = f["health"]
    lines = [f"hostile: {len(CLASSES)} attack classes (one thread each) beside {f['honest']} honest clients for "
             f"{f['seconds']:.0f} s on 127.0.0.1, default limits (wall {f['wall']:.1f} s after {f['setup']:.1f} s "
             f"of set-up: a finished {f['long'][0]:,}-epoch job ({f['long'][1]}) to replay)",
             "  status codes per attack class:"]
    lines += [f"    {cls:<26} {codes}" for cls, codes in f["codes"].items()]
    unknown = sum(n for c in f["codes"].values() for k, n in c.items() if k in BAD)
    lines += [f"  UNKNOWN/INTERNAL: {unknown}; server exited during the run: {'no' if f['exited'] is None else 'yes'}; "
              f"tracebacks in its log: {f['tracebacks']}",
              f"  honest jobs: {sum(f['states'].values())} finished, {dict(f['states'])}",
              f"  cancel race: {f['cancels_checked']} cancels answered QUEUED/CANCELLED checked, "
              f"{f['cancels_lost']} started after it; {f['cancels_stale']} had already run in a worker "
              f"(answer QUEUED, the stored state; then SUCCEEDED)",
              f"  divergence: {f['diverged']}/{f['diverge_checked']} DIVERGED, "
              f"{f['nonfinite']} with non-finite weights",
              f"  health: {len(h)} checks every 0.2 s, p50 {percentile(h, 50) * 1000:.1f} ms, "
              f"p99 {percentile(h, 99) * 1000:.1f} ms, max {max(h, default=math.nan) * 1000:.1f} ms "
              f"(limit {HEALTH_LIMIT_S * 1000:.0f} ms); failures {f['health_failures'] or 0}",
              f"  peak RSS: server {f['server_peak'] / 2**20:.0f} MiB (budget {SERVER_BUDGET_MIB} MiB), "
              f"largest worker {f['worker_peak'] / 2**20:.0f} MiB of {f['workers']} child processes "
              f"(budget {WORKER_BUDGET_MIB} MiB)"]
    lines += [f"  FAILED: {b}" for b in failures(f)] or ["  every requirement held"]
    lines += [f"  server log: {n} x {text}" for text, n in f["log_errors"].items()]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=120, help="how long the attacks run")
    p.add_argument("--honest", type=int, default=8, help="honest clients")
    p.add_argument("--long-epochs", type=int, default=200_000, help="epochs of the finished job replayed")
    p.add_argument("--list-jobs", type=int, default=1000, help="stored jobs ListJobs(include_spec) pages over")
    p.add_argument("--pause", type=float, default=0.05, help="seconds between one class's attempts")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="fusetrain-hostile-") as tmp:
        f = run_hostile(Path(tmp) / "data", a.seconds, a.honest, a.long_epochs, a.list_jobs, a.pause)
    print(report(f))
    return 1 if failures(f) else 0


if __name__ == "__main__":
    sys.exit(main())
