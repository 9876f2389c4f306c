"""Helpers of the client tests: paths, job files and data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "datasets"
EXAMPLES = ROOT / "examples"


def parse(text: str):
    return json.loads(text)


def write_job(tmp_path: Path, name: str, spec: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(spec))
    return path


def blobs(n: int = 120, seed: int = 0):
    """Three separable Gaussian blobs in 4 columns with very different scales (normalisation matters)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    x = rng.normal(size=(n, 4)) + 3 * labels[:, None]
    x = x * np.array([1.0, 10.0, 100.0, 0.1]) + np.array([0.0, 50.0, -300.0, 2.0])
    return x, labels


def blobs_spec(**model) -> dict:
    return {"name": "blobs", "labels": {"test": "clients"},
            "model": {"inputs": 4, "layers": [{"units": 6, "activation": "tanh"},
                                              {"units": 3, "activation": "softmax"}],
                      "loss": "softmax_cross_entropy", "seed": 0,
                      "normalization": {"kind": "standardize"}, **model},
            "optimizer": {"kind": "adam", "learning_rate": 0.05},
            "training": {"epochs": 60, "batch_size": 16}}
