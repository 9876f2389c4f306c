"""MNIST 784-256-10 for one epoch gives the same weights with one thread and with two, both
in-process (`fusetrain train --local --threads N`) and through the service (`training.threads`).

The first layer sums over K = 784 inputs: the shape where two-thread OpenBLAS once summed in
another order. Skipped without the shared MNIST files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fusetrain.client import Client
from helpers import ServerProcess

REPO = Path(__file__).resolve().parents[2]
JOB = REPO / "examples" / "jobs" / "mnist.yaml"
MNIST = REPO.parent / "shared" / "datasets" / "mnist" / "train-images-idx3-ubyte.gz"

pytestmark = pytest.mark.skipif(not MNIST.is_file(), reason=f"MNIST is not at {MNIST.parent} (see ../shared/datasets)")


def local_sha(threads: int) -> str:
    out = subprocess.run([sys.executable, "-m", "fusetrain.client.cli", "train", str(JOB), "--local",
                          "--threads", str(threads), "--set", "training.epochs=1", "--json", "--no-progress"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)
    assert doc["final"]["val_accuracy"] > 0.9
    assert doc["blas_kernel"].startswith("openblas ")
    return doc["weights_sha256"]


def test_mnist_local_weights_do_not_depend_on_threads():
    assert local_sha(1) == local_sha(2)


def test_mnist_served_weights_do_not_depend_on_threads(tmp_path):
    proc = ServerProcess(tmp_path / "data", "--workers", "1", "--threads-per-worker", "2")
    try:
        proc.wait_healthy()
        with Client(proc.address, timeout=300) as client:
            results = [client.train(JOB, overrides={"training.epochs": 1, "training.threads": t}) for t in (1, 2)]
    finally:
        proc.stop()
    one, two = results
    assert one.weights_sha256 == two.weights_sha256
    assert one.blas_kernel and one.blas_kernel == two.blas_kernel
    assert one.final["val_accuracy"] > 0.9
