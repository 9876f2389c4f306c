"""The gRPC service: a warm job's round trip, and a batch of small jobs through SubmitJobs.

`setup` starts `fusetrain serve` as a subprocess on a free 127.0.0.1 port with a temporary
data directory, waits for grpc.health.v1 to answer SERVING and runs one job so that the
workers are warm; `teardown` stops it (SIGTERM, the server's graceful path) and removes the
directory. Everything goes through the generated stubs (fusetrain.v1), as any client would.

These are `track_` benchmarks that repeat their measurement inside one call and report the
median: asv re-runs `setup` before every sample of a `time_` benchmark, and a server start
(about 5 s: the workers load the engine's kernels) per sample would swamp the figures.
Skipped (NotImplementedError) at commits without the service.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import common

START_TIMEOUT = 180.0    # a cold Numba cache makes the workers compile first (~30 s per dtype)
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_service() -> None:
    for module in ("fusetrain.service.server", "fusetrain.v1.service_pb2_grpc", "grpc_health.v1.health_pb2"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            raise NotImplementedError(f"{module} is not importable at this commit: no service to measure")


def _tensor(job_pb2, array: np.ndarray):
    array = np.ascontiguousarray(array, dtype="<f4")
    return job_pb2.Tensor(dtype="float32", shape=list(array.shape), data=array.tobytes())


class ServiceServer:
    """A `fusetrain serve` subprocess on 127.0.0.1 and a channel to it."""

    def __init__(self, workers: int = 2, env: dict | None = None):
        _check_service()
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        from fusetrain.v1 import job_pb2, service_pb2, service_pb2_grpc

        self.grpc, self.job_pb2, self.pb2 = grpc, job_pb2, service_pb2
        self.tmp = tempfile.TemporaryDirectory(prefix="fusetrain-asv-service-")
        self.address = f"127.0.0.1:{_free_port()}"
        self.log = open(Path(self.tmp.name) / "server.log", "w+")
        cmd = [sys.executable, "-m", "fusetrain.client.cli", "serve", "--address", self.address,
               "--data-dir", str(Path(self.tmp.name) / "data"), "--workers", str(workers),
               "--threads-per-worker", "1", "--log-level", "WARNING"]
        # No tokens: a loopback server without them accepts plain calls, which is what we time.
        env = {k: v for k, v in (os.environ if env is None else env).items()
               if k not in ("FUSETRAIN_TOKEN", "FUSETRAIN_TOKEN_FILE")}
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        try:
            self.channel = grpc.insecure_channel(self.address)
            self.stub = service_pb2_grpc.TrainingServiceStub(self.channel)
            health = health_pb2_grpc.HealthStub(self.channel)
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"fusetrain serve exited with {self.proc.returncode}: {self.log_tail()}")
                try:
                    reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"fusetrain serve not SERVING after {START_TIMEOUT:.0f} s: {self.log_tail()}")
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def log_tail(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return " | ".join(self.log.read().strip().splitlines()[-5:])

    def state_name(self, state: int) -> str:
        return self.pb2.JobState.Name(state)

    def spec(self, x: np.ndarray, y: np.ndarray, hidden: int, epochs: int, batch: int, lr: float):
        """A JobSpec: I-hidden-O sigmoid, half SSE, plain SGD, inline float32 data."""
        j = self.job_pb2
        return j.JobSpec(
            name="asv",
            model=j.Model(inputs=x.shape[1], layers=[j.Layer(units=hidden, activation="sigmoid"),
                                                     j.Layer(units=y.shape[1], activation="sigmoid")],
                          loss="half_sse", dtype="float32", seed=1),
            optimizer=j.Optimizer(kind="sgd", learning_rate=lr),
            training=j.Training(epochs=epochs, batch_size=batch, threads=1),
            data=j.Data(train=j.DataSource(x=_tensor(j, x), y=_tensor(j, y))))

    def round_trip(self, spec) -> None:
        """SubmitJob, WatchJob until the final state, GetResult: what `fusetrain train` does."""
        job = self.stub.SubmitJob(self.pb2.SubmitJobRequest(spec=spec), timeout=60)
        state = None
        for message in self.stub.WatchJob(self.pb2.WatchJobRequest(job_id=job.id), timeout=120):
            # A WatchJobResponse carries a batch of events (one JobEvent per message before).
            batched = "events" in message.DESCRIPTOR.fields_by_name
            for event in message.events if batched else [message]:
                if event.HasField("state"):
                    state = self.state_name(event.state.state)
        if state != "SUCCEEDED":
            raise RuntimeError(f"job {job.id} ended {state}: {self.stub.GetJob(self.pb2.GetJobRequest(job_id=job.id)).message}")
        self.stub.GetResult(self.pb2.GetResultRequest(job_id=job.id), timeout=60)

    def run_batch(self, base, seeds: int, timeout: float = 300.0) -> float:
        """Seconds from SubmitJobs (base spec x a grid of `seeds` model seeds) until every job ended."""
        from google.protobuf import struct_pb2

        grid = [self.pb2.GridAxis(field="model.seed",
                                  values=[struct_pb2.Value(number_value=s) for s in range(1, seeds + 1)])]
        t0 = time.perf_counter()
        batch = self.stub.SubmitJobs(self.pb2.SubmitJobsRequest(base=base, grid=grid), timeout=60)
        active = [self.pb2.QUEUED, self.pb2.RUNNING, self.pb2.CANCELLING]
        while True:
            left = self.stub.ListJobs(self.pb2.ListJobsRequest(batch_id=batch.batch_id, states=active,
                                                               page_size=1), timeout=60)
            if not left.jobs:
                break
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"batch of {seeds} jobs unfinished after {timeout:.0f} s")
            time.sleep(0.005)
        seconds = time.perf_counter() - t0
        done = self.stub.ListJobs(self.pb2.ListJobsRequest(batch_id=batch.batch_id, states=[self.pb2.SUCCEEDED],
                                                           page_size=1000), timeout=60)
        if len(done.jobs) != seeds:
            raise RuntimeError(f"{seeds - len(done.jobs)} of {seeds} batch jobs did not succeed")
        return seconds

    def stop(self) -> None:
        if getattr(self, "channel", None) is not None:
            self.channel.close()
            self.channel = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.tmp.cleanup()


class ServiceRoundTrip:
    """A warm job's round trip: SubmitJob, WatchJob to SUCCEEDED, GetResult (median of 20).

    The job is XOR on a 2-4-1 sigmoid network, full batch, 100 epochs: training itself takes
    well under a millisecond, so the figure is the service's own latency.
    """

    trips = 20
    processes = 1
    timeout = 300

    def setup(self):
        self.server = ServiceServer()
        x, y = common.dataset("tiny", "float32", 4)
        self.spec = self.server.spec(x, y, hidden=4, epochs=100, batch=0, lr=0.5)
        self.server.round_trip(self.spec)       # warm: the first job of each worker

    def teardown(self):
        self.server.stop()

    def track_round_trip_seconds(self):
        trips = 2 if common.smoke() else self.trips
        times = []
        for _ in range(trips):
            t0 = time.perf_counter()
            self.server.round_trip(self.spec)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    track_round_trip_seconds.unit = "seconds"


class ServiceBatch:
    """Throughput of a batch of small jobs through SubmitJobs (2 workers x 1 thread): jobs/s.

    One base spec (the small shape, 7-5-3 sigmoid on 210 fixed-seed synthetic rows, batch
    16, 50 epochs) and a grid of 64 model seeds; the clock runs from SubmitJobs until no job
    of the batch is queued or running. Median of 3 batches.
    """

    seeds = 64
    epochs = 50
    batches = 3
    processes = 1
    timeout = 600

    def setup(self):
        self.server = ServiceServer()
        s = common.shape("small")
        x, y = common.dataset("small", "float32", s.rows)
        epochs = 1 if common.smoke() else self.epochs
        self.base = self.server.spec(x, y, hidden=s.sizes[1], epochs=epochs, batch=s.batch, lr=s.learning_rate)
        self.server.run_batch(self.base, 2)      # warm both workers

    def teardown(self):
        self.server.stop()

    def track_batch_jobs_per_second(self):
        seeds = 4 if common.smoke() else self.seeds
        rates = [seeds / self.server.run_batch(self.base, seeds)
                 for _ in range(1 if common.smoke() else self.batches)]
        return round(statistics.median(rates), 1)

    track_batch_jobs_per_second.unit = "jobs/s"
