"""Per-owner quotas (RESOURCE_EXHAUSTED with a retry hint, other owners unaffected) and the
priority field (queued jobs with a higher priority start first)."""

from __future__ import annotations

import grpc
import pytest

from reliability_helpers import ALICE, BOB, in_process_server, stub_for, token_file
from service_helpers import long_spec, xor_spec

from fusetrain.client import Client, errors
from fusetrain.service.config import ServiceLimits
from fusetrain.v1 import service_pb2 as pb


def test_quota_per_owner_with_a_retry_hint(tmp_path):
    limits = ServiceLimits(max_client_jobs=3, max_epochs=10_000_000, max_job_seconds=600)
    server = in_process_server(tmp_path / "data", limits=limits, token_file=token_file(tmp_path / "tokens"))
    server.manager.executor.paused = True             # nothing starts: jobs stay queued
    try:
        with Client(server.address, token=ALICE, timeout=10) as alice, \
                Client(server.address, token=BOB, timeout=10) as bob:
            assert alice.server_info().limits.max_client_jobs == 3
            jobs = [alice.submit(xor_spec()) for _ in range(3)]
            with pytest.raises(errors.ResourceExhausted) as exc:
                alice.submit(xor_spec())
            assert exc.value.details.startswith("quota:") and "retry in about" in exc.value.details
            assert exc.value.retry_after >= 1
            with pytest.raises(errors.ResourceExhausted):
                alice.submit_many([xor_spec()])
            assert bob.submit(xor_spec()).id                # bob's quota is his own
            alice.cancel(jobs[0].id)                        # room again
            assert alice.submit(xor_spec()).id
    finally:
        server.manager.executor.paused = False
        server.stop(grace=1)


def test_raw_grpc_sees_the_retry_hint_as_trailing_metadata(tmp_path):
    limits = ServiceLimits(max_client_jobs=1)
    server = in_process_server(tmp_path / "data", limits=limits)
    server.manager.executor.paused = True
    channel, stub, md = stub_for(server.address)
    try:
        stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()))
        with pytest.raises(grpc.RpcError) as exc:
            stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()))
        assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert float(dict(exc.value.trailing_metadata())["retry-after-seconds"]) >= 1
    finally:
        channel.close()
        server.manager.executor.paused = False
        server.stop(grace=1)


def test_priority_is_validated():
    from fusetrain.service.specs import to_engine
    from fusetrain.engine import InvalidSpec
    spec = xor_spec()
    spec.priority = 5000
    with pytest.raises(Exception, match="priority"):
        to_engine(spec, ServiceLimits(), 1)


def test_the_pool_starts_higher_priorities_first(tmp_path):
    """A real process pool with one worker, busy with a blocker: queued jobs then start by
    priority (ties in submission order)."""
    from helpers import ServerProcess
    proc = ServerProcess(tmp_path / "data", "--workers", "1")
    try:
        proc.wait_healthy()
        with Client(proc.address, timeout=30) as c:
            blocker = c.submit(long_spec(epochs=200))
            while c.job(blocker.id).state == "QUEUED":
                pass
            order = [0, 5, -3, 5, 100, 0]
            jobs = []
            for i, p in enumerate(order):
                spec = xor_spec(epochs=50)
                spec.priority, spec.name = p, f"p{p}-{i}"
                jobs.append(c.submit(spec))
            for j in [blocker, *jobs]:
                c.wait(j.id)
            started = sorted(jobs, key=lambda j: c.job(j.id).started_at)
            names = [c.job(j.id).name for j in started]
        assert names == ["p100-4", "p5-1", "p5-3", "p0-0", "p0-5", "p-3-2"], names
    finally:
        proc.stop()
