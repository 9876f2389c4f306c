"""What training returns: per-epoch metrics, the final result, and the resumable state."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

# Why training stopped.
COMPLETED = "COMPLETED"          # ran every epoch
EARLY_STOPPED = "EARLY_STOPPED"  # early stopping's patience ran out
DIVERGED = "DIVERGED"            # a non-finite loss; the last finite weights are kept
STOPPED = "STOPPED"              # the per-epoch callback asked to stop


@dataclass
class EpochMetrics:
    """Metrics of one epoch; accuracies and validation values are NaN when not applicable."""

    epoch: int                       # 1-based
    train_loss: float                # mean over the epoch's batches, from the forward passes
    train_accuracy: float = math.nan
    val_loss: float = math.nan
    val_accuracy: float = math.nan
    learning_rate: float = math.nan
    seconds: float = 0.0             # wall seconds of this epoch
    samples_per_second: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainState:
    """Everything needed to resume training bit-identically.

    `arrays()` / `from_arrays()` convert to and from a flat dict of numpy arrays (no
    pickled objects), ready for np.savez or safetensors.
    """

    params: np.ndarray               # (P,) all weights and biases, layer by layer (W as (units, inputs), then b)
    opt_state: np.ndarray            # (S, P) optimizer slots
    step: int                        # optimizer updates done so far (Adam bias correction)
    rng: np.ndarray                  # (1,) uint64 shuffling generator state
    epoch: int                       # epochs completed
    best_params: np.ndarray          # (P,) weights at the best monitored epoch (early stopping)
    best_value: float = math.inf
    best_epoch: int = 0
    history: list = field(default_factory=list)   # EpochMetrics so far

    def arrays(self) -> dict[str, np.ndarray]:
        keys = list(EpochMetrics.__dataclass_fields__)
        hist = np.array([[getattr(m, k) for k in keys] for m in self.history], dtype=np.float64)
        return {
            "params": self.params,
            "opt_state": self.opt_state,
            "rng": self.rng,
            "best_params": self.best_params,
            "scalars": np.array([self.step, self.epoch, self.best_epoch], dtype=np.int64),
            "best_value": np.array([self.best_value], dtype=np.float64),
            "history": hist.reshape(len(self.history), len(keys)),
        }

    @classmethod
    def from_arrays(cls, arrays: dict) -> "TrainState":
        keys = list(EpochMetrics.__dataclass_fields__)
        history = []
        for row in np.asarray(arrays["history"], dtype=np.float64):
            values = dict(zip(keys, (float(v) for v in row)))
            values["epoch"] = int(values["epoch"])
            history.append(EpochMetrics(**values))
        step, epoch, best_epoch = (int(v) for v in arrays["scalars"])
        return cls(
            params=np.array(arrays["params"]),
            opt_state=np.array(arrays["opt_state"]),
            step=step,
            rng=np.array(arrays["rng"], dtype=np.uint64),
            epoch=epoch,
            best_params=np.array(arrays["best_params"]),
            best_value=float(arrays["best_value"][0]),
            best_epoch=best_epoch,
            history=history,
        )


@dataclass
class TrainResult:
    """The trained model, how training went, and the state to resume from."""

    weights: list                    # [(W (units, inputs), b (units,)), ...] per layer
    history: list                    # [EpochMetrics, ...]
    final: dict                      # train_loss, train_accuracy, val_loss, val_accuracy after the last update
    stop_reason: str                 # COMPLETED, EARLY_STOPPED, DIVERGED, STOPPED
    epochs_run: int
    compile_seconds: float
    train_seconds: float
    state: TrainState
    message: str = ""
    best_epoch: Optional[int] = None
