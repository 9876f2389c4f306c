"""Optimizer kernels against a NumPy transcription of PyTorch's update rules."""

import numpy as np
import pytest

from fusetrain.engine.kernels.optimizers import HP_SIZE, optimizer_update
from fusetrain.engine.registry import OPTIMIZERS

from reference import B1, B2, EPS, MU, RHO, optimizer_steps as reference  # noqa: F401


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
