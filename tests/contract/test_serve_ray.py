"""`fusetrain serve --executor ray --ray-address local`: the whole service on a private Ray.

A real server child on a free 127.0.0.1 port starts its own single-node Ray (node address
127.0.0.1, a token of its own), trains through gRPC, and stops Ray when it gets SIGTERM.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2

from helpers import ServerProcess
from fusetrain.v1 import service_pb2 as pb, service_pb2_grpc

from service_helpers import long_spec, npz_bytes, seeds_data, seeds_spec, upload, wait_done, xor_spec

RAY_ENABLED = os.environ.get("FUSETRAIN_TEST_RAY") == "1"
pytestmark = pytest.mark.skipif(not RAY_ENABLED, reason="runs under `make test-ray` (FUSETRAIN_TEST_RAY=1)")


def _ray_processes(token: str) -> set[int]:
    """This server's Ray processes: those with its own token (other Rays may run on the machine)."""
    out = subprocess.run(["pgrep", "-f", "gcs_server|raylet"], capture_output=True, text=True).stdout
    mine = set()
    for pid in out.split():
        try:
            if f"RAY_AUTH_TOKEN={token}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                mine.add(int(pid))
        except OSError:
            pass
    return mine


def test_serve_on_a_private_ray(tmp_path):
    token = secrets.token_hex(32)
    node_cache = tmp_path / "node-cache"        # Ray's workers read files from here, not from data/
    proc = ServerProcess(tmp_path / "data", "--executor", "ray", "--ray-address", "local", "--workers", "2",
                         env={"FUSETRAIN_NODE_CACHE": str(node_cache), "RAY_AUTH_MODE": "token",
                              "RAY_AUTH_TOKEN": token})
    try:
        proc.wait_healthy()
        assert _ray_processes(token), "the server started no Ray"
        with grpc.insecure_channel(proc.address) as channel:
            stub = service_pb2_grpc.TrainingServiceStub(channel)
            assert stub.GetServerInfo(pb.GetServerInfoRequest()).executor == "ray"
            job = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()))
            done = wait_done(stub, job.id)
            assert done.state == pb.SUCCEEDED and done.epochs_done == 500
            result = stub.GetResult(pb.GetResultRequest(job_id=job.id))
            assert result.final.train_accuracy == 1.0 and len(result.history) == 500

            x, y = seeds_data()
            ds = upload(stub, npz_bytes(x=x, y=y), name="seeds")
            seeds = [struct_pb2.Value(number_value=s) for s in range(10)]
            batch = stub.SubmitJobs(pb.SubmitJobsRequest(base=seeds_spec(ds.id, epochs=20),
                                                         grid=[pb.GridAxis(field="model.seed", values=seeds)]))
            assert all(wait_done(stub, j.id).state == pb.SUCCEEDED for j in batch.jobs)
            assert (node_cache / "datasets" / f"{ds.id}.npz").exists()

            running = stub.SubmitJob(pb.SubmitJobRequest(spec=long_spec()))
            for _ in range(200):
                if stub.GetJob(pb.GetJobRequest(job_id=running.id)).epochs_done >= 2:
                    break

                time.sleep(0.05)
            stub.CancelJob(pb.CancelJobRequest(job_id=running.id))
            cancelled = wait_done(stub, running.id)
            assert cancelled.state == pb.CANCELLED and cancelled.has_result
    finally:
        assert proc.stop() == 0
    assert not _ray_processes(token), "Ray outlived the server"
