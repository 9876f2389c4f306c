"""What to train: model, optimizer and training settings as plain dataclasses, with validation.

Every check raises `InvalidSpec` naming the offending field with a dotted path
(`model.layers[1].units`), so the service can hand the message straight to its client.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .errors import InvalidSpec, LimitExceeded
from .registry import ACTIVATIONS, DTYPES, INITIALIZERS, LOSSES, OPTIMIZERS, SCHEDULES

# Largest init_scale: uniform(-s, s) and normal(0, s) draws stay finite in float32 far below this,
# where a larger scale overflows the draw (1e308) or the first forward pass.
MAX_INIT_SCALE = 1e6


@dataclass
class LayerSpec:
    """One dense layer: `units` outputs, an activation, optional explicit initial values."""

    units: int
    activation: str = "sigmoid"
    leaky_slope: float = 0.01            # slope for x < 0 when activation == "leaky_relu"
    weights: Optional[np.ndarray] = None  # (units, inputs of this layer), row o = weights into unit o
    bias: Optional[np.ndarray] = None     # (units,)
    freeze_weights: bool = False
    freeze_bias: bool = False
    dropout: float = 0.0                  # inverted dropout rate of this (hidden) layer's outputs in training


@dataclass
class ModelSpec:
    """A feed-forward network: `inputs` features, then `layers` (the last one is the output)."""

    inputs: int
    layers: list[LayerSpec]
    loss: str = "half_sse"
    initializer: str = "glorot_uniform"
    init_scale: float = 0.1               # half-width of "uniform", std of "normal"
    seed: int = 0
    dtype: str = "float32"

    @property
    def outputs(self) -> int:
        return self.layers[-1].units

    def layer_inputs(self) -> list[int]:
        return [self.inputs] + [layer.units for layer in self.layers[:-1]]

    def parameter_count(self) -> int:
        return sum((i + 1) * layer.units for i, layer in zip(self.layer_inputs(), self.layers))


@dataclass
class ScheduleSpec:
    """Learning rate per epoch e (0-based) of E epochs, from the base rate lr0."""

    kind: str = "constant"
    step_size: int = 10      # step: lr0 * gamma ** (e // step_size)
    gamma: float = 0.5       # step and exponential (lr0 * gamma ** e)
    power: float = 0.5       # inverse_scaling: lr0 / (1 + e) ** power
    min_lr: float = 0.0      # cosine: min_lr + (lr0 - min_lr) * (1 + cos(pi * e / E)) / 2; plateau's floor
    # plateau (Keras's ReduceLROnPlateau): lr *= factor when `monitor` has not improved by more
    # than `threshold` for `patience` epochs, never below min_lr, then `cooldown` epochs without counting.
    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    cooldown: int = 0
    monitor: str = "val_loss"   # or "train_loss"


@dataclass
class OptimizerSpec:
    """Update rule and its hyper-parameters; weight_decay is L2 (decoupled for adamw)."""

    kind: str = "sgd"
    learning_rate: float = 0.01
    momentum: float = 0.9    # momentum, nesterov
    beta1: float = 0.9       # adam, adamw
    beta2: float = 0.999     # adam, adamw
    rho: float = 0.9         # rmsprop
    epsilon: float = 1e-8    # adam, adamw, rmsprop
    weight_decay: float = 0.0
    clip_norm: float = 0.0   # clip the global gradient norm to this; 0 = off
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)


@dataclass
class EarlyStopping:
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs."""

    patience: int = 10
    min_delta: float = 0.0
    restore_best: bool = True
    monitor: str = "val_loss"   # or "train_loss"


@dataclass
class TrainConfig:
    """How to train: epochs, batching, shuffling, validation, early stopping, threads."""

    epochs: int = 100
    batch_size: int = 32          # 1 = online; 0 or >= rows = full batch
    shuffle: bool = True
    seed: int = 0                 # shuffling and the validation split
    validation_fraction: float = 0.0
    early_stopping: Optional[EarlyStopping] = None
    threads: int = 1
    # None, "balanced" (n_rows / (n_classes * rows of the class), over the training rows) or one
    # weight per class (per column of y; two, for classes 0 and 1, with a single 0/1 output).
    class_weight: Optional[object] = None


@dataclass
class Limits:
    """Size limits, checked with Python ints before anything is allocated."""

    max_layers: int = 64
    max_units: int = 65_536
    max_parameters: int = 100_000_000
    max_epochs: int = 10_000_000
    max_rows: int = 50_000_000
    max_data_elements: int = 1_000_000_000
    max_threads: int = field(default_factory=lambda: os.cpu_count() or 1)


def _int(value, name: str, lo: int, hi: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidSpec(name, f"must be an integer, got {value!r}")
    value = int(value)
    if value < lo:
        raise InvalidSpec(name, f"must be at least {lo}, got {value}")
    if hi is not None and value > hi:
        raise LimitExceeded(name, f"must be at most {hi}, got {value}")
    return value


def _real(value, name: str, lo: float = -math.inf, hi: float = math.inf,
          lo_open: bool = False, hi_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidSpec(name, f"must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise InvalidSpec(name, f"must be finite, got {value}")
    if value < lo or (lo_open and value == lo) or value > hi or (hi_open and value == hi):
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        raise InvalidSpec(name, f"must be in {left}{lo}, {hi}{right}, got {value}")
    return value


def _name(value, name: str, registry) -> str:
    if value not in registry:
        raise InvalidSpec(name, f"unknown value {value!r}; expected one of {', '.join(registry)}")
    return value


def validate_model(model: ModelSpec, limits: Limits = Limits()) -> None:
    """Check a model spec; raise InvalidSpec naming the first wrong field."""
    _int(model.inputs, "model.inputs", 1, limits.max_units)
    if not isinstance(model.layers, (list, tuple)) or len(model.layers) == 0:
        raise InvalidSpec("model.layers", "at least one layer (the output layer) is required")
    if len(model.layers) > limits.max_layers:
        raise LimitExceeded("model.layers", f"at most {limits.max_layers} layers, got {len(model.layers)}")
    _name(model.loss, "model.loss", LOSSES)
    _name(model.initializer, "model.initializer", INITIALIZERS)
    _name(model.dtype, "model.dtype", DTYPES)
    _real(model.init_scale, "model.init_scale", 0.0, MAX_INIT_SCALE, lo_open=True)
    _int(model.seed, "model.seed", 0, 2**63 - 1)
    n_layers = len(model.layers)
    for idx, (fan_in, layer) in enumerate(zip(model.layer_inputs(), model.layers)):
        where = f"model.layers[{idx}]"
        _int(layer.units, f"{where}.units", 1, limits.max_units)
        _name(layer.activation, f"{where}.activation", ACTIVATIONS)
        if layer.activation == "softmax" and idx != n_layers - 1:
            raise InvalidSpec(f"{where}.activation", "softmax is only allowed on the output layer")
        _real(layer.leaky_slope, f"{where}.leaky_slope", 0.0, 1.0, hi_open=True)
        for key, shape in (("weights", (layer.units, fan_in)), ("bias", (layer.units,))):
            value = getattr(layer, key)
            if value is None:
                continue
            arr = np.asarray(value)
            if arr.dtype.kind not in "iuf":
                raise InvalidSpec(f"{where}.{key}", f"must be numeric, got dtype {arr.dtype}")
            if arr.shape != shape:
                raise InvalidSpec(f"{where}.{key}", f"shape must be {shape} (units, inputs), got {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise InvalidSpec(f"{where}.{key}", "contains NaN or infinity")
        _real(layer.dropout, f"{where}.dropout", 0.0, 1.0, hi_open=True)
        if layer.dropout > 0 and idx == n_layers - 1:
            raise InvalidSpec(f"{where}.dropout", "dropout applies to hidden layers, not the output layer")
    params = model.parameter_count()
    if params > limits.max_parameters:
        raise LimitExceeded("model.layers", f"{params} parameters is over the limit of {limits.max_parameters}")
    out = model.layers[-1]
    if model.loss == "softmax_cross_entropy" and out.activation != "softmax":
        raise InvalidSpec(f"model.layers[{n_layers - 1}].activation",
                          "softmax_cross_entropy needs a softmax output layer")
    if model.loss == "binary_cross_entropy" and out.activation != "sigmoid":
        raise InvalidSpec(f"model.layers[{n_layers - 1}].activation",
                          "binary_cross_entropy needs a sigmoid output layer")
    if out.activation == "softmax" and out.units < 2:
        raise InvalidSpec(f"model.layers[{n_layers - 1}].units", "a softmax layer needs at least 2 units")


def validate_optimizer(opt: OptimizerSpec, epochs: int) -> None:
    """Check optimizer and schedule hyper-parameters."""
    _name(opt.kind, "optimizer.kind", OPTIMIZERS)
    _real(opt.learning_rate, "optimizer.learning_rate", 0.0, lo_open=True)
    _real(opt.momentum, "optimizer.momentum", 0.0, 1.0, hi_open=True)
    _real(opt.beta1, "optimizer.beta1", 0.0, 1.0, hi_open=True)
    _real(opt.beta2, "optimizer.beta2", 0.0, 1.0, hi_open=True)
    _real(opt.rho, "optimizer.rho", 0.0, 1.0, hi_open=True)
    _real(opt.epsilon, "optimizer.epsilon", 0.0, lo_open=True)
    _real(opt.weight_decay, "optimizer.weight_decay", 0.0)
    _real(opt.clip_norm, "optimizer.clip_norm", 0.0)
    s = opt.schedule
    _name(s.kind, "optimizer.schedule.kind", SCHEDULES)
    _int(s.step_size, "optimizer.schedule.step_size", 1)
    _real(s.gamma, "optimizer.schedule.gamma", 0.0, 1.0, lo_open=True)
    _real(s.power, "optimizer.schedule.power", 0.0)
    _real(s.min_lr, "optimizer.schedule.min_lr", 0.0, opt.learning_rate)
    if s.kind == "plateau":
        _real(s.factor, "optimizer.schedule.factor", 0.0, 1.0, lo_open=True, hi_open=True)
        _int(s.patience, "optimizer.schedule.patience", 1)
        _real(s.threshold, "optimizer.schedule.threshold", 0.0)
        _int(s.cooldown, "optimizer.schedule.cooldown", 0)
        _name(s.monitor, "optimizer.schedule.monitor", ("val_loss", "train_loss"))


def validate_config(cfg: TrainConfig, limits: Limits = Limits()) -> None:
    """Check training settings."""
    _int(cfg.epochs, "training.epochs", 1, limits.max_epochs)
    _int(cfg.batch_size, "training.batch_size", 0, limits.max_rows)
    if not isinstance(cfg.shuffle, (bool, np.bool_)):
        raise InvalidSpec("training.shuffle", f"must be true or false, got {cfg.shuffle!r}")
    _int(cfg.seed, "training.seed", 0, 2**63 - 1)
    _real(cfg.validation_fraction, "training.validation_fraction", 0.0, 1.0, hi_open=True)
    _int(cfg.threads, "training.threads", 1, limits.max_threads)
    es = cfg.early_stopping
    if es is not None:
        _int(es.patience, "training.early_stopping.patience", 1)
        _real(es.min_delta, "training.early_stopping.min_delta", 0.0)
        _name(es.monitor, "training.early_stopping.monitor", ("val_loss", "train_loss"))
    cw = cfg.class_weight
    if cw is not None and not (isinstance(cw, str) and cw == "balanced"):
        if isinstance(cw, str) or np.ndim(cw) != 1 or len(cw) == 0:
            raise InvalidSpec("training.class_weight", f"must be 'balanced' or one weight per class, got {cw!r}")
        for i, v in enumerate(cw):
            _real(v, f"training.class_weight[{i}]", 0.0)


def class_of_rows(y: np.ndarray, name: str) -> tuple[np.ndarray, int]:
    """(class index of each row, number of classes) of one-hot rows or a single 0/1 column."""
    if y.shape[1] > 1:
        if not np.all(((y == 0) | (y == 1)) & (y.sum(axis=1, keepdims=True) == 1)):
            raise InvalidSpec(name, "class weights need one-hot rows (or a single 0/1 column)")
        return np.argmax(y, axis=1), y.shape[1]
    if not np.all((y == 0) | (y == 1)):
        raise InvalidSpec(name, "class weights need 0/1 targets in a single column (or one-hot rows)")
    return (y[:, 0] > 0.5).astype(np.int64), 2


def class_weights(class_weight, y: np.ndarray) -> np.ndarray:
    """Per-class weights (n_classes,) float64 from `class_weight` and the training targets y.

    "balanced" is scikit-learn's n_samples / (n_classes * bincount(y)) (a class with no rows gets 1).
    """
    classes, n_classes = class_of_rows(y, "training.class_weight")
    if isinstance(class_weight, str):
        counts = np.bincount(classes, minlength=n_classes).astype(np.float64)
        return np.where(counts > 0, len(classes) / (n_classes * np.maximum(counts, 1)), 1.0)
    cw = np.asarray(class_weight, dtype=np.float64)
    if cw.shape != (n_classes,):
        raise InvalidSpec("training.class_weight", f"expected {n_classes} weights (one per class), got {cw.size}")
    return cw


def validate_weights(w, rows: int, name: str) -> np.ndarray:
    """Check a per-row weight array: rows values, finite, non-negative, not all zero -> float64."""
    arr = np.asarray(w)
    if arr.dtype.kind not in "iuf":
        raise InvalidSpec(name, f"must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or arr.shape[0] != rows:
        raise InvalidSpec(name, f"needs one weight per row ({rows}), got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise InvalidSpec(name, "weights must be finite and non-negative")
    if not arr.sum() > 0:
        raise InvalidSpec(name, "weights must not all be zero")
    return np.ascontiguousarray(arr)


def validate_data(model: ModelSpec, x, y, name: str, limits: Limits = Limits(),
                  need_rows: int = 1) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Check and convert (x, y) to C-contiguous arrays of the model dtype; y may be None."""
    dtype = np.dtype(model.dtype)
    x_arr = _as_matrix(x, f"{name}.x", limits)
    if x_arr.shape[1] != model.inputs:
        raise InvalidSpec(f"{name}.x", f"has {x_arr.shape[1]} columns but model.inputs is {model.inputs}")
    if x_arr.shape[0] < need_rows:
        raise InvalidSpec(f"{name}.x", f"needs at least {need_rows} row(s), got {x_arr.shape[0]}")
    y_arr = None
    if y is not None:
        y_arr = _as_matrix(y, f"{name}.y", limits)
        if y_arr.shape[0] != x_arr.shape[0]:
            raise InvalidSpec(f"{name}.y", f"has {y_arr.shape[0]} rows but {name}.x has {x_arr.shape[0]}")
        if y_arr.shape[1] != model.outputs:
            raise InvalidSpec(f"{name}.y", f"has {y_arr.shape[1]} columns but the output layer has "
                                           f"{model.outputs} units")
        if model.loss in ("binary_cross_entropy", "softmax_cross_entropy"):
            if np.any(y_arr < 0) or np.any(y_arr > 1):
                raise InvalidSpec(f"{name}.y", f"targets of {model.loss} must lie in [0, 1]")
        y_arr = np.ascontiguousarray(y_arr, dtype=dtype)
    return np.ascontiguousarray(x_arr, dtype=dtype), y_arr


def _as_matrix(value, name: str, limits: Limits) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iufb":
        raise InvalidSpec(name, f"must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise InvalidSpec(name, f"must be a 2-D array (rows, columns), got {arr.ndim} dimensions")
    rows, cols = (int(d) for d in arr.shape)
    if rows == 0 or cols == 0:
        raise InvalidSpec(name, f"is empty (shape {arr.shape})")
    if rows > limits.max_rows:
        raise LimitExceeded(name, f"{rows} rows is over the limit of {limits.max_rows}")
    if rows * cols > limits.max_data_elements:
        raise LimitExceeded(name, f"{rows * cols} values is over the limit of {limits.max_data_elements}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise InvalidSpec(name, f"contains NaN or infinity (first at row {bad})")
    return arr
