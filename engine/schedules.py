"""Learning-rate schedules: the rate for each epoch, computed before the compiled call."""

from __future__ import annotations

import math

import numpy as np

from .spec import OptimizerSpec


def _constant(lr0, s, e, total):
    return np.full(e.shape, lr0)


def _step(lr0, s, e, total):
    return lr0 * s.gamma ** (e // s.step_size)


def _exponential(lr0, s, e, total):
    return lr0 * s.gamma ** e


def _inverse_scaling(lr0, s, e, total):
    return lr0 / (1.0 + e) ** s.power


def _cosine(lr0, s, e, total):
    return s.min_lr + (lr0 - s.min_lr) * (1.0 + np.cos(math.pi * e / total)) / 2.0


# name -> f(lr0, schedule, epochs (0-based int64 array), total epochs) -> rates;
# keys match registry.SCHEDULES.
SCHEDULE_FUNCS = {
    "constant": _constant,
    "step": _step,
    "exponential": _exponential,
    "inverse_scaling": _inverse_scaling,
    "cosine": _cosine,
}


def learning_rates(opt: OptimizerSpec, first: int, count: int, total: int) -> np.ndarray:
    """Rates of epochs first .. first + count - 1 (0-based) of a `total`-epoch run, float64."""
    f = SCHEDULE_FUNCS[opt.schedule.kind]
    epochs = np.arange(first, first + count, dtype=np.int64)
    return np.asarray(f(opt.learning_rate, opt.schedule, epochs, total), dtype=np.float64)
