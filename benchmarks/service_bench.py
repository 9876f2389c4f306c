"""The service's three figures (a benchmark, not a test): `make bench-service`.

1. Round trip of a warm XOR job (SubmitJob -> WatchJob to the end -> GetResult) minus its
   training time: p50 and p95 (target: at most 5 ms at p50).
2. 1,000 seeds-sized jobs (7-5-3, 500 epochs, batch 16) through one SubmitJobs call, against
   the engine alone training the same jobs in a loop (target: at least 80% of its throughput).
3. Cold start: seconds from `fusetrain serve` to a SERVING health check, with an empty and with
   a warm Numba cache.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
from google.protobuf import json_format, struct_pb2

ROOT = Path(__file__).resolve().parents[1]

from fusetrain import engine  # noqa: E402
from fusetrain.service.config import ServiceLimits  # noqa: E402
from fusetrain.service.specs import to_engine  # noqa: E402
from fusetrain.v1 import job_pb2, service_pb2 as pb, service_pb2_grpc  # noqa: E402
from helpers import ServerProcess, npz_bytes, seeds_data, upload, xor_spec  # noqa: E402


def seeds_job(dataset_id: str) -> job_pb2.JobSpec:
    return json_format.ParseDict({
        "model": {"inputs": 7, "layers": [{"units": 5, "activation": "sigmoid"},
                                          {"units": 3, "activation": "sigmoid"}]},
        "optimizer": {"kind": "sgd", "learning_rate": 0.3},
        "training": {"epochs": 500, "batch_size": 16},
        "data": {"train": {"dataset_id": dataset_id}},
    }, job_pb2.JobSpec())


def round_trip(stub, n: int) -> list[float]:
    spec = xor_spec()
    overheads = []
    for i in range(n + 5):
        t0 = time.perf_counter()
        job = stub.SubmitJob(pb.SubmitJobRequest(spec=spec))
        for _ in stub.WatchJob(pb.WatchJobRequest(job_id=job.id)):
            pass
        result = stub.GetResult(pb.GetResultRequest(job_id=job.id))
        elapsed = time.perf_counter() - t0
        if i >= 5:   # the first few warm the channel and the server's caches
            overheads.append(elapsed - result.timings.train_seconds - result.timings.compile_seconds)
    return overheads


def batch(stub, count: int) -> tuple[float, float]:
    x, y = seeds_data()
    ds = upload(stub, npz_bytes(x=x, y=y), name="seeds")
    base = seeds_job(ds.id)
    seeds = [struct_pb2.Value(number_value=s) for s in range(count)]
    t0 = time.perf_counter()
    resp = stub.SubmitJobs(pb.SubmitJobsRequest(base=base, grid=[pb.GridAxis(field="model.seed", values=seeds)]))
    # Jobs start in submission order: watch the last one, then wait for any still running.
    for _ in stub.WatchJob(pb.WatchJobRequest(job_id=resp.jobs[-1].id)):
        pass
    while stub.ListJobs(pb.ListJobsRequest(batch_id=resp.batch_id, page_size=1,
                                           states=[pb.QUEUED, pb.RUNNING])).jobs:
        time.sleep(0.005)
    service = time.perf_counter() - t0
    failed = stub.ListJobs(pb.ListJobsRequest(batch_id=resp.batch_id, states=[pb.FAILED])).jobs
    assert not failed, failed[0].message
    # The engine alone, the same jobs in a loop, in this process (one thread, as each worker).
    engine.warmup()
    t0 = time.perf_counter()
    for s in range(count):
        spec = seeds_job(ds.id)
        spec.model.seed = s
        job = to_engine(spec, ServiceLimits(), 1)
        engine.train(job.model, job.optimizer, job.config, x, y)
    alone = time.perf_counter() - t0
    return service, alone


def cold_start(data_root: Path, cache: str) -> float:
    proc = ServerProcess(data_root, "--workers", "2", env={"NUMBA_CACHE_DIR": cache})
    try:
        return proc.wait_healthy(timeout=600)
    finally:
        proc.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-trips", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--skip-cold", action="store_true", help="skip the empty-cache start (~1 min)")
    args = parser.parse_args()
    cores = os.cpu_count()
    print(f"fusetrain service benchmark: {cores} cores, 2 workers x 1 thread, NUMBA_CACHE_DIR="
          f"{os.environ.get('NUMBA_CACHE_DIR', '(numba default)')}")
    with tempfile.TemporaryDirectory() as tmp:
        warm = cold_start(Path(tmp) / "warm", os.environ.get("NUMBA_CACHE_DIR", str(Path(tmp) / "nc")))
        cold = None if args.skip_cold else cold_start(Path(tmp) / "cold", str(Path(tmp) / "empty-cache"))
        proc = ServerProcess(Path(tmp) / "bench", "--workers", "2")
        proc.wait_healthy()
        channel = grpc.insecure_channel(proc.address)
        stub = service_pb2_grpc.TrainingServiceStub(channel)
        try:
            over = round_trip(stub, args.round_trips)
            service, alone = batch(stub, args.jobs)
        finally:
            channel.close()
            proc.stop()
    p50 = statistics.median(over) * 1e3
    p95 = float(np.percentile(over, 95)) * 1e3
    print(f"1. XOR round trip minus training, {len(over)} jobs: p50 {p50:.2f} ms, p95 {p95:.2f} ms "
          f"(target p50 <= 5 ms: {'met' if p50 <= 5 else 'missed'})")
    ratio = alone / service
    print(f"2. {args.jobs} seeds jobs (7-5-3, 500 epochs, batch 16): service {service:.2f} s "
          f"({args.jobs / service:.0f} jobs/s, SubmitJobs to the last SUCCEEDED), engine alone in a loop "
          f"{alone:.2f} s ({args.jobs / alone:.0f} jobs/s): {100 * ratio:.0f}% of the engine's throughput "
          f"(target >= 80%: {'met' if ratio >= 0.8 else 'missed'})")
    print(f"3. cold start to SERVING: warm Numba cache {warm:.2f} s"
          + ("" if cold is None else f", empty Numba cache {cold:.2f} s"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
