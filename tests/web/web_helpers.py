"""Helpers of the dashboard tests: a `fusetrain serve` child with its dashboard, specs, HTTP calls."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

import grpc
import numpy as np
from google.protobuf import json_format

from fusetrain.v1 import job_pb2, service_pb2 as pb, service_pb2_grpc
from fusetrain.wire.tensors import array_to_tensor
from helpers import ServerProcess

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef012"
_DASHBOARD = re.compile(r"fusetrain dashboard on (http://\S+/)")
CHROMIUM = os.environ.get("FUSETRAIN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
INSTALL_HINT = ("the browser tests need Debian's chromium: apt-get install -y chromium "
                "(or set $FUSETRAIN_CHROMIUM to a Chromium binary); .ci/run installs it")


def start_server(data_dir: Path, *args: str) -> tuple[ServerProcess, str]:
    """A `fusetrain serve` child with its dashboard on a free port: (process, dashboard URL)."""
    proc = ServerProcess(data_dir, "--web-address", "127.0.0.1:0", *args)
    try:
        proc.wait_healthy()
        end = time.monotonic() + 30
        while time.monotonic() < end:
            found = [m.group(1) for m in map(_DASHBOARD.search, proc.lines) if m]
            if found:
                return proc, found[0]
            time.sleep(0.05)
        raise RuntimeError("the server printed no dashboard URL:\n" + "\n".join(proc.lines + proc.log[-20:]))
    except BaseException:
        proc.stop()
        raise


class Caller:
    """A gRPC stub that sends one owner's token (or none)."""

    def __init__(self, address: str, token: str = ""):
        self.channel = grpc.insecure_channel(address)
        self.stub = service_pb2_grpc.TrainingServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def __getattr__(self, name):
        method = getattr(self.stub, name)
        return lambda request, **kw: method(request, metadata=self.metadata, **kw)

    def wait(self, job_id: str, timeout: float = 120.0) -> pb.Job:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            job = self.GetJob(pb.GetJobRequest(job_id=job_id))
            if job.state in (pb.SUCCEEDED, pb.FAILED, pb.CANCELLED):
                return job
            time.sleep(0.1)
        raise TimeoutError(f"job {job_id} did not end in {timeout} s")

    def close(self) -> None:
        self.channel.close()


def long_spec(name: str = "long", epochs: int = 1_000_000) -> job_pb2.JobSpec:
    """A job that trains for minutes in short epochs (it is cancelled by the tests)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    spec = json_format.ParseDict({
        "name": name, "labels": {"kind": "long"},
        "model": {"inputs": 8, "layers": [{"units": 16, "activation": "relu"},
                                          {"units": 1, "activation": "sigmoid"}], "loss": "binary_cross_entropy"},
        "optimizer": {"kind": "sgd", "learning_rate": 0.01},
        "training": {"epochs": epochs, "batch_size": 8, "validation_fraction": 0.2},
    }, job_pb2.JobSpec())
    spec.data.train.x.CopyFrom(array_to_tensor(x))
    spec.data.train.y.CopyFrom(array_to_tensor((x[:, :1] > 0).astype(np.float32)))
    return spec


def cv_request(dataset_id: str, folds: int = 5, epochs: int = 60) -> pb.SubmitJobsRequest:
    """A `folds`-fold cross-validation of the seeds network on an uploaded dataset."""
    base = json_format.ParseDict({
        "name": "seeds-cv", "labels": {"kind": "cv"},
        "model": {"inputs": 7, "layers": [{"units": 5, "activation": "sigmoid"},
                                          {"units": 3, "activation": "softmax"}],
                  "loss": "softmax_cross_entropy", "seed": 3},
        "optimizer": {"kind": "adam", "learning_rate": 0.02},
        "training": {"epochs": epochs, "batch_size": 16, "seed": 3},
        "data": {"train": {"dataset_id": dataset_id}, "cross_validation": {"folds": folds, "seed": 1}},
    }, job_pb2.JobSpec())
    request = pb.SubmitJobsRequest(base=base)
    axis = request.grid.add(field="data.cross_validation.fold")
    for fold in range(folds):
        axis.values.add().number_value = fold
    return request


def http(url: str, method: str = "GET", token: str = "", headers: Optional[dict] = None,
         data: Optional[bytes] = None) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one HTTP request, errors included."""
    request = urllib.request.Request(url, method=method, data=data, headers=dict(headers or {}))
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get_json(url: str, token: str = "") -> dict:
    status, _, body = http(url, token=token)
    assert status == 200, (status, body)
    return json.loads(body)
