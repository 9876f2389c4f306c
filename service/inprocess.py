"""In-process training: one JobSpec run in this process, with no server (`fusetrain train --local`).

It does for one job what a server does, minus the store, the queue and the worker pool: the
admission checks (specs.to_engine, specs.check_data), then the workers' own job function
(jobfn.run_job: the same cross-validation split, normalisation and engine call) on datasets kept
in a temporary folder laid out as a server's data directory. Progress comes as the JobEvent
messages WatchJob would stream, the outcome as the JobResult message GetResult would return.

    with Datasets() as data:
        spec.data.train.dataset_id = data.add({"x": x, "y": y})
        result = train(spec, data, on_event=print)       # a fusetrain.v1.JobResult
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from google.protobuf import timestamp_pb2

from fusetrain import engine
from fusetrain.v1 import job_pb2, service_pb2 as pb
from fusetrain.wire.errors import InvalidArgument, ResourceExhausted
from fusetrain.wire.metrics import epoch_message

from . import executor as ex, jobfn, search, specs
from .config import ServiceLimits

EventFn = Callable[[pb.JobEvent], None]


class JobEnded(Exception):
    """The job ran but did not succeed: `state` ("FAILED" or "CANCELLED"), `reason` (a
    FailureReason name such as "DIVERGED", "" when cancelled) and `message`."""

    def __init__(self, state: str, reason: str, message: str):
        self.state, self.reason, self.message = state, reason, message
        super().__init__(f"job ended {state}" + (f" ({reason})" if reason else "")
                         + (f": {message}" if message else ""))


class Datasets:
    """Datasets of in-process jobs, in a temporary folder laid out as a server's data directory
    (datasets/<id>.npz). `add(arrays)` returns the id to put in a DataSource's dataset_id; the
    folder goes with close() (or the end of a `with` block)."""

    def __init__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="fusetrain-local-")
        self.root = Path(self._tmp.name)
        (self.root / "datasets").mkdir()
        self.shapes: dict = {}       # id -> {array name: {"dtype", "shape"}}, as check_data reads them

    def add(self, arrays: dict, name: str = "") -> str:
        """Store named arrays ("x", "y", ...) as one dataset; its id is the sha256 of its bytes.
        (`name` is unused: the signature is the client's store callback's.)"""
        buf = io.BytesIO()
        np.savez(buf, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
        blob = buf.getvalue()
        sha = hashlib.sha256(blob).hexdigest()
        (self.root / "datasets" / f"{sha}.npz").write_bytes(blob)
        self.shapes[sha] = {k: {"dtype": np.asarray(v).dtype.name, "shape": list(np.shape(v))}
                            for k, v in arrays.items()}
        return sha

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> "Datasets":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


def train(spec: job_pb2.JobSpec, datasets: Optional[Datasets] = None, *, threads: Optional[int] = None,
          on_event: Optional[EventFn] = None, stop: Optional[Callable[[], bool]] = None,
          on_accepted: Optional[Callable[[pb.Job], None]] = None, job_id: str = "local") -> pb.JobResult:
    """Run `spec` here, to the end; returns its JobResult.

    Data comes inline in the spec or as dataset ids of `datasets`. `threads` defaults to the CPUs
    this process may use. `on_accepted` receives the Job message once the spec passed the checks
(its epochs_total resolved, as SubmitJob answers it); `on_event` receives a JobEvent per state change (RUNNING, then the end
    state) and per epoch; `stop()` returning true cancels at the next epoch boundary. A spec the
    service would refuse raises fusetrain.wire.errors.InvalidArgument or ResourceExhausted, as
    SubmitJob would answer; a job that ends FAILED or CANCELLED raises JobEnded."""
    if not threads:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limits = ServiceLimits(max_job_seconds=math.inf)
    own = datasets is None
    data = Datasets() if own else datasets
    try:
        try:
            job = specs.to_engine(spec, limits, threads)
            specs.check_data(spec, job, data.shapes.get, limits)
            if spec.HasField("search"):    # a search job (its candidates are checked as they are made)
                search.fill_defaults(spec)
                search.check(spec, limits.max_batch_jobs, limits.max_epochs)
        except engine.LimitExceeded as exc:
            raise ResourceExhausted("", str(exc)) from None
        except engine.InvalidSpec as exc:
            raise InvalidArgument("", str(exc)) from None

        if on_accepted is not None:
            on_accepted(pb.Job(id=job_id, state=pb.QUEUED, name=spec.name, labels=dict(spec.labels),
                               epochs_total=job.config.epochs, created_at=_now()))
        seq = [0]

        def emit(**kind) -> None:
            seq[0] += 1
            if on_event is not None:
                on_event(pb.JobEvent(job_id=job_id, sequence=seq[0], time=_now(), **kind))

        def state(name: str, reason: str = "", message: str = "") -> None:
            emit(state=pb.StateChange(state=pb.JobState.Value(name), message=message, attempt=1,
                                      failure_reason=pb.FailureReason.Value(reason) if reason else 0))

        class Context:
            """What jobfn.run_job sees of this process: epochs go to on_event, stop() is polled."""

            def report(self, kind, payload) -> None:
                if kind == ex.EPOCHS and on_event is not None:
                    for row in payload:
                        emit(epoch=epoch_message(row))

            def stop_requested(self):
                return "cancel" if stop is not None and stop() else None

        task = ex.Task(job_id=job_id, attempt=1, spec=spec.SerializeToString(), data_dir=str(data.root),
                       threads=job.config.threads, time_limit=math.inf, checkpoint_seconds=1e12,
                       limits=limits, threads_per_worker=threads, job=job)
        t0 = time.time()
        state("RUNNING")
        outcome = jobfn.run_job(task, Context())
        state(outcome.status, outcome.reason, outcome.message)
    finally:
        if own:
            data.close()
    if outcome.status != ex.SUCCEEDED:
        raise JobEnded(outcome.status, outcome.reason, outcome.message)
    result = pb.JobResult.FromString(outcome.result["encoded"])
    result.job_id, result.state, result.attempt = job_id, pb.SUCCEEDED, 1
    result.timings.total_seconds = time.time() - t0
    return result
