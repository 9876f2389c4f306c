"""Loss kernels: values and gradients against the NumPy reference; accuracy counting."""

import numpy as np
import pytest

from fusetrain.engine.kernels.losses import ARGMAX, THRESHOLD, count_correct, loss_forward_backward
from fusetrain.engine.registry import LOSSES
from reference import act_forward, loss, loss_grad


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_and_gradient_match_reference(name):
    rng = np.random.default_rng(2)
    z = rng.normal(size=(6, 3))
    if name == "softmax_cross_entropy":
        a, y = act_forward(z, "softmax"), np.eye(3)[rng.integers(0, 3, 6)]
    elif name == "binary_cross_entropy":
        a, y = act_forward(z, "sigmoid"), rng.integers(0, 2, (6, 3)).astype(float)
    else:
        a, y = z, rng.normal(size=(6, 3))
    d = np.empty(18)
    value = loss_forward_backward(a.ravel(), 0, y.ravel(), 0, d, 0, 6, 3, LOSSES[name])
    assert value == pytest.approx(loss(a, y, name), rel=1e-12)
    np.testing.assert_allclose(d.reshape(6, 3), loss_grad(a, y, name), rtol=1e-12)


def test_count_correct():
    a = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]]).ravel()
    y = np.array([[0, 1, 0], [0, 1, 0], [0, 0, 1]], dtype=float).ravel()
    assert count_correct(a, 0, y, 0, 3, 3, ARGMAX) == 2
    assert count_correct(np.array([0.2, 0.6, 0.9]), 0, np.array([0.0, 0.0, 1.0]), 0, 3, 1, THRESHOLD) == 2
