"""Activation kernels against the NumPy reference, forward and backward."""

import numpy as np
import pytest

from fusetrain.engine.kernels.activations import activation_backward, activation_forward
from fusetrain.engine.registry import ACTIVATIONS
from reference import act_backward, act_forward


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-14), ("float32", 1e-6)])
def test_forward_and_backward_match_reference(name, dtype, tol):
    rng = np.random.default_rng(0)
    z = rng.normal(scale=3, size=(5, 4))
    g = rng.normal(size=(5, 4))
    buf = np.concatenate([[9.0, 9.0], z.ravel()]).astype(dtype)   # the block at offset 2
    activation_forward(buf, 2, 5, 4, ACTIVATIONS[name], 0.2)
    a = act_forward(z, name, 0.2)
    np.testing.assert_allclose(buf[2:].reshape(5, 4), a, rtol=tol, atol=tol)
    assert list(buf[:2]) == [9.0, 9.0]
    d = g.ravel().astype(dtype)
    activation_backward(d, 0, buf, 2, 5, 4, ACTIVATIONS[name], 0.2)
    np.testing.assert_allclose(d.reshape(5, 4), act_backward(g, buf[2:].reshape(5, 4).astype(float), name, 0.2),
                               rtol=tol * 10, atol=tol)


def test_sigmoid_and_softmax_saturate_without_nan():
    z = np.array([-800.0, 800.0, 0.0, -1e30, 1e30, 5.0], dtype=np.float32)
    activation_forward(z, 0, 1, 6, ACTIVATIONS["sigmoid"], 0.0)
    np.testing.assert_allclose(z, [0, 1, 0.5, 0, 1, 1 / (1 + np.exp(-5.0))], rtol=1e-6)
    s = np.array([1000.0, 0.0, -1000.0], dtype=np.float64)
    activation_forward(s, 0, 1, 3, ACTIVATIONS["softmax"], 0.0)
    np.testing.assert_allclose(s, [1, 0, 0])
