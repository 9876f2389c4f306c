"""A halving search survives a server SIGKILL: after a restart on the same data directory the
search job finishes with the same winner and weights as the same search run uninterrupted."""

from __future__ import annotations

import time

import grpc
import numpy as np
from google.protobuf import json_format

from fusetrain.v1 import job_pb2, service_pb2 as pb, service_pb2_grpc
from fusetrain.wire.tensors import array_to_tensor
from helpers import ServerProcess

FINAL = (pb.SUCCEEDED, pb.FAILED, pb.CANCELLED)


def search_request(request_id: str) -> pb.SubmitJobsRequest:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 32)).astype(np.float32)
    y = (x[:, :3].sum(axis=1, keepdims=True) > 0).astype(np.float32)
    base = json_format.ParseDict({
        "model": {"inputs": 32, "layers": [{"units": 64, "activation": "relu"},
                                           {"units": 1, "activation": "sigmoid"}],
                  "loss": "binary_cross_entropy"},
        "optimizer": {"kind": "momentum", "learning_rate": 0.05},
        "training": {"epochs": 10, "batch_size": 4, "validation_fraction": 0.25, "seed": 3},
    }, job_pb2.JobSpec())
    base.data.train.x.CopyFrom(array_to_tensor(x))
    base.data.train.y.CopyFrom(array_to_tensor(y))
    search = json_format.ParseDict({
        "kind": "halving", "candidates": 27, "max_epochs": 81, "min_epochs": 9, "eta": 3, "seed": 5,
        "params": [{"field": "optimizer.learning_rate", "distribution": "log_uniform", "low": 0.001, "high": 0.3},
                   {"field": "optimizer.momentum", "distribution": "uniform", "low": 0.0, "high": 0.95},
                   {"field": "model.seed", "distribution": "int", "low": 0, "high": 99}]}, job_pb2.Search())
    return pb.SubmitJobsRequest(base=base, search=search, request_id=request_id)


def connect(proc):
    channel = grpc.insecure_channel(proc.address)
    return channel, service_pb2_grpc.TrainingServiceStub(channel)


def wait(stub, job_id: str, until, timeout: float = 300.0) -> pb.Job:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = stub.GetJob(pb.GetJobRequest(job_id=job_id))
        if until(job):
            return job
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} is {pb.JobState.Name(job.state)}")


def test_halving_search_survives_sigkill_with_the_same_winner(tmp_path):
    args = ("--workers", "1", "--checkpoint-seconds", "0.2")
    first = ServerProcess(tmp_path / "a", *args)
    first.wait_healthy()
    channel, stub = connect(first)
    job_id = stub.SubmitJobs(search_request("search-1")).jobs[0].id   # acknowledged: durable
    # Killed whether it has started or not (the outcome must not depend on when).
    at_kill = wait(stub, job_id, lambda j: j.state != pb.QUEUED, timeout=120).state
    channel.close()
    first.kill()

    second = ServerProcess(tmp_path / "a", *args)
    second.wait_healthy()
    channel, stub = connect(second)
    try:
        job = wait(stub, job_id, lambda j: j.state in FINAL)
        assert job.state == pb.SUCCEEDED, job.message
        print(f"killed while {pb.JobState.Name(at_kill)}; attempt {job.attempt} after the restart")
        survived = stub.GetResult(pb.GetResultRequest(job_id=job_id))
        # The same request id answers with the same job.
        assert stub.SubmitJobs(search_request("search-1")).jobs[0].id == job_id
    finally:
        channel.close()
        second.stop()

    third = ServerProcess(tmp_path / "b", *args)     # the same search, never interrupted
    third.wait_healthy()
    channel, stub = connect(third)
    try:
        other = stub.SubmitJobs(search_request("search-2")).jobs[0].id
        assert wait(stub, other, lambda j: j.state in FINAL).state == pb.SUCCEEDED
        calm = stub.GetResult(pb.GetResultRequest(job_id=other))
    finally:
        channel.close()
        third.stop()
    assert survived.search.winner == calm.search.winner
    assert survived.weights_sha256 == calm.weights_sha256
    assert survived.search.winner_spec == calm.search.winner_spec
    assert [c.index for c in survived.search.candidates] == [c.index for c in calm.search.candidates]
    np.testing.assert_array_equal([c.value for c in survived.search.candidates],
                                  [c.value for c in calm.search.candidates])
    assert not any("Traceback" in line for line in second.log), "\n".join(second.log)
