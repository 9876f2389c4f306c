"""Kernel warm-up as the service reports it: GetServerInfo's kernels, health before and after, the banner."""

from __future__ import annotations

import fcntl
import shutil
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fusetrain import engine
from fusetrain.client.cli import main
from fusetrain.engine import cache
from fusetrain.engine.warm import PATHS
from helpers import ServerProcess
from fusetrain.v1 import service_pb2 as pb, service_pb2_grpc
from service_helpers import wait_done, xor_spec

SERVICE = "fusetrain.v1.TrainingService"


def _health(channel, name: str = "") -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=name), timeout=10).status


def _kernels(stub) -> dict:
    return {k.dtype: k for k in stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10).kernels}


def _until(condition, what: str, timeout: float = 120.0):
    """Poll `condition` until it returns something true; fail naming `what` after `timeout` s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not {what} after {timeout} s")


def hold_compile_locks(folder: Path, dtype: str) -> list:
    """Take every compile lock of `dtype`'s kernels in the cache directory `folder` (copied from a cache
    that a warm-up has used, so it holds the lock files engine/warm.py takes); the open files, to close."""
    held = []
    for path in sorted(folder.glob(f"compile-{dtype}*.lock")):
        handle = open(path, "a+")
        fcntl.flock(handle, fcntl.LOCK_EX)
        held.append(handle)
    assert held, f"no compile lock of {dtype} in {folder}"
    return held


def release(held: list) -> None:
    for handle in held:
        if not handle.closed:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


def private_cache(tmp_path: Path) -> Path:
    """A copy of this build's filled kernel cache under a new base directory (for $NUMBA_CACHE_DIR), with
    the (empty) lock files its warm-up took."""
    engine.warmup(("float32", "float64"))     # loads, or compiles into the shared cache once
    base = tmp_path / "kernel-cache"
    shutil.copytree(cache.cache_dir(), base / cache.cache_dir().name)
    return base


def test_server_info_reports_float32_ready_after_warm_up(served):
    kernels = _kernels(served)
    assert list(kernels) == ["float32", "float64"]
    f32 = kernels["float32"]
    assert f32.state == "ready" and 1 <= f32.workers_ready <= 2 and f32.seconds > 0
    assert kernels["float64"].state in ("not_started", "compiling", "ready")
    # float32's other kernel families, then float64's, follow in the background: every worker
    # has every family of both in the end.
    kernels = _until(lambda: (k := _kernels(served)) and all(
        s.state == "ready" and s.workers_ready == 2 and s.families_ready == s.families for s in k.values()) and k,
        "every kernel family of every dtype ready in both workers")
    assert [s.families for s in kernels.values()] == [len(PATHS)] * 2


def test_health_is_not_serving_until_a_dtype_is_ready(tmp_path):
    """The worker's float32 warm-up waits on the compile lock this test holds: no dtype can be ready,
    so health must say NOT_SERVING and GetServerInfo "compiling"; once released, SERVING."""
    base = private_cache(tmp_path)
    folder = base / cache.cache_dir().name
    held = hold_compile_locks(folder, "float32")
    proc = ServerProcess(tmp_path / "data", "--workers", "1", "--kernel-cache", str(base))
    try:
        address = proc.wait_address()
        with grpc.insecure_channel(address) as channel:
            stub = service_pb2_grpc.TrainingServiceStub(channel)
            # The worker has begun float32 (and is waiting on the lock): the pool knows it.
            kernels = _until(lambda: (k := _kernels(stub)) and k["float32"].state == "compiling" and k,
                             "float32 compiling")
            assert kernels["float32"].workers_ready == 0 and kernels["float64"].state == "not_started"
            for name in ("", SERVICE):
                assert _health(channel, name) == health_pb2.HealthCheckResponse.NOT_SERVING, name
            # The banner names the cache directory in use.
            _until(lambda: any(f"kernel cache: {folder.resolve()} (" in line for line in proc.lines),
                   "the cache directory in the banner", timeout=10)
            release(held)
            proc.wait_healthy(timeout=120)
            kernels = _kernels(stub)
            assert kernels["float32"].state == "ready" and kernels["float32"].workers_ready == 1
            assert kernels["float32"].seconds >= 0
    finally:
        release(held)
        proc.stop()
    assert any("float32 kernels (" in line and ") ready in " in line for line in proc.log)


def test_serving_with_float64_still_cold_and_its_job_waits_as_compile_time(tmp_path):
    """float64's warm-up waits on the lock this test holds: the server is SERVING on float32, says
    float64 is compiling, and a float64 job waits in its worker; the wait is its compile seconds."""
    base = private_cache(tmp_path)
    held = hold_compile_locks(base / cache.cache_dir().name, "float64")
    proc = ServerProcess(tmp_path / "data", "--workers", "1", "--kernel-cache", str(base))
    try:
        proc.wait_healthy(timeout=120)
        with grpc.insecure_channel(proc.address) as channel:
            stub = service_pb2_grpc.TrainingServiceStub(channel)
            kernels = _until(lambda: (k := _kernels(stub))["float64"].state == "compiling" and k, "float64 compiling")
            assert kernels["float32"].state == "ready" and kernels["float64"].workers_ready == 0
            assert _health(channel, SERVICE) == health_pb2.HealthCheckResponse.SERVING
            spec = xor_spec()
            spec.model.dtype = "float64"
            job = stub.SubmitJob(pb.SubmitJobRequest(spec=spec), timeout=10)
            _until(lambda: stub.GetJob(pb.GetJobRequest(job_id=job.id), timeout=10).state == pb.RUNNING,
                   "the float64 job RUNNING")
            waited = time.monotonic()
            time.sleep(0.5)       # not a synchronisation: a wait long enough to show in compile seconds
            assert stub.GetJob(pb.GetJobRequest(job_id=job.id), timeout=10).state == pb.RUNNING
            release(held)
            waited = time.monotonic() - waited
            assert wait_done(stub, job.id).state == pb.SUCCEEDED
            timings = stub.GetResult(pb.GetResultRequest(job_id=job.id), timeout=10).timings
            assert timings.compile_seconds >= waited
            kernels = _until(lambda: (k := _kernels(stub))["float64"].state == "ready" and k, "float64 ready")
            assert kernels["float64"].workers_ready == 1 and kernels["float64"].seconds >= waited
    finally:
        release(held)
        proc.stop()


def test_serve_refuses_a_kernel_cache_that_is_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["serve", "--kernel-cache", str(tmp_path / "file"), "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "--kernel-cache" in err and "not a directory" in err


def test_without_warm_up_a_dtype_is_reported_ready_once_a_job_compiled_it(tmp_path):
    proc = ServerProcess(tmp_path / "data", "--workers", "1", "--no-warmup")
    try:
        proc.wait_healthy(timeout=120)
        with grpc.insecure_channel(proc.address) as channel:
            stub = service_pb2_grpc.TrainingServiceStub(channel)
            assert [(k.dtype, k.state) for k in _kernels(stub).values()] == [
                ("float32", "not_started"), ("float64", "not_started")]
            job = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()), timeout=10)
            assert wait_done(stub, job.id).state == pb.SUCCEEDED
            kernels = _until(lambda: (k := _kernels(stub))["float32"].state == "ready" and k, "float32 ready")
            assert kernels["float32"].workers_ready == 1 and kernels["float64"].state == "not_started"
    finally:
        proc.stop()
