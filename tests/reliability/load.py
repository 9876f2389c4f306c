"""Load: many concurrent clients, each submitting jobs one after another (SubmitJob, WatchJob to
the end, GetResult) against one `fusetrain serve` on 127.0.0.1; bounded in jobs and time.
Prints throughput, p50/p95/p99 latency per RPC, errors by status code and server memory.

    python tests/reliability/load.py --clients 64 --jobs-per-client 50      (make load)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "service"), str(HERE.parents[1] / "benchmarks")]

from reliability_helpers import percentile, rss_bytes  # noqa: E402


def _spec(i: int):
    from service_helpers import xor_spec
    spec = xor_spec(epochs=200)
    spec.model.seed = i % 7
    return spec


def _client_process(address: str, first: int, clients: int, jobs: int, deadline: float, out) -> None:
    """`clients` threads in one process; sends back {rpc: [seconds]}, Counter of codes, done count."""
    import grpc
    sys.path[:0] = [str(HERE), str(HERE.parent / "service"), str(HERE.parents[1] / "benchmarks")]
    from fusetrain.v1 import service_pb2 as pb, service_pb2_grpc

    latencies: dict = defaultdict(list)
    codes: Counter = Counter()
    done = [0]
    lock = threading.Lock()
    channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", -1)])
    stub = service_pb2_grpc.TrainingServiceStub(channel)

    def timed(name, fn):
        t = time.perf_counter()
        try:
            value = fn()
            code = "OK"
        except grpc.RpcError as exc:
            value, code = None, exc.code().name
        with lock:
            latencies[name].append(time.perf_counter() - t)
            codes[code] += 1
        return value

    def one_client(c: int) -> None:
        for j in range(jobs):
            if time.monotonic() > deadline:
                return
            n = (first + c) * jobs + j
            job = timed("SubmitJob", lambda: stub.SubmitJob(pb.SubmitJobRequest(spec=_spec(n), request_id=f"load-{n}"),
                                                            timeout=60))
            if job is None:
                continue
            timed("WatchJob", lambda: [None for _ in stub.WatchJob(pb.WatchJobRequest(job_id=job.id), timeout=300)])
            state = timed("GetJob", lambda: stub.GetJob(pb.GetJobRequest(job_id=job.id), timeout=60))
            result = timed("GetResult", lambda: stub.GetResult(pb.GetResultRequest(job_id=job.id), timeout=60))
            if state is not None and state.state == pb.SUCCEEDED and result is not None:
                with lock:
                    done[0] += 1

    threads = [threading.Thread(target=one_client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    channel.close()
    out.put((dict(latencies), codes, done[0]))


def run_load(address: str, server_pid: int, clients: int, jobs: int, processes: int = 4,
             timeout: float = 900) -> dict:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    mem_before = rss_bytes(server_pid)
    t0 = time.monotonic()
    deadline = t0 + timeout
    per = [clients // processes + (i < clients % processes) for i in range(processes)]
    procs, first = [], 0
    for n in per:
        p = ctx.Process(target=_client_process, args=(address, first, n, jobs, deadline, out))
        p.start()
        procs.append(p)
        first += n
    latencies: dict = defaultdict(list)
    codes: Counter = Counter()
    done = 0
    for _ in procs:
        lat, c, d = out.get(timeout=timeout + 60)
        for k, v in lat.items():
            latencies[k] += v
        codes.update(c)
        done += d
    for p in procs:
        p.join()
    wall = time.monotonic() - t0
    return {"clients": clients, "jobs": clients * jobs, "succeeded": done, "wall_seconds": wall,
            "jobs_per_second": done / wall, "codes": dict(codes),
            "latency_ms": {k: {q: percentile(v, q) * 1000 for q in (50, 95, 99)} | {"n": len(v)}
                           for k, v in sorted(latencies.items())},
            "memory_before_mib": mem_before / 2**20, "memory_after_mib": rss_bytes(server_pid) / 2**20}


def report(f: dict) -> str:
    lines = [f"load: {f['clients']} clients x {f['jobs'] // f['clients']} jobs = {f['jobs']} jobs on 127.0.0.1, "
             f"{f['succeeded']} SUCCEEDED in {f['wall_seconds']:.1f} s ({f['jobs_per_second']:.1f} jobs/s)",
             f"  calls by status code: {f['codes']}",
             "  latency per RPC (ms)   p50      p95      p99      calls"]
    for name, q in f["latency_ms"].items():
        lines.append(f"  {name:<20} {q[50]:8.1f} {q[95]:8.1f} {q[99]:8.1f} {q['n']:8d}")
    lines.append(f"  server memory (process and workers, RSS): {f['memory_before_mib']:.0f} MiB before, "
                 f"{f['memory_after_mib']:.0f} MiB after")
    return "\n".join(lines)


def main() -> int:
    from helpers import ServerProcess

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--jobs-per-client", type=int, default=50)
    p.add_argument("--processes", type=int, default=4, help="client processes the threads are spread over")
    p.add_argument("--timeout", type=float, default=900)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="fusetrain-load-") as tmp:
        proc = ServerProcess(Path(tmp) / "data", "--workers", "2", "--rpc-threads", str(a.clients + 16))
        try:
            proc.wait_healthy()
            f = run_load(proc.address, proc.proc.pid, a.clients, a.jobs_per_client, a.processes, a.timeout)
        finally:
            proc.stop()
    print(report(f))
    bad = {k: v for k, v in f["codes"].items() if k != "OK"}
    return 1 if bad or f["succeeded"] != f["jobs"] else 0


if __name__ == "__main__":
    sys.exit(main())
