"""Helpers of the contract suite: tasks, an in-process reference run, result comparison."""

from __future__ import annotations

import itertools
import tempfile
import threading
from collections import defaultdict
from dataclasses import replace

import numpy as np

from fusetrain.service import executor as ex
from fusetrain.service.config import ServiceLimits
from fusetrain.service.files import Files
from fusetrain.service.jobfn import run_job
from fusetrain.service.specs import to_engine
from fusetrain.v1 import job_pb2

LIMITS = ServiceLimits(max_epochs=10_000_000, max_job_seconds=600)
_ids = itertools.count(1)
_data_dir = tempfile.mkdtemp(prefix="fusetrain-contract-")


def task(spec, threads: int = 1, time_limit: float = 600.0) -> ex.Task:
    """One attempt of a new job of `spec` (inline data: no dataset files needed)."""
    return ex.Task(job_id=f"contract-{next(_ids)}", attempt=1, spec=spec.SerializeToString(),
                   data_dir=_data_dir, threads=threads, time_limit=time_limit, checkpoint_seconds=60.0,
                   limits=LIMITS, threads_per_worker=1)


def admitted(t: ex.Task, rows: int) -> ex.Task:
    """`t` with the engine form admission makes, counting `rows` training rows (what decides
    whether a job is small enough to train in a pack: packing.estimate_seconds)."""
    job = to_engine(job_pb2.JobSpec.FromString(t.spec), t.limits, t.threads_per_worker)
    job.rows = rows
    return replace(t, job=job)


class Recorder:
    """The executor's on_progress: every (kind, payload) per job, and a way to wait for one."""

    def __init__(self):
        self.events = defaultdict(list)
        self.cv = threading.Condition()

    def __call__(self, job_id, kind, payload):
        with self.cv:
            self.events[job_id].append((kind, payload))
            self.cv.notify_all()

    def wait_for(self, predicate, timeout: float = 60.0):
        with self.cv:
            if not self.cv.wait_for(predicate, timeout):
                raise TimeoutError("no such progress within %g s" % timeout)

    def kinds(self, job_id):
        with self.cv:
            return [k for k, _ in self.events[job_id]]

    def started(self, job_id):
        with self.cv:
            return [p for k, p in self.events[job_id] if k == "started"]

    def epochs(self, job_id) -> int:
        with self.cv:
            return sum(len(p) for k, p in self.events[job_id] if k == "epochs")

    def checkpoints(self, job_id) -> int:
        with self.cv:
            return sum(1 for k, _ in self.events[job_id] if k == "checkpoint")


class _Quiet:
    def report(self, kind, payload):
        pass

    def stop_requested(self):
        return None


def reference(t: ex.Task) -> ex.Outcome:
    """The same attempt run here, in this process, by the same job function."""
    return run_job(t, _Quiet())


# History columns that are measured times, not results.
_TIMED = [ex.METRIC_FIELDS.index("seconds"), ex.METRIC_FIELDS.index("samples_per_second")]


def assert_same_result(a: ex.Outcome, b: ex.Outcome, same_status: bool = True) -> None:
    """Bit-identical weights, biases and metrics (all but the timings). Without `same_status`
    (a run stopped at epoch N against one planned for N epochs) the histories, thinned from
    different planned lengths, are compared at the epochs both kept."""
    assert a.result is not None and b.result is not None
    assert a.status == b.status or not same_status
    for (wa, ba), (wb, bb) in zip(a.result["weights"], b.result["weights"], strict=True):
        assert wa.dtype == wb.dtype and wa.tobytes() == wb.tobytes() and ba.tobytes() == bb.tobytes()
    ha, hb = np.delete(a.result["history"], _TIMED, axis=1), np.delete(b.result["history"], _TIMED, axis=1)
    if not same_status:
        both = np.intersect1d(ha[:, 0], hb[:, 0])
        assert len(both) >= 2
        ha, hb = ha[np.isin(ha[:, 0], both)], hb[np.isin(hb[:, 0], both)]
    assert ha.tobytes() == hb.tobytes()
    assert a.result["epochs_run"] == b.result["epochs_run"]


def dataset_task(x, y, spec, **kwargs) -> ex.Task:
    """A task whose training data is a dataset file in the test's data directory (by its sha256)."""
    import io
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)
    sha = Files(_data_dir).write("datasets", buf.getvalue())
    spec.data.train.ClearField("x")
    spec.data.train.ClearField("y")
    spec.data.train.dataset_id = sha
    return task(spec, **kwargs)
