"""Optimizer kernels against a NumPy transcription of PyTorch's update rules."""

import numpy as np
import pytest

from fusetrain.engine.kernels.optimizers import HP_SIZE, optimizer_update
from fusetrain.engine.registry import OPTIMIZERS

MU, B1, B2, RHO, EPS = 0.9, 0.8, 0.95, 0.7, 1e-6


def reference(kind, w, grads, lr, wd):
    w = w.copy()
    v, m, s = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        if kind == "adamw":
            w = w * (1 - lr * wd)
        else:
            g = g + wd * w
        if kind == "sgd":
            w = w - lr * g
        elif kind in ("momentum", "nesterov"):
            v = MU * v + g
            w = w - lr * (g + MU * v if kind == "nesterov" else v)
        elif kind in ("adam", "adamw"):
            m = B1 * m + (1 - B1) * g
            s = B2 * s + (1 - B2) * g * g
            w = w - lr / (1 - B1 ** t) * m / (np.sqrt(s) / np.sqrt(1 - B2 ** t) + EPS)
        elif kind == "rmsprop":
            s = RHO * s + (1 - RHO) * g * g
            w = w - lr * g / (np.sqrt(s) + EPS)
    return w


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
def test_updates_match_reference(kind):
    rng = np.random.default_rng(3)
    w0 = rng.normal(size=10)
    grads = [rng.normal(size=10) for _ in range(5)]
    hp = np.zeros(HP_SIZE)
    hp[1:6] = [MU, B1, B2, RHO, EPS]
    theta = np.concatenate([[5.0], w0, [6.0]])
    state = np.zeros((2, 12))
    for t, g in enumerate(grads, start=1):
        grad = np.concatenate([[1.0], g, [1.0]])
        optimizer_update(theta, grad, state, 1, 11, OPTIMIZERS[kind], 0.05, 0.01, hp, t)
    np.testing.assert_allclose(theta[1:11], reference(kind, w0, grads, 0.05, 0.01), rtol=1e-12)
    assert theta[0] == 5.0 and theta[11] == 6.0   # outside the range: untouched
