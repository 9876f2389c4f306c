"""How much memory one training job needs, from its spec and data shape, before anything is made.

    B = rows of a batch, S = Σ units over the layers, I = inputs, O = outputs, P = parameters,
    k = optimizer slots (at least 1), T = threads, R = training + validation rows, E = epochs

    parameters   (5 + 2k + T) · P · itemsize   theta, gradients, backup, optimizer state, the best
                                               weights, one checkpoint's copy, per-thread gradients
    activations  2 · B · S · itemsize          forward values and backward deltas of a batch
    batch        B · (I + O) · itemsize        the gathered batch
    data         R · (I + O) · 16 + R · 8      the arrays as loaded (float64) and in the model's
                                               dtype, and the shuffle permutation
    history      E · 128                       per-epoch metrics, kept and reported

The figure is an upper estimate of what `train` allocates; the service compares it with its
per-job memory limit at admission and again in the worker.
"""

from __future__ import annotations

import numpy as np

from .registry import OPTIMIZER_SLOTS
from .spec import ModelSpec, OptimizerSpec, TrainConfig


def parameters(model: ModelSpec) -> int:
    """Weights and biases of the model."""
    total, fan_in = 0, model.inputs
    for layer in model.layers:
        total += layer.units * (fan_in + 1)
        fan_in = layer.units
    return total


def batch_of(config: TrainConfig, rows: int) -> int:
    """Rows of one batch: 0 or >= rows is the full batch."""
    size = int(config.batch_size)
    return rows if size <= 0 or size >= rows else size


def job_bytes(model: ModelSpec, optimizer: OptimizerSpec, config: TrainConfig, rows: int,
              val_rows: int = 0) -> int:
    """Estimated peak bytes of training `model` on `rows` rows (plus `val_rows` for validation)."""
    item = np.dtype(model.dtype).itemsize
    p = parameters(model)
    slots = max(1, OPTIMIZER_SLOTS.get(optimizer.kind, 2))
    threads = max(1, int(config.threads))
    if config.validation_fraction and not val_rows:
        val_rows = int(rows * config.validation_fraction)
        rows -= val_rows
    batch = batch_of(config, max(1, rows))
    units = sum(layer.units for layer in model.layers)
    width = model.inputs + model.outputs
    total_rows = rows + val_rows
    return (
        (5 + 2 * slots + threads) * p * item
        + 2 * batch * units * item
        + batch * width * item
        + total_rows * width * 16 + total_rows * 8
        + int(config.epochs) * 128
    )
