"""Fixtures of the executor contract suite: one executor per backend, shared by a module's tests.

The local process pool always runs. The Ray backend runs when FUSETRAIN_TEST_RAY=1 (`make test-ray`)
and Ray is installed (the `ray` extra); it starts a private single-node Ray on 127.0.0.1 inside the
test process and stops it at the end of the module.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections import defaultdict
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "service"))   # service_helpers (job specs)

RAY_ENABLED = os.environ.get("FUSETRAIN_TEST_RAY") == "1"


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


def _backends():
    yield "local"
    marks = []
    if not RAY_ENABLED:
        marks.append(pytest.mark.skip(reason="the Ray backend runs under `make test-ray` (FUSETRAIN_TEST_RAY=1)"))
    else:
        import importlib.util
        if importlib.util.find_spec("ray") is None:   # not imported here: a private Ray sets its token first
            marks.append(pytest.mark.skip(reason="Ray is not installed: pip install -e '.[ray]'"))
    yield pytest.param("ray", marks=marks)


@pytest.fixture(scope="module", params=list(_backends()))
def backend(request):
    """(name, executor, recorder): two workers of one thread each, on either backend."""
    recorder = Recorder()
    if request.param == "local":
        from fusetrain.service.pool import ProcessPool
        executor = ProcessPool(2, 1, recorder, force_grace=2.0)
        assert executor.wait_ready(300)
    else:
        from fusetrain.service.ray_executor import RayExecutor
        # The node's file cache (ray_files): a temp dir of the tests, handed to Ray's workers.
        os.environ.setdefault("FUSETRAIN_NODE_CACHE", tempfile.mkdtemp(prefix="fusetrain-node-"))
        executor = RayExecutor(recorder, address="local", workers=2, threads_per_worker=1, force_grace=2.0)
        assert executor.wait_ready(300)
    yield request.param, executor, recorder
    executor.close(grace=1.0)
    if request.param == "ray":
        import ray
        assert not ray.is_initialized()
