"""Helpers of the service tests: job specs, data, uploads, and an Executor test double."""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future

import grpc
import numpy as np
import pytest
from google.protobuf import json_format

from fusetrain.service import executor as ex
from fusetrain.service.config import ServerConfig, ServiceLimits
from fusetrain.service.jobfn import run_job
from helpers import ServerProcess, npz_bytes, seeds_data, seeds_spec, upload, xor_spec  # noqa: F401 -- shared with the benchmarks
from fusetrain.service.server import Server
from fusetrain.wire.tensors import array_to_tensor
from fusetrain.v1 import job_pb2, service_pb2 as pb, service_pb2_grpc


def long_spec(epochs: int = 1_000_000, rows: int = 1000, **training) -> job_pb2.JobSpec:
    """A job that runs for a long time in short epochs (a few ms each)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 16)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)
    spec = json_format.ParseDict({
        "name": "long",
        "model": {"inputs": 16, "layers": [{"units": 32, "activation": "relu"},
                                           {"units": 1, "activation": "sigmoid"}],
                  "loss": "binary_cross_entropy"},
        "optimizer": {"kind": "sgd", "learning_rate": 0.01},
        "training": {"epochs": epochs, "batch_size": 4, **training},
    }, job_pb2.JobSpec())
    spec.data.train.x.CopyFrom(array_to_tensor(x))
    spec.data.train.y.CopyFrom(array_to_tensor(y))
    return spec


def watch(stub, job_id: str, after: int = 0, timeout: float = 120.0):
    """A job's events one by one (WatchJob sends them in batches)."""
    for message in stub.WatchJob(pb.WatchJobRequest(job_id=job_id, after_sequence=after), timeout=timeout):
        yield from message.events


def wait_done(stub, job_id: str, timeout: float = 120.0) -> pb.Job:
    """Watch a job to its final state; return it."""
    for _ in watch(stub, job_id, timeout=timeout):
        pass
    return stub.GetJob(pb.GetJobRequest(job_id=job_id))


class ThreadExecutor(ex.Executor):
    """A test double of the Executor: runs the real job function on one thread of this process."""

    name = "test-thread"

    def __init__(self, on_progress):
        self.on_progress = on_progress
        self.queue: deque = deque()
        self.futures: dict = {}
        self.current = None
        self.stop = None
        self.cv = threading.Condition()
        self.closed = False
        self.paused = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def submit(self, task):
        f = Future()
        with self.cv:
            self.futures[task.job_id] = f
            self.queue.append(task)
            self.cv.notify_all()
        return f

    def cancel(self, job_id, force=False):
        with self.cv:
            for t in list(self.queue):
                if t.job_id == job_id:
                    self.queue.remove(t)
                    f = self.futures.pop(job_id)
                    break
            else:
                if self.current == job_id:
                    self.stop = "cancel"
                    return ex.CANCEL_SIGNALLED
                return ex.UNKNOWN
        f.set_result(ex.Outcome(ex.CANCELLED, message="cancelled before it started"))
        return ex.CANCELLED_QUEUED

    def close(self, grace=0.0):
        with self.cv:
            self.closed = True
            self.stop = "suspend"
            for t in self.queue:
                self.futures.pop(t.job_id).cancel()
            self.queue.clear()
            self.cv.notify_all()
        self.thread.join(grace + 5)

    def _run(self):
        executor = self

        class Ctx:
            def report(self, kind, payload):
                executor.on_progress(executor.current, kind, payload)

            def stop_requested(self):
                return executor.stop

        while True:
            with self.cv:
                self.cv.wait_for(lambda: self.closed or (self.queue and not self.paused))
                if self.closed:
                    return
                task = self.queue.popleft()
                self.current, self.stop = task.job_id, None
            import time
            self.on_progress(task.job_id, ex.STARTED, {"attempt": task.attempt, "time": time.time(),
                                                       "worker": 0})
            outcome = run_job(task, Ctx())
            with self.cv:
                f = self.futures.pop(task.job_id, None)
                self.current = None
            if f is not None:
                f.set_result(outcome)
