"""How much memory one training job needs, from its spec and data shape, before anything is made.

    B = rows of a batch, S = Σ units over the layers, I = inputs, O = outputs, W = I + O,
    P = parameters, k = optimizer slots (at least 1), s = the model dtype's itemsize,
    N = training rows, V = validation rows, R = N + V, E = epochs, C = EVAL_BLOCK_ROWS (1024)

    parameters   (4 + k) · P · s            theta, gradients, the epoch's backup, the optimizer
                                            slots, the best weights (JobBuffers, train)
    copies       (3 + k) · P · s            the result's weights and its resumable state (params,
                                            optimizer slots, best weights); a checkpoint's state
    activations  2 · B · S · s              forward values and backward deltas of a batch (4 with dropout: masks, masked values)
    batch        B · W · s                  the gathered batch
    evaluation   M · O · s + max(           the metric pass over M = max(N, V) rows after training
                 min(M, C) · S, M · O) · s  (and over the validation rows each epoch): the outputs,
                                            with first a block of activations, then the loss's
                                            scratch
    order        N · 8                      the shuffle permutation (int64)
    data         R · W · 8                  the arrays as loaded (float64), and one copy in the
                 + c · R · W · s            model dtype for each of: a float32 model (the cast),
                                            a validation_fraction (the split)
    scores       8 · (max(3, 2 · O) · M + V) the scores of metrics.py: the true classes of the
                                            validation rows, then of the training rows with a
                                            prediction and a code per row (class targets), or
                                            two float64 copies of the outputs (regression)
    history      400 · E                    per-epoch metrics: the history's rows (96 bytes each)
                                            and the state's copy of them, and, when training runs
                                            unwatched (one chunk of every epoch), the chunk's
                                            learning rates, losses, counts and rows (measured 288
                                            bytes an epoch unwatched, 229 with a callback, with
                                            8 columns; 12 columns add 3 · 32)
    runtime      1 MiB + 8 MiB with BLAS    small arrays and allocator slack, and the BLAS packing
                                            buffers a first large GEMM touches (measured up to
                                            7.2 MiB; no more with 2 threads than with 1)

The figure is an upper estimate of the peak resident memory `train` adds in a process whose
kernels are loaded, with its data loaded as float64. It counts what is allocated, written or
not: plain SGD without clipping folds its update into the weight GEMM and never writes its
gradient or its (placeholder) optimizer slot, so it is 2 · P · s over there. The evaluation and
the copies come one after the other, so summing them overstates the peak by the smaller of the
two. Threads add nothing: the GEMM slabs share the job's buffers.
tests/reliability/memory_figures.py measures it against real runs (docs/RELIABILITY.md); the
service compares it with its per-job memory limit at admission and again in the worker.
"""

from __future__ import annotations

import numpy as np

from .config import EVAL_BLOCK_ROWS, HAND_LOOP_MAX_MACS
from .registry import OPTIMIZER_SLOTS
from .spec import ModelSpec, OptimizerSpec, TrainConfig

HISTORY_BYTES_PER_EPOCH = 400
RUNTIME_BYTES = 1 << 20
BLAS_BYTES = 8 << 20


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


def split_rows(config: TrainConfig, rows: int, val_rows: int = 0) -> tuple[int, int]:
    """(training rows, validation rows): a validation_fraction holds out rows as `train` does."""
    if config.validation_fraction and not val_rows:
        val_rows = int(round(rows * config.validation_fraction))
        rows -= val_rows
    return max(1, rows), val_rows


def terms(model: ModelSpec, optimizer: OptimizerSpec, config: TrainConfig, rows: int,
          val_rows: int = 0) -> dict[str, int]:
    """The estimate's terms in bytes, named as in the module docstring; job_bytes is their sum."""
    item = np.dtype(model.dtype).itemsize
    p = parameters(model)
    slots = max(1, OPTIMIZER_SLOTS.get(optimizer.kind, 2))
    split = bool(config.validation_fraction) and not val_rows
    n, v = split_rows(config, rows, val_rows)
    batch = batch_of(config, n)
    units = sum(layer.units for layer in model.layers)
    width = model.inputs + model.outputs
    metric_rows = max(n, v)
    copies = int(item != 8) + int(split)
    blas = any(f * layer.units > HAND_LOOP_MAX_MACS for f, layer in zip(model.layer_inputs(), model.layers))
    return {
        "parameters": (4 + slots) * p * item,
        "copies": (3 + slots) * p * item,
        # acts and deltas; with dropout also its masks and masked activations (kernels/masked.py)
        "activations": (4 if any(layer.dropout > 0 for layer in model.layers) else 2) * batch * units * item,
        "batch": batch * width * item,
        "evaluation": (metric_rows * model.outputs
                       + max(min(metric_rows, EVAL_BLOCK_ROWS) * units, metric_rows * model.outputs)) * item,
        "order": n * 8,
        "data": (n + v) * width * (8 + copies * item),
        "scores": 8 * (max(3, 2 * model.outputs) * metric_rows + v),
        "history": int(config.epochs) * HISTORY_BYTES_PER_EPOCH,
        "runtime": RUNTIME_BYTES + BLAS_BYTES * blas,
    }


def job_bytes(model: ModelSpec, optimizer: OptimizerSpec, config: TrainConfig, rows: int,
              val_rows: int = 0) -> int:
    """Estimated peak bytes of training `model` on `rows` rows (plus `val_rows` for validation)."""
    return sum(terms(model, optimizer, config, rows, val_rows).values())
