"""`fusetrain train --local`: run a job in this process, with no server.

It runs the service's own job function (service/jobfn.py: the same validation, cross-validation
split, normalisation and engine call as a worker) on datasets written to a temporary folder, and
returns the same Result a server would. The engine and the job function are imported here, only
when asked for; a client installed without them gets a clear message.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import grpc

from fusetrain.v1 import service_pb2 as pb

from . import errors, jobfiles
from .jobfiles import SpecLike
from .types import EpochEvent, Job, Result, StateEvent

MISSING = ("training in-process (--local) needs fusetrain's engine and job function (numba, scipy): "
           "install the full package (pip install -e .) or train on a server (--server HOST:PORT)")


def _service():
    try:
        from fusetrain.service import jobfn, specs
        from fusetrain.service import executor as ex
        from fusetrain.service.config import ServiceLimits
        from fusetrain.service.errors import ServiceError
        from fusetrain import engine
    except ImportError as exc:
        raise errors.FusetrainError(f"{MISSING} ({exc})") from None
    return jobfn, specs, ex, ServiceLimits, ServiceError, engine


def train_local(spec: SpecLike, x=None, y=None, *, validation=None, progress=False,
                threads: Optional[int] = None, overrides: Optional[dict] = None) -> Result:
    """Train in-process; progress=True shows the same bar as a server job, a callable gets events."""
    jobfn, specs, ex, ServiceLimits, ServiceError, engine = _service()
    if not threads:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limits = ServiceLimits(max_job_seconds=math.inf)
    with tempfile.TemporaryDirectory(prefix="fusetrain-local-") as tmp:
        root = Path(tmp)
        (root / "datasets").mkdir()
        shapes: dict = {}

        def store(arrays: dict, name: str) -> str:
            blob = jobfiles.npz_bytes(arrays)
            sha = hashlib.sha256(blob).hexdigest()
            (root / "datasets" / f"{sha}.npz").write_bytes(blob)
            shapes[sha] = {k: {"dtype": v.dtype.name, "shape": list(v.shape)} for k, v in arrays.items()}
            return sha

        msg, base_dir = jobfiles.load_spec(spec, overrides)
        if x is not None and y is not None:
            jobfiles.attach_arrays(msg, x, y, store, "train")
        if validation is not None:
            jobfiles.attach_arrays(msg, validation[0], validation[1], store, "validation")
        jobfiles.resolve_files(msg, base_dir, store)
        try:
            job = specs.to_engine(msg, limits, threads)
            specs.check_data(msg, job, shapes.get, limits)
        except (ServiceError, engine.InvalidSpec) as exc:
            raise errors.InvalidArgument(grpc.StatusCode.INVALID_ARGUMENT, str(exc), "local") from None

        name = msg.name or "local"
        show: Optional[Callable] = None
        if progress is True:
            from .progress import JobProgress
            show = JobProgress(name, job.config.epochs)
        elif callable(progress):
            show = progress
        seq = [0]

        def emit(event) -> None:
            if show is not None:
                show(event)

        def state(name_: str, reason: str = "", message: str = "") -> None:
            seq[0] += 1
            emit(StateEvent("local", seq[0], None, name_, reason, message, 1))

        class Ctx:
            def report(self, kind, payload):
                if kind != ex.EPOCHS:
                    return
                for row in payload:
                    seq[0] += 1
                    epoch, loss, acc, vloss, vacc, lr, secs, sps = (float(v) for v in row)
                    opt = lambda v: None if math.isnan(v) else v  # noqa: E731
                    emit(EpochEvent("local", seq[0], None, int(epoch), loss, opt(acc), opt(vloss), opt(vacc),
                                    lr, secs, sps))

            def stop_requested(self):
                return None

        task = ex.Task(job_id="local", attempt=1, spec=msg.SerializeToString(), data_dir=str(root),
                       threads=job.config.threads, time_limit=math.inf, checkpoint_seconds=1e12,
                       limits=limits, threads_per_worker=threads)
        t0 = time.time()
        try:
            state("RUNNING")
            outcome = jobfn.run_job(task, Ctx())
            state(outcome.status, outcome.reason, outcome.message)
        finally:
            getattr(show, "close", lambda: None)()
    if outcome.status != ex.SUCCEEDED:
        raise errors.JobFailed(Job(id="local", state=outcome.status, name=name, failure_reason=outcome.reason,
                                   message=outcome.message))
    r = pb.JobResult.FromString(outcome.result["encoded"])
    r.job_id, r.state, r.attempt = "local", pb.SUCCEEDED, 1
    r.timings.total_seconds = time.time() - t0
    return Result.from_proto(r, msg)
