"""fusetrain's engine: Numba-compiled, fused training of multi-layer perceptrons (numpy + numba only).

Public API:
    train(model, optimizer, config, x, y, *, x_val=None, y_val=None, sample_weight=None,
          val_sample_weight=None, callback=None, state=None, limits=None) -> TrainResult
    train_many(model, optimizers, configs, x, y, *, seeds=None, threads=None, sample_weight=None,
               states=None, train_metrics=True) -> list[TrainResult]
    ManyRun(same arguments): the same K models trained in steps: advance(until, models), result(i), state(i)
    predict(model, weights, x) -> np.ndarray
    evaluate(model, weights, x, y) -> dict(loss=..., accuracy=...)
    warmup(dtypes=("float32", "float64")) -> seconds spent compiling or loading from cache
    split_validation(config, x, y) -> (x, y, x_val, y_val): the rows `train` holds out
    validation_rows(config, rows) -> (kept, held-out) row indices of that split
    search.successive_halving / search.asha(candidates, x, y, x_val, y_val, ...) -> SearchOutcome
"""

from .errors import EngineError, InvalidData, InvalidSpec, LimitExceeded
from .registry import ACTIVATIONS, DTYPES, INITIALIZERS, LOSSES, OPTIMIZERS, SCHEDULES
from .result import COMPLETED, DIVERGED, EARLY_STOPPED, STOPPED, EpochMetrics, TrainResult, TrainState
from .spec import EarlyStopping, LayerSpec, Limits, ModelSpec, OptimizerSpec, ScheduleSpec, TrainConfig
from .trainer import evaluate, predict, split_validation, train, validation_rows
from .many import ManyRun, train_many
from .warm import warmup
from . import search

__all__ = [
    "ACTIVATIONS", "COMPLETED", "DIVERGED", "DTYPES", "EARLY_STOPPED", "INITIALIZERS", "LOSSES",
    "OPTIMIZERS", "SCHEDULES", "STOPPED", "EarlyStopping", "EngineError", "EpochMetrics",
    "InvalidData", "InvalidSpec", "LayerSpec", "LimitExceeded", "Limits", "ModelSpec",
    "OptimizerSpec", "ScheduleSpec", "TrainConfig", "TrainResult", "TrainState", "evaluate",
    "predict", "search", "split_validation", "train", "train_many", "ManyRun", "validation_rows", "warmup",
]
