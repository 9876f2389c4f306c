"""What training returns: per-epoch metrics, the final result, and the resumable state."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Optional

import numpy as np

# Why training stopped.
COMPLETED = "COMPLETED"          # ran every epoch
EARLY_STOPPED = "EARLY_STOPPED"  # early stopping's patience ran out
DIVERGED = "DIVERGED"            # a non-finite loss; the last finite weights are kept
STOPPED = "STOPPED"              # the per-epoch callback asked to stop


@dataclass(slots=True)
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
    # Scores of the validation rows (metrics.py): macro-F1 for class targets, MAE, RMSE and R² for
    # regression targets. The training rows get them in the final metrics.
    val_macro_f1: float = math.nan
    val_mae: float = math.nan
    val_rmse: float = math.nan
    val_r2: float = math.nan

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}


FIELDS = tuple(EpochMetrics.__slots__)


class History(Sequence):
    """Per-epoch metrics as rows of one float64 array; items come out as EpochMetrics.

    Thousands of epochs cost one array, not thousands of Python objects (building those
    took longer than training a small network, mostly in the garbage collector).
    """

    def __init__(self, rows=None):
        data = np.zeros((0, len(FIELDS))) if rows is None else np.array(rows, dtype=np.float64)
        if data.ndim == 2 and data.shape[1] < len(FIELDS):   # saved before the later metrics: NaN
            data = np.hstack([data, np.full((len(data), len(FIELDS) - data.shape[1]), math.nan)])
        self._data = data.reshape(-1, len(FIELDS))
        self._n = len(self._data)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._n))]
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError("history index out of range")
        row = self._data[index].tolist()
        row[0] = int(row[0])
        return EpochMetrics(*row)

    def extend_rows(self, block: np.ndarray) -> None:
        """Append rows (k, len(FIELDS)) in FIELDS order."""
        need = self._n + len(block)
        if need > len(self._data):
            grown = np.zeros((max(need, 2 * len(self._data), 16), len(FIELDS)))
            grown[:self._n] = self._data[:self._n]
            self._data = grown
        self._data[self._n:need] = block
        self._n = need

    def column(self, name: str) -> np.ndarray:
        """One metric for every epoch, e.g. column("train_loss")."""
        return self._data[:self._n, FIELDS.index(name)].copy()

    def array(self) -> np.ndarray:
        """All rows as a (epochs, len(FIELDS)) float64 array (a copy)."""
        return self._data[:self._n].copy()

    def copy(self) -> "History":
        return History(self.array())

    def __eq__(self, other) -> bool:
        return isinstance(other, History) and np.array_equal(self.array(), other.array(), equal_nan=True)


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
    history: History = field(default_factory=History)   # metrics of the epochs so far
    schedule: Optional[np.ndarray] = None   # the plateau schedule's state (schedules.py), else None

    def arrays(self) -> dict[str, np.ndarray]:
        extra = {} if self.schedule is None else {"schedule": np.asarray(self.schedule, dtype=np.float64)}
        return extra | {
            "params": self.params,
            "opt_state": self.opt_state,
            "rng": self.rng,
            "best_params": self.best_params,
            "scalars": np.array([self.step, self.epoch, self.best_epoch], dtype=np.int64),
            "best_value": np.array([self.best_value], dtype=np.float64),
            "history": self.history.array(),
        }

    @classmethod
    def from_arrays(cls, arrays: dict) -> "TrainState":
        history = History(np.asarray(arrays["history"], dtype=np.float64))
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
            schedule=np.array(arrays["schedule"], dtype=np.float64) if "schedule" in arrays else None,
        )


@dataclass
class TrainResult:
    """The trained model, how training went, and the state to resume from."""

    weights: list                    # [(W (units, inputs), b (units,)), ...] per layer
    history: History                 # EpochMetrics per epoch
    final: dict                      # train_loss, train_accuracy, val_loss, val_accuracy after the last update,
                                     # and the scores of metrics.py (train_macro_f1, train_confusion, ...)
    stop_reason: str                 # COMPLETED, EARLY_STOPPED, DIVERGED, STOPPED
    epochs_run: int
    compile_seconds: float
    train_seconds: float
    state: TrainState
    message: str = ""
    best_epoch: Optional[int] = None
    # The BLAS kernel that did the arithmetic (library, version, SIMD architecture): results are
    # bit-identical for any thread count on one kernel; another kernel may round differently.
    blas: dict = field(default_factory=dict)
