"""Flat memory layout of a model: parameter offsets, kernel metadata and per-job buffers.

Everything a kernel touches is allocated here, once per job; nothing in the per-batch
path allocates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import HAND_LOOP_MAX_MACS
from .kernels.columns import M_ACT, M_B, M_BLAS, M_FREEZE_B, M_FREEZE_W, M_IN, M_OUT, M_W
from .registry import ACTIVATIONS, OPTIMIZER_SLOTS
from .spec import ModelSpec


@dataclass
class Layout:
    """Where each layer's W and b sit in theta, and what the kernels need to run them."""

    meta: np.ndarray      # (L, 8) int64, columns M_* of kernels/epochs.py
    slopes: np.ndarray    # (L,) float64
    n_params: int
    units: list[int]

    @classmethod
    def of(cls, model: ModelSpec) -> "Layout":
        n_layers = len(model.layers)
        meta = np.zeros((n_layers, 8), dtype=np.int64)
        slopes = np.zeros(n_layers, dtype=np.float64)
        offset = 0
        for l, (fan_in, layer) in enumerate(zip(model.layer_inputs(), model.layers)):
            meta[l, M_IN] = fan_in
            meta[l, M_OUT] = layer.units
            meta[l, M_W] = offset
            offset += fan_in * layer.units
            meta[l, M_B] = offset
            offset += layer.units
            meta[l, M_ACT] = ACTIVATIONS[layer.activation]
            meta[l, M_FREEZE_W] = int(bool(layer.freeze_weights))
            meta[l, M_FREEZE_B] = int(bool(layer.freeze_bias))
            meta[l, M_BLAS] = int(fan_in * layer.units > HAND_LOOP_MAX_MACS)
            slopes[l] = layer.leaky_slope
        return cls(meta, slopes, offset, [layer.units for layer in model.layers])

    @property
    def small(self) -> bool:
        """Every layer is tiny: the whole step runs in kernels/small.py."""
        return not self.meta[:, M_BLAS].any()

    def act_offsets(self, rows: int) -> np.ndarray:
        """Offsets of each layer's (rows, units) block in the activation buffer."""
        return (np.concatenate([[0], np.cumsum(self.units)[:-1]]) * rows).astype(np.int64)

    def act_size(self, rows: int) -> int:
        return rows * sum(self.units)

    def pack(self, weights, dtype) -> np.ndarray:
        """[(W, b), ...] -> theta (P,)."""
        theta = np.empty(self.n_params, dtype=dtype)
        for l, (w, b) in enumerate(weights):
            start = self.meta[l, M_W]
            theta[start:start + w.size] = np.asarray(w).reshape(-1)
            theta[self.meta[l, M_B]:self.meta[l, M_B] + b.size] = b
        return theta

    def unpack(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """theta (P,) -> [(W (units, inputs), b (units,)), ...], as copies."""
        out = []
        for row in self.meta:
            w = theta[row[M_W]:row[M_W] + row[M_IN] * row[M_OUT]].reshape(row[M_OUT], row[M_IN])
            b = theta[row[M_B]:row[M_B] + row[M_OUT]]
            out.append((w.copy(), b.copy()))
        return out


def optimizer_slots(kind: str) -> int:
    """Rows of the (S, P) optimizer state; at least one so the kernels see one array type."""
    return max(1, OPTIMIZER_SLOTS[kind])
