"""The service's three figures (a benchmark, not a test): `make bench-service`.

1. Round trip of a warm XOR job (SubmitJob -> WatchJob to the end -> GetResult) minus its
   training time: p50 and p95 (target: at most 5 ms at p50, 8 ms at p95), and where each
   millisecond goes: the server runs with FUSETRAIN_TRACE (service/recorder.py's trace) and the
   stages between its stamps and the client's are printed as p50/p95 (they add up to the round
   trip). Then Predict of one Iris row end to end, p50/p95 (target: at most 2 ms at p50).
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
from fusetrain.wire.tensors import array_to_tensor  # noqa: E402
from fusetrain.v1 import job_pb2, service_pb2 as pb, service_pb2_grpc  # noqa: E402
from helpers import ServerProcess, npz_bytes, seeds_data, seeds_spec, upload, xor_spec  # noqa: E402


SHARED = ROOT.parent / "shared" / "datasets"

# The round trip's stages, between consecutive stamps (client: t0, ack, watched, result; server:
# service/recorder.py's trace). They add up to the round trip.
STAGES = (
    ("submit -> commit", "t0", "submit_committed"),        # RPC in, admission, the durable commit
    ("queue -> worker start", "submit_committed", "worker_started"),
    ("training (engine)", None, None),                     # the result's train + compile seconds
    ("job function around it", "worker_started", "worker_done"),   # minus the training
    ("worker -> recorder", "worker_done", "commit_begin"),  # pipe, pool thread, inbox, files
    ("commit (outcome)", "commit_begin", "committed"),      # the durable transaction
    ("watcher wake-up", "committed", "watched"),            # to the client's last event
    ("GetResult", "watched", "result"),
)


def round_trip(stub, n: int) -> tuple[list[float], list[dict]]:
    """Overheads (round trip minus training) and each job's stamps (wall-clock seconds)."""
    spec = xor_spec()
    overheads, stamps = [], []
    for i in range(n + 5):
        t0, p0 = time.time(), time.perf_counter()
        job = stub.SubmitJob(pb.SubmitJobRequest(spec=spec))
        ack = time.perf_counter()
        for _ in stub.WatchJob(pb.WatchJobRequest(job_id=job.id)):
            pass
        watched = time.perf_counter()
        result = stub.GetResult(pb.GetResultRequest(job_id=job.id))
        end = time.perf_counter()
        if i >= 5:   # the first few warm the channel and the server's caches
            training = result.timings.train_seconds + result.timings.compile_seconds
            overheads.append(end - p0 - training)
            stamps.append({"id": job.id, "t0": t0, "ack": t0 + ack - p0, "watched": t0 + watched - p0,
                           "result": t0 + end - p0, "training": training})
    return overheads, stamps


def breakdown(stamps: list[dict], trace_file: Path) -> list[tuple[str, list[float]]]:
    """Milliseconds per stage and job, from the client's stamps and the server's trace file."""
    server: dict = {}
    if trace_file.exists():
        for line in trace_file.read_text().splitlines():
            job_id, stage, when = line.split()
            server.setdefault(job_id, {}).setdefault(stage, float(when))   # the first stamp
    rows = [("submit ack (client)", [1e3 * (s["ack"] - s["t0"]) for s in stamps])]
    for name, a, b in STAGES:
        values = []
        for s in stamps:
            t = {**server.get(s["id"], {}), **s}
            if a is None:
                values.append(1e3 * s["training"])
            elif a in t and b in t:
                v = t[b] - t[a] - (s["training"] if name == "job function around it" else 0.0)
                values.append(1e3 * v)
        rows.append((name, values))
    return rows


def iris_data() -> tuple[np.ndarray, np.ndarray, str]:
    """Iris (../shared/datasets/iris.csv, species one-hot in sorted order), or a 4-feature
    3-class stand-in of the same shape when that folder is absent; and which it is."""
    path = SHARED / "iris.csv"
    if path.exists():
        raw = np.genfromtxt(path, delimiter=",", dtype=str)
        raw = raw[[len(r) == 5 and r[4] != "" for r in raw]]
        names = sorted(set(raw[:, 4]))
        labels = np.array([names.index(v) for v in raw[:, 4]])
        return raw[:, :4].astype(np.float32), np.eye(3, dtype=np.float32)[labels], "Iris (UCI)"
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 50)
    x = (rng.normal(size=(150, 4)) + labels[:, None]).astype(np.float32)
    return x, np.eye(3, dtype=np.float32)[labels], "a synthetic 4-feature 3-class stand-in"


def predict_one_row(stub, n: int) -> tuple[list[float], str]:
    """Predict of one Iris row, end to end (the client's call), after a few warm-up calls."""
    x, y, what = iris_data()
    ds = upload(stub, npz_bytes(x=x, y=y), name="iris")
    spec = json_format.ParseDict({
        "name": "iris",
        "model": {"inputs": 4, "layers": [{"units": 8, "activation": "tanh"},
                                          {"units": 3, "activation": "softmax"}],
                  "loss": "softmax_cross_entropy", "seed": 0, "normalization": {"kind": "standardize"}},
        "optimizer": {"kind": "adam", "learning_rate": 0.01},
        "training": {"epochs": 200, "batch_size": 16, "seed": 1},
        "data": {"train": {"dataset_id": ds.id}},
    }, job_pb2.JobSpec())
    job = stub.SubmitJob(pb.SubmitJobRequest(spec=spec))
    for _ in stub.WatchJob(pb.WatchJobRequest(job_id=job.id)):
        pass
    row = array_to_tensor(x[:1])
    times = []
    for i in range(n + 10):
        t0 = time.perf_counter()
        stub.Predict(pb.PredictRequest(job_id=job.id, x=row))
        if i >= 10:
            times.append(time.perf_counter() - t0)
    return times, what


def p50_p95(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), float(np.percentile(values, 95))


def batch(stub, count: int) -> tuple[float, float]:
    x, y = seeds_data()
    service, ds = service_batch(stub, count)
    # The engine alone, the same jobs in a loop, in this process (one thread, as each worker).
    engine.warmup()
    t0 = time.perf_counter()
    for s in range(count):
        spec = seeds_spec(ds.id, batch_size=16)
        spec.model.seed = s
        job = to_engine(spec, ServiceLimits(), 1)
        engine.train(job.model, job.optimizer, job.config, x, y)
    alone = time.perf_counter() - t0
    return service, alone


def service_batch(stub, count: int) -> tuple[float, pb.Dataset]:
    """Seconds for `count` seeds jobs of one SubmitJobs call to end, and their dataset."""
    x, y = seeds_data()
    ds = upload(stub, npz_bytes(x=x, y=y), name="seeds")
    base = seeds_spec(ds.id, batch_size=16)
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
    return service, ds


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
    parser.add_argument("--predicts", type=int, default=200)
    parser.add_argument("--skip-cold", action="store_true", help="skip the empty-cache start (~1 min)")
    parser.add_argument("--skip-batch", action="store_true", help="skip the 1,000-job batch")
    args = parser.parse_args()
    cores = os.cpu_count()
    print(f"fusetrain service benchmark: {cores} cores, 2 workers x 1 thread, NUMBA_CACHE_DIR="
          f"{os.environ.get('NUMBA_CACHE_DIR', '(numba default)')}")
    with tempfile.TemporaryDirectory() as tmp:
        warm = cold_start(Path(tmp) / "warm", os.environ.get("NUMBA_CACHE_DIR", str(Path(tmp) / "nc")))
        cold = None if args.skip_cold else cold_start(Path(tmp) / "cold", str(Path(tmp) / "empty-cache"))
        trace_file = Path(tmp) / "trace.txt"
        proc = ServerProcess(Path(tmp) / "bench", "--workers", "2", env={"FUSETRAIN_TRACE": str(trace_file)})
        proc.wait_healthy()
        channel = grpc.insecure_channel(proc.address)
        stub = service_pb2_grpc.TrainingServiceStub(channel)
        try:
            over, stamps = round_trip(stub, args.round_trips)
            stages = breakdown(stamps, trace_file)
            predicts, iris = predict_one_row(stub, args.predicts)
            service, alone = (None, None) if args.skip_batch else batch(stub, args.jobs)
        finally:
            channel.close()
            proc.stop()
    p50, p95 = (1e3 * v for v in p50_p95(over))
    print(f"1. XOR round trip minus training, {len(over)} jobs: p50 {p50:.2f} ms, p95 {p95:.2f} ms "
          f"(target p50 <= 5 ms: {'met' if p50 <= 5 else 'missed'}, p95 <= 8 ms: {'met' if p95 <= 8 else 'missed'})")
    print("   where the time goes (ms per job; the stages after 'submit ack' add up to the round trip):")
    print(f"   {'stage':<26} {'p50':>7} {'p95':>7}")
    for name, values in stages:
        if values:
            a, b = p50_p95(values)
            print(f"   {name:<26} {a:7.2f} {b:7.2f}")
        else:
            print(f"   {name:<26}     (no stamps: the server was started without FUSETRAIN_TRACE support)")
    a, b = (1e3 * v for v in p50_p95(predicts))
    print(f"   Predict of one row ({iris}), end to end, {len(predicts)} calls: p50 {a:.2f} ms, "
          f"p95 {b:.2f} ms (target p50 <= 2 ms: {'met' if a <= 2 else 'missed'})")
    if service is None:
        print("2. (skipped: --skip-batch)")
    else:
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
