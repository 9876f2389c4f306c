"""Learning-rate schedules: the rate for each epoch, computed before the compiled call.

All but "plateau" are a formula of the epoch. "plateau" follows the metrics: its state
(PLATEAU_* slots of a float64 array, saved with the training state) holds the current rate,
and `plateau_step` updates it after each epoch as Keras's ReduceLROnPlateau does.
"""

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


def _plateau(lr0, s, e, total):   # the first epoch's rate; later ones come from the state
    return np.full(e.shape, lr0)


# name -> f(lr0, schedule, epochs (0-based int64 array), total epochs) -> rates;
# keys match registry.SCHEDULES.
SCHEDULE_FUNCS = {
    "constant": _constant,
    "step": _step,
    "exponential": _exponential,
    "inverse_scaling": _inverse_scaling,
    "cosine": _cosine,
    "plateau": _plateau,
}

# The plateau schedule's state: current rate, best monitored value, epochs without improvement,
# cooldown epochs left.
PLATEAU_LR, PLATEAU_BEST, PLATEAU_WAIT, PLATEAU_COOLDOWN = range(4)


def plateau_state(opt: OptimizerSpec) -> np.ndarray:
    """The plateau schedule's state before the first epoch."""
    return np.array([opt.learning_rate, math.inf, 0.0, 0.0])


def plateau_step(opt: OptimizerSpec, state: np.ndarray, value: float) -> None:
    """Update the state in place with the monitored value of the epoch just run (Keras's rule:
    improvement means value < best - threshold; in cooldown, epochs are not counted)."""
    s = opt.schedule
    if state[PLATEAU_COOLDOWN] > 0:
        state[PLATEAU_COOLDOWN] -= 1
        state[PLATEAU_WAIT] = 0
    if value < state[PLATEAU_BEST] - s.threshold:
        state[PLATEAU_BEST] = value
        state[PLATEAU_WAIT] = 0
    elif state[PLATEAU_COOLDOWN] == 0:
        state[PLATEAU_WAIT] += 1
        if state[PLATEAU_WAIT] >= s.patience and state[PLATEAU_LR] > s.min_lr:
            state[PLATEAU_LR] = max(state[PLATEAU_LR] * s.factor, s.min_lr)
            state[PLATEAU_COOLDOWN] = s.cooldown
            state[PLATEAU_WAIT] = 0


def learning_rates(opt: OptimizerSpec, first: int, count: int, total: int, plateau=None) -> np.ndarray:
    """Rates of epochs first .. first + count - 1 (0-based) of a `total`-epoch run, float64;
    a plateau schedule's come from its state when given."""
    if plateau is not None:
        return np.full(count, plateau[PLATEAU_LR])
    f = SCHEDULE_FUNCS[opt.schedule.kind]
    epochs = np.arange(first, first + count, dtype=np.int64)
    return np.asarray(f(opt.learning_rate, opt.schedule, epochs, total), dtype=np.float64)
