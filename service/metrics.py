"""Prometheus metrics of the service, through the official client library (prometheus_client).

Two kinds, both shown at the dashboard's `/metrics` (docs/SERVICE.md lists every metric):

    events   counters and histograms of this process, in prometheus_client's default registry:
             RPCs (counted by one gRPC server interceptor, rpcmetrics.py), jobs' durations and queue waits,
             samples trained, compile seconds, worker starts and crashes, upload bytes, refusals
    state    gauges read from one server when scraped (`ServiceCollector`): jobs by state, queue
             depth per priority, kernel warm-up seconds, workers

The recorder, the process pool and the error mapping call the small functions below; this module
imports neither grpc nor the job logic, so the job logic may count without knowing of gRPC.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Optional

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from fusetrain.v1 import service_pb2 as pb

__all__ = ["CONTENT_TYPE_LATEST", "ServiceCollector", "exposition"]

_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_JOB_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)

RPC_SECONDS = Histogram("fusetrain_rpc_duration_seconds", "gRPC calls' time to their status, by method and code",
                        ["method", "code"], buckets=_SECONDS)
RPCS = Counter("fusetrain_rpc_requests", "gRPC calls ended, by method and status code", ["method", "code"])
UPLOAD_BYTES = Counter("fusetrain_upload_bytes", "dataset bytes received by UploadDataset")
REFUSALS = Counter("fusetrain_limit_refusals", "requests refused RESOURCE_EXHAUSTED, by the limit or field hit",
                   ["limit"])
JOB_SECONDS = Histogram("fusetrain_job_duration_seconds", "run time of a job's last attempt (start to outcome), "
                        "by final state", ["state"], buckets=_JOB_SECONDS)
QUEUE_WAIT = Histogram("fusetrain_job_queue_wait_seconds", "time from submission to a worker starting the job",
                       buckets=_JOB_SECONDS)
COMPILE_SECONDS = Histogram("fusetrain_job_compile_seconds", "seconds a job spent compiling or loading kernels",
                            buckets=_SECONDS)
SAMPLES = Counter("fusetrain_training_samples", "training samples processed (rows x epochs); rate() is samples/s")
EPOCHS = Counter("fusetrain_training_epochs", "epochs trained")
WORKER_STARTS = Counter("fusetrain_worker_starts", "worker processes started")
WORKER_CRASHES = Counter("fusetrain_worker_crashes", "worker processes that died without being asked to")

_RATE_WINDOW = 10.0         # seconds of epochs that fusetrain_training_samples_per_second averages
_recent: list = []          # (time, samples) of recent epoch blocks
_recent_lock = threading.Lock()


def job_started(queued_seconds: float) -> None:
    QUEUE_WAIT.observe(max(0.0, queued_seconds))


def job_finished(state: str, run_seconds: float, compile_seconds: Optional[float] = None) -> None:
    JOB_SECONDS.labels(state).observe(max(0.0, run_seconds))
    if compile_seconds is not None and math.isfinite(compile_seconds):
        COMPILE_SECONDS.observe(max(0.0, compile_seconds))


def epochs_trained(rows, seconds_col: int, per_second_col: int) -> None:
    """A block of epoch rows (executor.METRIC_FIELDS): count epochs and samples (seconds x samples/s)."""
    samples = 0.0
    for row in rows:
        s, rate = float(row[seconds_col]), float(row[per_second_col])
        if math.isfinite(s) and math.isfinite(rate):
            samples += s * rate
    EPOCHS.inc(len(rows))
    SAMPLES.inc(round(samples))
    now = time.monotonic()
    with _recent_lock:
        _recent.append((now, samples))
        while _recent and _recent[0][0] < now - _RATE_WINDOW:
            _recent.pop(0)


def samples_per_second() -> float:
    now = time.monotonic()
    with _recent_lock:
        return sum(n for t, n in _recent if t >= now - _RATE_WINDOW) / _RATE_WINDOW


def refused(exc: BaseException) -> None:
    """A request answered RESOURCE_EXHAUSTED: count it under the limit (or spec field) it hit."""
    REFUSALS.labels(getattr(exc, "field", "") or "other").inc()


class ServiceCollector:
    """Gauges read from one server's job manager when scraped."""

    def __init__(self, manager):
        self.manager = manager

    def collect(self):
        jobs = GaugeMetricFamily("fusetrain_jobs", "jobs in the store, by state", labels=["state"])
        counts = self.manager.store.count_by_state()
        for name, number in sorted(pb.JobState.items(), key=lambda kv: kv[1]):
            if number:
                jobs.add_metric([name], counts.get(number, 0))
        yield jobs
        queue = GaugeMetricFamily("fusetrain_queue_depth", "jobs waiting for a worker, by priority",
                                  labels=["priority"])
        queued = getattr(self.manager.executor, "queued_priorities", None)
        for priority, count in sorted((queued() if queued else {}).items()):
            queue.add_metric([str(priority)], count)
        yield queue
        warm = GaugeMetricFamily("fusetrain_kernel_compile_seconds", "the first worker's warm-up (compile or "
                                 "cache load) of a dtype's kernels, seconds so far while compiling",
                                 labels=["dtype", "state"])
        states = getattr(self.manager.executor, "kernel_states", None)
        for k in states() if states else ():
            warm.add_metric([k["dtype"], k["state"]], k["seconds"])
        yield warm
        yield GaugeMetricFamily("fusetrain_workers", "worker processes configured",
                                value=self.manager.config.workers)
        yield GaugeMetricFamily("fusetrain_training_samples_per_second", "training samples per second over the "
                                f"last {_RATE_WINDOW:g} s", value=samples_per_second())


def exposition(server_registry: CollectorRegistry) -> bytes:
    """The text format of this process's event metrics followed by one server's gauges."""
    return generate_latest(REGISTRY) + generate_latest(server_registry)
