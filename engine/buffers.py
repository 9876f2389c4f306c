"""Per-job buffers and kernel arguments: everything allocated once before the first epoch."""

from __future__ import annotations

import time

import numba
import numpy as np

from .errors import InvalidSpec
from .kernels.columns import I_ACC, I_BATCH, I_FUSED, I_LOSS, I_OPT, I_SHUFFLE, I_SMALL, I_SPREAD, N_INTS
from .kernels.losses import ARGMAX, NO_ACCURACY, THRESHOLD, loss_is_fused
from .kernels.optimizers import (HP_BETA1, HP_BETA2, HP_CLIP, HP_DECAY, HP_EPS, HP_LR, HP_MOMENTUM,
                                 HP_RHO, HP_SIZE)
from .kernels.masked import run_epochs_masked
from .kernels.rng import seed_state
from .layout import Layout, optimizer_slots
from .registry import LOSSES, OPTIMIZERS
from .result import TrainState
from .spec import ModelSpec, OptimizerSpec, TrainConfig


def accuracy_rule(loss: str, y: np.ndarray) -> int:
    """How accuracy is counted: argmax for one-hot rows, a 1/2 threshold for 0/1 targets."""
    if loss == "softmax_cross_entropy":
        return ARGMAX
    if loss == "binary_cross_entropy":
        return THRESHOLD
    if not np.all((y == 0) | (y == 1)):
        return NO_ACCURACY
    if y.shape[1] > 1 and np.all(y.sum(axis=1) == 1):
        return ARGMAX
    return THRESHOLD


def accuracy_denominator(rule: int, rows: int, outs: int) -> int:
    return rows if rule == ARGMAX else rows * outs


def batch_rows(config: TrainConfig, n_rows: int) -> int:
    """Rows per mini-batch: 0 or >= n_rows means the full batch."""
    b = config.batch_size
    return n_rows if b == 0 or b >= n_rows else b


def hyper_parameters(opt: OptimizerSpec) -> np.ndarray:
    hp = np.zeros(HP_SIZE, dtype=np.float64)
    hp[HP_LR] = opt.learning_rate
    hp[HP_MOMENTUM] = opt.momentum
    hp[HP_BETA1] = opt.beta1
    hp[HP_BETA2] = opt.beta2
    hp[HP_RHO] = opt.rho
    hp[HP_EPS] = opt.epsilon
    hp[HP_DECAY] = opt.weight_decay
    hp[HP_CLIP] = opt.clip_norm
    return hp


class JobBuffers:
    """The mutable arrays of one model's training, plus its constant kernel arguments."""

    def __init__(self, model: ModelSpec, opt: OptimizerSpec, config: TrainConfig, layout: Layout,
                 theta: np.ndarray, n_rows: int, acc_rule: int, state: TrainState | None):
        dtype = np.dtype(model.dtype)
        p = layout.n_params
        slots = optimizer_slots(opt.kind)
        self.batch = batch_rows(config, n_rows)
        self.theta = theta
        self.grad = np.zeros(p, dtype=dtype)
        self.backup = np.empty(p, dtype=dtype)
        self.opt = np.zeros((slots, p), dtype=dtype)
        self.step = np.zeros(1, dtype=np.int64)
        self.rng = seed_state(config.seed)
        if state is not None:
            if state.params.shape != (p,) or state.params.dtype != dtype:
                raise InvalidSpec("state.params", f"expected {p} values of {dtype}, got "
                                                  f"{state.params.shape} of {state.params.dtype}")
            if state.opt_state.shape != (slots, p):
                raise InvalidSpec("state.opt_state", f"expected shape {(slots, p)} for optimizer "
                                                     f"{opt.kind}, got {state.opt_state.shape}")
            self.theta[:] = state.params
            self.opt[:] = state.opt_state
            self.step[0] = state.step
            self.rng[:] = state.rng
        self.perm = np.arange(n_rows, dtype=np.int64)
        self.xb = np.zeros(self.batch * model.inputs, dtype=dtype)
        self.yb = np.zeros(self.batch * model.outputs, dtype=dtype)
        self.acts = np.zeros(layout.act_size(self.batch), dtype=dtype)
        self.deltas = np.zeros(layout.act_size(self.batch), dtype=dtype)
        self.a_off = layout.act_offsets(self.batch)
        self.hp = hyper_parameters(opt)
        self.ints = np.zeros(N_INTS, dtype=np.int64)
        self.ints[I_OPT] = OPTIMIZERS[opt.kind]
        self.ints[I_LOSS] = LOSSES[model.loss]
        self.ints[I_ACC] = acc_rule
        self.ints[I_BATCH] = self.batch
        self.ints[I_SHUFFLE] = int(bool(config.shuffle))
        self.ints[I_FUSED] = int(loss_is_fused(LOSSES[model.loss]))
        self.ints[I_SMALL] = int(layout.small)
        self.ints[I_SPREAD] = 1

    def loop_args(self, x, y, layout: Layout, lrs, losses, correct) -> tuple:
        """The arguments of an epoch loop (kernels/epochs.py run_epochs) on this job's buffers."""
        return (self.theta, self.grad, self.backup, self.opt, self.step, self.rng, x, y, self.perm, self.xb,
                self.yb, self.acts, self.deltas, self.a_off, layout.meta, layout.slopes, self.hp, lrs, self.ints,
                losses, correct)

    def state(self, epoch: int, best_params, best_value: float, best_epoch: int, history,
              schedule=None) -> TrainState:
        return TrainState(params=self.theta.copy(), opt_state=self.opt.copy(), step=int(self.step[0]),
                          rng=self.rng.copy(), epoch=epoch, best_params=best_params.copy(),
                          best_value=best_value, best_epoch=best_epoch, history=history.copy(),
                          schedule=None if schedule is None else schedule.copy())


def is_masked(model: ModelSpec, weights) -> bool:
    """Whether a job runs the masked epoch loop (kernels/masked.py): dropout or row weights."""
    return weights is not None or any(layer.dropout > 0 for layer in model.layers)


class MaskedRun:
    """The extra buffers of a job with dropout or row weights, and its epoch loop called with
    the arguments of epochs.run_epochs (so train and train_many call both alike)."""

    def __init__(self, model: ModelSpec, layout: Layout, batch: int, weights):
        dtype = np.dtype(model.dtype)
        self.rates = np.array([layer.dropout for layer in model.layers], dtype=np.float64)
        self.masks = np.zeros(layout.act_size(batch), dtype=dtype)
        self.dropped = np.zeros(layout.act_size(batch), dtype=dtype)
        self.w = np.zeros(0) if weights is None else np.ascontiguousarray(weights, dtype=np.float64)
        self.wb = np.zeros(batch if weights is not None else 0)

    def args(self, theta, grad, backup, opt, step, rng, x, y, perm, xb, yb, acts, deltas, a_off, meta, slopes,
             hp, lrs, ints, losses, correct) -> tuple:
        return (theta, grad, backup, opt, step, rng, x, y, self.w, perm, xb, yb, self.wb, acts, deltas,
                self.masks, self.dropped, a_off, meta, slopes, self.rates, hp, lrs, ints, losses, correct)

    def __call__(self, *args):
        return run_epochs_masked(*self.args(*args))

    def compile(self, *args) -> float:
        """Seconds to compile (or load from Numba's cache) the loop for these arguments."""
        t0 = time.perf_counter()
        run_epochs_masked.compile(tuple(numba.typeof(a) for a in self.args(*args)))
        return time.perf_counter() - t0
