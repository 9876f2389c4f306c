"""Helpers of the benchmarks (and of the tests and the demo that start servers): `ServerProcess`
starts `fusetrain serve` as a child process and waits until it is healthy; XOR and UCI seeds
data and uploads for the service benchmarks.

Not part of the product: nothing under fusetrain.* imports it. Scripts put this folder on
sys.path (pytest does: pyproject's pythonpath) and `from helpers import ServerProcess`.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import grpc
import numpy as np
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fusetrain.v1 import job_pb2, service_pb2 as pb

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"

_LISTENING = re.compile(r"fusetrain listening on (\S+);")


class ServerProcess:
    """A `fusetrain serve` child: `address`, `log` (its stderr lines so far), `stop()`, `kill()`."""

    def __init__(self, data_dir: Path, *args: str, address: str = "127.0.0.1:0",
                 env: Optional[dict] = None):
        cmd = [sys.executable, "-m", "fusetrain.client.cli", "serve", "--address", address,
               "--data-dir", str(data_dir), *args]
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self.log: list[str] = []
        self.address: Optional[str] = None
        self._found = threading.Event()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            m = _LISTENING.search(line)
            if m:
                self.address = m.group(1)
                self._found.set()
        self._found.set()

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line.rstrip("\n"))

    def wait_address(self, timeout: float = 60.0) -> str:
        """Block until the server prints the address it listens on (before its workers are warm)."""
        if not self._found.wait(timeout) or self.address is None:
            raise RuntimeError("the server did not start:\n" + "\n".join(self.log[-30:]))
        return self.address

    def wait_healthy(self, timeout: float = 300.0, credentials=None) -> float:
        """Block until grpc.health.v1 answers SERVING; return seconds since the process started.
        `credentials`: grpc.ChannelCredentials for a server started with --tls-cert."""
        end = time.monotonic() + timeout
        if not self._found.wait(timeout) or self.address is None:
            raise RuntimeError("the server did not start:\n" + "\n".join(self.log[-30:]))
        with (grpc.secure_channel(self.address, credentials) if credentials is not None
              else grpc.insecure_channel(self.address)) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    raise RuntimeError("the server exited:\n" + "\n".join(self.log[-30:]))
                try:
                    status = stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        return time.perf_counter() - self.started
                except grpc.RpcError:
                    pass
                time.sleep(0.02)
        raise TimeoutError(f"not SERVING after {timeout} s:\n" + "\n".join(self.log[-30:]))

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (graceful shutdown) and wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        """SIGKILL, as in a crash: no shutdown code runs (workers die with their parent)."""
        self.proc.kill()
        self.proc.wait()


# ------------------------------------------------------------------------------- data and jobs

def xor_spec(**training) -> job_pb2.JobSpec:
    """XOR, 2-4-1 tanh/sigmoid, Adam, full batch, inline data: learns to 100% in 500 epochs."""
    return json_format.ParseDict({
        "name": "xor", "labels": {"task": "xor"},
        "model": {"inputs": 2, "layers": [{"units": 4, "activation": "tanh"},
                                          {"units": 1, "activation": "sigmoid"}],
                  "loss": "binary_cross_entropy", "seed": 1},
        "optimizer": {"kind": "adam", "learning_rate": 0.05},
        "training": {"epochs": 500, "batch_size": 0, **training},
        "data": {"train": {"x": {"shape": [4, 2], "values": [0, 0, 0, 1, 1, 0, 1, 1]},
                           "y": {"shape": [4, 1], "values": [0, 1, 1, 0]}}},
    }, job_pb2.JobSpec())


def seeds_spec(dataset_id: Optional[str] = None, epochs: int = 500, seed: int = 0, batch_size: int = 1,
               kind: str = "sgd", learning_rate: float = 0.3) -> job_pb2.JobSpec:
    """The classic 7-5-3 sigmoid network on UCI seeds, online SGD at 0.3 by default (the tutorial's
    set-up): on the uploaded dataset `dataset_id`, or with seeds_data() inline when it is None."""
    spec = json_format.ParseDict({
        "name": "seeds", "labels": {"task": "seeds"},
        "model": {"inputs": 7, "layers": [{"units": 5, "activation": "sigmoid"},
                                          {"units": 3, "activation": "sigmoid"}], "seed": seed},
        "optimizer": {"kind": kind, "learning_rate": learning_rate},
        "training": {"epochs": epochs, "batch_size": batch_size, "seed": seed},
    }, job_pb2.JobSpec())
    if dataset_id is not None:
        spec.data.train.dataset_id = dataset_id
    else:
        from fusetrain.wire.tensors import array_to_tensor
        x, y = seeds_data()
        spec.data.train.x.CopyFrom(array_to_tensor(x))
        spec.data.train.y.CopyFrom(array_to_tensor(y))
    return spec


def seeds_data() -> tuple[np.ndarray, np.ndarray]:
    """UCI wheat seeds (min-max normalised, one-hot classes), or a same-shaped stand-in when the
    shared data is absent (timings need the shape, not the accuracy)."""
    path = SHARED / "seeds_dataset.csv"
    if path.exists():
        raw = np.loadtxt(path, delimiter=",")
        x, labels = raw[:, :7], raw[:, 7].astype(int) - 1
    else:
        rng = np.random.default_rng(0)
        labels = np.repeat(np.arange(3), 70)
        x = rng.normal(size=(210, 7)) + labels[:, None]
    x = (x - x.min(0)) / (x.max(0) - x.min(0))
    return x.astype(np.float32), np.eye(3, dtype=np.float32)[labels]


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def upload(stub, data: bytes, name: str = "data", chunk: int = 1 << 20) -> pb.Dataset:
    """UploadDataset in chunks; the Dataset message (its id is the sha256 of `data`)."""
    def requests():
        for start in range(0, len(data), chunk):
            yield pb.UploadDatasetRequest(name=name if start == 0 else "", chunk=data[start:start + chunk])
    return stub.UploadDataset(requests())
