"""Crash and restart: SIGKILL the server while jobs run, start it again on the same data directory;
every acknowledged job must finish with the result of an uninterrupted run. Same after SIGTERM."""

from __future__ import annotations

import sqlite3
import time

import grpc
import numpy as np
import pytest

from fusetrain import engine
from fusetrain.service.config import ServiceLimits
from helpers import ServerProcess
from fusetrain.service.messages import weights_sha256
from fusetrain.service.specs import load_source, to_engine
from fusetrain.v1 import service_pb2 as pb, service_pb2_grpc

from service_helpers import long_spec, xor_spec


def reference_sha(spec) -> str:
    """weights_sha256 of the same job trained by the engine alone, uninterrupted."""
    job = to_engine(spec, ServiceLimits(), 1)
    x, y = load_source(spec.data.train, "data.train", None)
    result = engine.train(job.model, job.optimizer, job.config, x, y)
    return weights_sha256(result.weights)


def connect(proc):
    channel = grpc.insecure_channel(proc.address)
    return channel, service_pb2_grpc.TrainingServiceStub(channel)


def wait_all(stub, ids, timeout=180.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        jobs = {i: stub.GetJob(pb.GetJobRequest(job_id=i)) for i in ids}
        if all(j.state in (pb.SUCCEEDED, pb.FAILED, pb.CANCELLED) for j in jobs.values()):
            return jobs
        time.sleep(0.1)
    raise TimeoutError({i: pb.JobState.Name(j.state) for i, j in jobs.items()})


def wait_running_with_checkpoints(stub, ids, count: int, epochs: int, timeout=60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        jobs = [stub.GetJob(pb.GetJobRequest(job_id=i)) for i in ids]
        if sum(j.state == pb.RUNNING and j.epochs_done >= epochs for j in jobs) >= count:
            return
        time.sleep(0.05)
    raise TimeoutError("jobs did not start running")


def wait_checkpointed(data_dir, count: int, timeout=60.0) -> None:
    """Until the store records a checkpoint for `count` running jobs (read-only, beside the server)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        db = sqlite3.connect(f"file:{data_dir / 'fusetrain.db'}?mode=ro", uri=True, timeout=5)
        try:
            n = db.execute("SELECT COUNT(*) FROM jobs WHERE state = ? AND checkpoint_sha IS NOT NULL",
                           (pb.RUNNING,)).fetchone()[0]
        finally:
            db.close()
        if n >= count:
            return
        time.sleep(0.05)
    raise TimeoutError(f"fewer than {count} running jobs have a checkpoint")


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_restart_loses_nothing_and_results_match_an_uninterrupted_run(tmp_path, how):
    specs = [long_spec(epochs=2500, rows=1000, seed=s) for s in range(3)] + [xor_spec(), xor_spec(epochs=300)]
    for s, spec in enumerate(specs[:3]):
        spec.model.seed = s
    args = ("--workers", "2", "--checkpoint-seconds", "0.2")
    first = ServerProcess(tmp_path, *args)
    first.wait_healthy()
    channel, stub = connect(first)
    ids = [stub.SubmitJob(pb.SubmitJobRequest(spec=spec, request_id=f"r{i}")).id for i, spec in enumerate(specs)]
    wait_running_with_checkpoints(stub, ids, count=2, epochs=300)
    wait_checkpointed(tmp_path, count=2)          # the store holds a checkpoint of each
    channel.close()
    if how == "SIGKILL":
        first.kill()
    else:
        assert first.stop() == 0
        assert any("suspended" in line for line in first.log), first.log[-20:]

    second = ServerProcess(tmp_path, *args)
    second.wait_healthy()
    channel, stub = connect(second)
    try:
        if how == "SIGKILL":    # running jobs were re-queued, resuming from their checkpoints
            assert sum("resumes from its last checkpoint" in line for line in second.log) >= 2, second.log
        jobs = wait_all(stub, ids)
        assert all(j.state == pb.SUCCEEDED for j in jobs.values()), {i: j.message for i, j in jobs.items()}
        restarted = [j for j in jobs.values() if j.attempt >= 2 or "suspended" in j.message]
        assert len(restarted) >= 2 or how == "SIGTERM"
        if how == "SIGKILL":
            assert sum(j.attempt == 2 for j in jobs.values()) >= 2
        for spec, job_id in zip(specs, ids):
            result = stub.GetResult(pb.GetResultRequest(job_id=job_id))
            assert result.epochs_run == spec.training.epochs
            assert result.weights_sha256 == reference_sha(spec), job_id
            assert [m.epoch for m in result.history] == list(range(1, spec.training.epochs + 1))
        # The same request ids still answer with the same jobs.
        again = [stub.SubmitJob(pb.SubmitJobRequest(spec=spec, request_id=f"r{i}")).id
                 for i, spec in enumerate(specs)]
        assert again == ids
    finally:
        channel.close()
        second.stop()
    assert not any("Traceback" in line for line in second.log), "\n".join(second.log)
