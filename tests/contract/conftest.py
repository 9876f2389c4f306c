"""Fixtures of the executor contract suite: one executor per backend, shared by a module's tests.

The local process pool always runs. The Ray backend runs when FUSETRAIN_TEST_RAY=1 (`make test-ray`)
and Ray is installed (the `ray` extra); it starts a private single-node Ray on 127.0.0.1 inside the
test process and stops it at the end of the module.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "service"))   # service_helpers (job specs)

from contract_helpers import Recorder  # noqa: E402  -- after the path set-up above

RAY_ENABLED = os.environ.get("FUSETRAIN_TEST_RAY") == "1"
FORCE_GRACE = 10.0


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
    """(name, executor, recorder): two workers of one thread each, on either backend. A job past its
    time limit is ended FORCE_GRACE seconds later if it has not stopped at an epoch boundary: long
    enough for a fresh Ray worker process to load the kernels on a loaded machine (2 s was not,
    at load 5), so test_time_limit sees the graceful stop it checks."""
    recorder = Recorder()
    if request.param == "local":
        from fusetrain.service.pool import ProcessPool
        executor = ProcessPool(2, 1, recorder, force_grace=FORCE_GRACE)
        assert executor.wait_ready(300)
    else:
        from fusetrain.service.ray_executor import RayExecutor
        # The node's file cache (ray_files): a temp dir of the tests, handed to Ray's workers.
        os.environ.setdefault("FUSETRAIN_NODE_CACHE", tempfile.mkdtemp(prefix="fusetrain-node-"))
        executor = RayExecutor(recorder, address="local", workers=2, threads_per_worker=1,
                               force_grace=FORCE_GRACE)
        assert executor.wait_ready(300)
    yield request.param, executor, recorder
    executor.close(grace=1.0)
    if request.param == "ray":
        import ray
        assert not ray.is_initialized()
