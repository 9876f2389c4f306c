"""Fixtures of the service tests: an in-process server and a real `fusetrain serve` child."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
import pytest

sys.path.insert(0, str(Path(__file__).parent))   # service_helpers, under --import-mode=importlib

from service_helpers import ThreadExecutor  # noqa: E402

from fusetrain.service.config import ServerConfig, ServiceLimits  # noqa: E402
from helpers import ServerProcess  # noqa: E402
from fusetrain.service.server import Server  # noqa: E402
from fusetrain.v1 import service_pb2_grpc  # noqa: E402


@pytest.fixture
def local(tmp_path):
    """An in-process server (real servicer, interceptor, manager and store; jobs on a thread)."""
    limits = ServiceLimits(max_queued_jobs=50, max_dataset_bytes=8 << 20, max_epochs=10_000_000,
                           max_parameters=1_000_000, max_job_seconds=600)
    server = Server(ServerConfig(address="127.0.0.1:0", data_dir=tmp_path / "data", workers=1,
                                 limits=limits), executor_factory=ThreadExecutor)
    server.start()
    channel = grpc.insecure_channel(server.address)
    stub = service_pb2_grpc.TrainingServiceStub(channel)
    stub.server = server
    yield stub
    channel.close()
    server.stop(grace=1)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A real `fusetrain serve` child on a free 127.0.0.1 port with 2 spawned workers."""
    data = tmp_path_factory.mktemp("served")
    proc = ServerProcess(data, "--workers", "2", "--checkpoint-seconds", "0.5",
                         "--max-job-seconds", "600")
    try:
        proc.wait_healthy()
        channel = grpc.insecure_channel(proc.address, options=[("grpc.max_receive_message_length", -1)])
        stub = service_pb2_grpc.TrainingServiceStub(channel)
        stub.proc, stub.channel = proc, channel
        yield stub
        channel.close()
    finally:
        proc.stop()
