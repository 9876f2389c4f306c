"""train / predict / evaluate: validate, allocate once, run compiled chunks of epochs, report.

The Python loop runs once per chunk of epochs, never per mini-batch. A chunk is every
remaining epoch when nobody is watching; with a callback or checkpoints, chunks grow from
one epoch until a call takes about `chunk_seconds`; with validation or early stopping, a
chunk is one epoch (both need a look at the model after every epoch).
"""

from __future__ import annotations

import math
import time
from typing import Callable, Optional

import numpy as np

from . import config as cfg
from . import tinygen
from .buffers import JobBuffers, MaskedRun, accuracy_denominator, accuracy_rule, is_masked
from .errors import InvalidSpec
from .init import initial_weights
from .kernels.epochs import epoch_loop, loop_key, predict_rows, predict_rows_loops
from .kernels.losses import NO_ACCURACY, count_correct, loss_forward_backward
from .kernels.masked import weighted_metrics
from .layout import Layout
from .metrics import Scorer
from .registry import LOSSES
from .result import (COMPLETED, DIVERGED, EARLY_STOPPED, FIELDS, STOPPED, EpochMetrics, History, TrainResult,
                     TrainState)
from .schedules import learning_rates, plateau_state, plateau_step
from .spec import (Limits, ModelSpec, OptimizerSpec, TrainConfig, class_of_rows, class_weights, validate_config,
                   validate_data, validate_model, validate_optimizer, validate_weights)
from .warm import PREDICT, ensure_compiled

Callback = Callable[[EpochMetrics], Optional[bool]]


def epoch_rows(first: int, losses, correct, denom: int, rates, seconds: float, per_second: float):
    """History rows (k, len(FIELDS)) of epochs first+1 .. first+k, validation left NaN."""
    rows = np.full((len(losses), len(FIELDS)), math.nan)
    rows[:, FIELDS.index("epoch")] = np.arange(first + 1, first + 1 + len(losses))
    rows[:, FIELDS.index("train_loss")] = losses
    if denom:
        rows[:, FIELDS.index("train_accuracy")] = correct / denom
    rows[:, FIELDS.index("learning_rate")] = rates
    rows[:, FIELDS.index("seconds")] = seconds
    rows[:, FIELDS.index("samples_per_second")] = per_second
    return rows


def validation_rows(config: TrainConfig, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) row indices of a seeded random `validation_fraction` of n rows, sorted."""
    n_val = int(round(n * config.validation_fraction))
    if n_val < 1 or n - n_val < 1:
        raise InvalidSpec("training.validation_fraction",
                          f"{config.validation_fraction} of {n} rows leaves no training or no validation rows")
    order = np.random.default_rng(config.seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def split_validation(config: TrainConfig, x, y):
    """Hold out a seeded random `validation_fraction` of the rows; return (x, y, x_val, y_val)."""
    keep, val = validation_rows(config, x.shape[0])
    return (np.ascontiguousarray(x[keep]), np.ascontiguousarray(y[keep]),
            np.ascontiguousarray(x[val]), np.ascontiguousarray(y[val]))


def prepare(model: ModelSpec, optimizer: OptimizerSpec, config: TrainConfig, x, y, x_val, y_val,
            limits: Limits, sample_weight=None, val_sample_weight=None):
    """Validate everything; return contiguous (x, y, x_val, y_val) of the model dtype and the row
    weights (w, w_val) in float64: sample weights times class weights, None when neither is given."""
    validate_model(model, limits)
    validate_config(config, limits)
    validate_optimizer(optimizer, config.epochs)
    if y is None:
        raise InvalidSpec("train.y", "training targets are required")
    x, y = validate_data(model, x, y, "train", limits)
    w = None if sample_weight is None else validate_weights(sample_weight, x.shape[0], "train.sample_weight")
    w_val = None
    if (x_val is None) != (y_val is None):
        raise InvalidSpec("validation", "give both validation.x and validation.y, or neither")
    if x_val is not None:
        if config.validation_fraction > 0:
            raise InvalidSpec("training.validation_fraction",
                              "give a validation fraction or a separate validation set, not both")
        x_val, y_val = validate_data(model, x_val, y_val, "validation", limits)
        if val_sample_weight is not None:
            w_val = validate_weights(val_sample_weight, x_val.shape[0], "validation.sample_weight")
    elif val_sample_weight is not None:
        raise InvalidSpec("validation.sample_weight", "given without a validation set")
    elif config.validation_fraction > 0:
        keep, val = validation_rows(config, x.shape[0])
        x, y, x_val, y_val = (np.ascontiguousarray(a[i]) for a, i in ((x, keep), (y, keep), (x, val), (y, val)))
        if w is not None:
            w, w_val = np.ascontiguousarray(w[keep]), np.ascontiguousarray(w[val])
    if config.class_weight is not None:
        per_class = class_weights(config.class_weight, y)
        w = per_class[class_of_rows(y, "train.y")[0]] * (1.0 if w is None else w)
        if x_val is not None:
            w_val = per_class[class_of_rows(y_val, "validation.y")[0]] * (1.0 if w_val is None else w_val)
        if not w.sum() > 0:
            raise InvalidSpec("training.class_weight", "the weights of the training rows sum to 0")
    if x_val is not None and w is not None and w_val is None:
        w_val = np.ones(x_val.shape[0])
    if config.early_stopping is not None and config.early_stopping.monitor == "val_loss" and x_val is None:
        raise InvalidSpec("training.early_stopping.monitor",
                          "val_loss needs validation data (validation_fraction or a validation set)")
    s = optimizer.schedule
    if s.kind == "plateau" and s.monitor == "val_loss" and x_val is None:
        raise InvalidSpec("optimizer.schedule.monitor",
                          "val_loss needs validation data (validation_fraction or a validation set)")
    return x, y, x_val, y_val, w, w_val


def train(model: ModelSpec, optimizer: OptimizerSpec, config: TrainConfig, x, y, *, x_val=None,
          y_val=None, sample_weight=None, val_sample_weight=None, callback: Optional[Callback] = None,
          state: Optional[TrainState] = None, limits: Optional[Limits] = None,
          checkpoint: Optional[Callable[[TrainState], None]] = None,
          checkpoint_seconds: float = 10.0, chunk_seconds: float = 0.05) -> TrainResult:
    """Train `model` on (x, y); resume from `state` when given. See the module docstring.

    sample_weight (rows,): per-row weights of the loss, its gradients and the reported metrics
    (scikit-learn's sample_weight); val_sample_weight those of a separate validation set.
    """
    limits = limits or Limits()
    x, y, x_val, y_val, w, w_val = prepare(model, optimizer, config, x, y, x_val, y_val, limits,
                                           sample_weight, val_sample_weight)
    layout = Layout.of(model)
    dtype = np.dtype(model.dtype)
    rule = accuracy_rule(model.loss, y)
    theta = layout.pack(initial_weights(model), dtype)
    buf = JobBuffers(model, optimizer, config, layout, theta, x.shape[0], rule, state)
    xf, yf = x.reshape(-1), y.reshape(-1)
    masked = MaskedRun(model, layout, buf.batch, w) if is_masked(model, w) else None
    tiny = None if masked else tinygen.select(layout, buf, dtype, xf, yf)   # a loop generated for this architecture
    if masked is not None:
        compile_seconds = (ensure_compiled(model.dtype, (PREDICT, layout.small))
                           + masked.compile(*buf.loop_args(xf, yf, layout, np.zeros(1), np.zeros(1),
                                                           np.zeros(1))))
        run_epochs = masked
    elif tiny is not None:
        compile_seconds = (ensure_compiled(model.dtype, (PREDICT, True))    # the final evaluation
                           + tinygen.ensure_compiled(tiny, buf, xf, yf))
        run_epochs = tiny.run
    else:
        compile_seconds = ensure_compiled(model.dtype, loop_key(buf.ints, buf.hp))   # this job's path only
        run_epochs = epoch_loop(buf.ints, buf.hp)
    n_rows = x.shape[0]
    denom = accuracy_denominator(rule, n_rows, model.outputs)
    if w is not None:
        denom = float(w.sum()) * (denom // n_rows)
    plateau = None
    if optimizer.schedule.kind == "plateau":
        plateau = state.schedule.copy() if state and state.schedule is not None else plateau_state(optimizer)
    val_scorer = Scorer(y_val, rule, w_val) if x_val is not None else None

    es = config.early_stopping
    history = state.history.copy() if state else History()
    epoch = state.epoch if state else 0
    best_params = state.best_params.copy() if state else buf.theta.copy()
    best_value = state.best_value if state else math.inf
    best_epoch = state.best_epoch if state else 0
    per_epoch = x_val is not None or es is not None or plateau is not None
    watched = callback is not None or checkpoint is not None
    chunk = 1 if (per_epoch or watched) else config.epochs
    reason, message = COMPLETED, ""
    last_checkpoint = time.perf_counter()
    train_seconds = 0.0

    with cfg.threads(config.threads):
        while epoch < config.epochs:
            count = min(chunk, config.epochs - epoch)
            lrs = learning_rates(optimizer, epoch, count, config.epochs, plateau)
            losses = np.zeros(count)
            correct = np.zeros(count, dtype=np.float64 if masked else np.int64)
            t0 = time.perf_counter()
            done, diverged = run_epochs(*buf.loop_args(xf, yf, layout, lrs, losses, correct))
            elapsed = time.perf_counter() - t0
            train_seconds += elapsed
            stop = False
            secs = elapsed / max(done, 1)
            rate = n_rows / secs if secs > 0 else math.inf
            rows = epoch_rows(epoch, losses[:done], correct[:done], denom if rule != NO_ACCURACY else 0,
                              lrs[:done], secs, rate)
            epoch += done
            for row in rows if (per_epoch or callback is not None) else ():
                values = row.tolist()
                values[0] = int(values[0])
                m = EpochMetrics(*values)
                if x_val is not None:
                    m.val_loss, m.val_accuracy, out = _evaluate_outputs(model, layout, buf.theta, x_val, y_val, rule,
                                                                        w_val)
                    for name, value in val_scorer.scores(out).items():
                        setattr(m, "val_" + name, value)
                        row[FIELDS.index("val_" + name)] = value
                if plateau is not None:
                    plateau_step(optimizer, plateau, m.val_loss if optimizer.schedule.monitor == "val_loss"
                                 else m.train_loss)
                if es is not None:
                    value = m.val_loss if es.monitor == "val_loss" else m.train_loss
                    if value < best_value - es.min_delta:
                        best_value, best_epoch = value, m.epoch
                        best_params[:] = buf.theta
                    elif m.epoch - best_epoch >= es.patience:
                        reason = EARLY_STOPPED
                        message = (f"{es.monitor} did not improve by {es.min_delta} for {es.patience} "
                                   f"epochs; best {best_value:.6g} at epoch {best_epoch}")
                        stop = True
                if callback is not None and callback(m):
                    if reason == COMPLETED:
                        reason, message = STOPPED, f"stopped by request after epoch {m.epoch}"
                    stop = True
                row[FIELDS.index("val_loss")] = m.val_loss
                row[FIELDS.index("val_accuracy")] = m.val_accuracy
            history.extend_rows(rows)
            if diverged:
                reason = DIVERGED
                message = (f"the training loss or the weights became non-finite in epoch {epoch + 1}; "
                           f"weights are those after epoch {epoch}")
                break
            if checkpoint is not None and time.perf_counter() - last_checkpoint >= checkpoint_seconds:
                checkpoint(buf.state(epoch, best_params, best_value, best_epoch, history, plateau))
                last_checkpoint = time.perf_counter()
            if stop:
                break
            if not per_epoch and elapsed < chunk_seconds / 2:
                chunk *= 2
    if reason == EARLY_STOPPED and es.restore_best and best_epoch > 0:
        buf.theta[:] = best_params
    final = {"train_loss": math.nan, "train_accuracy": math.nan, "val_loss": math.nan, "val_accuracy": math.nan}
    final["train_loss"], final["train_accuracy"], out = _evaluate_outputs(model, layout, buf.theta, x, y, rule, w)
    final.update(Scorer(y, rule, w).final(out, "train_"))
    if x_val is not None:
        final["val_loss"], final["val_accuracy"], out = _evaluate_outputs(model, layout, buf.theta, x_val, y_val,
                                                                          rule, w_val)
        final.update(val_scorer.final(out, "val_"))
    return TrainResult(weights=layout.unpack(buf.theta), history=history, final=final,
                       stop_reason=reason, epochs_run=epoch, compile_seconds=compile_seconds,
                       train_seconds=train_seconds,
                       state=buf.state(epoch, best_params, best_value, best_epoch, history, plateau),
                       message=message, best_epoch=best_epoch if es is not None else None,
                       blas=cfg.blas_kernel())


def _forward_all(model: ModelSpec, layout: Layout, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    rows = x.shape[0]
    block = min(rows, cfg.EVAL_BLOCK_ROWS)
    acts = np.empty(layout.act_size(block), dtype=theta.dtype)
    out = np.empty(rows * model.outputs, dtype=theta.dtype)
    with cfg.threads():  # BLAS single-threaded: the GEMM slabs are the only parallelism
        forward_rows = predict_rows_loops if layout.small else predict_rows   # tiny: no GEMM code
        forward_rows(theta, x.reshape(-1), rows, acts, layout.act_offsets(block), layout.meta,
                     layout.slopes, block, out, True)
    return out.reshape(rows, model.outputs)


def _evaluate_outputs(model, layout, theta, x, y, rule, w=None) -> tuple[float, float, np.ndarray]:
    """(mean loss, accuracy or NaN, the outputs (rows, outputs)) of the model on (x, y); with row
    weights w, the loss and accuracy are their weighted averages."""
    out = _forward_all(model, layout, theta, x)
    flat, yf = out.reshape(-1), y.reshape(-1)
    if w is not None:
        loss, hits, wsum = weighted_metrics(flat, yf, w, x.shape[0], model.outputs, LOSSES[model.loss], rule)
        if rule == NO_ACCURACY:
            return float(loss), math.nan, out
        return float(loss), hits / (wsum * (accuracy_denominator(rule, x.shape[0], model.outputs) // x.shape[0])), out
    scratch = np.empty_like(flat)
    loss = loss_forward_backward(flat, 0, yf, 0, scratch, 0, x.shape[0], model.outputs, LOSSES[model.loss])
    if rule == NO_ACCURACY:
        return float(loss), math.nan, out
    hits = count_correct(flat, 0, yf, 0, x.shape[0], model.outputs, rule)
    return float(loss), hits / accuracy_denominator(rule, x.shape[0], model.outputs), out


def _weights_theta(model: ModelSpec, weights) -> tuple[Layout, np.ndarray]:
    layout = Layout.of(model)
    dtype = np.dtype(model.dtype)
    if len(weights) != len(model.layers):
        raise InvalidSpec("weights", f"expected {len(model.layers)} (W, b) pairs, got {len(weights)}")
    for l, ((w, b), fan_in, layer) in enumerate(zip(weights, model.layer_inputs(), model.layers)):
        if np.shape(w) != (layer.units, fan_in) or np.shape(b) != (layer.units,):
            raise InvalidSpec(f"weights[{l}]", f"expected W {(layer.units, fan_in)} and b "
                                               f"{(layer.units,)}, got {np.shape(w)} and {np.shape(b)}")
    return layout, layout.pack(weights, dtype)


def predict(model: ModelSpec, weights, x, limits: Optional[Limits] = None) -> np.ndarray:
    """Output activations (rows, outputs) of the model with `weights` on x."""
    limits = limits or Limits()
    validate_model(model, limits)
    x, _ = validate_data(model, x, None, "predict", limits)
    layout, theta = _weights_theta(model, weights)
    ensure_compiled(model.dtype, (PREDICT, layout.small))
    return _forward_all(model, layout, theta, x)


def evaluate(model: ModelSpec, weights, x, y, limits: Optional[Limits] = None) -> dict:
    """{'loss': mean loss, 'accuracy': accuracy or NaN, and the scores of metrics.py: 'mae', 'rmse',
    'r2' for regression targets, 'macro_f1' and 'confusion' for class targets} of the model on (x, y)."""
    limits = limits or Limits()
    validate_model(model, limits)
    x, y = validate_data(model, x, y, "evaluate", limits)
    layout, theta = _weights_theta(model, weights)
    ensure_compiled(model.dtype, (PREDICT, layout.small))
    rule = accuracy_rule(model.loss, y)
    loss, acc, out = _evaluate_outputs(model, layout, theta, x, y, rule)
    return {"loss": loss, "accuracy": acc, **Scorer(y, rule).final(out, "")}
