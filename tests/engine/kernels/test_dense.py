"""Dense forward/backward, hand loops and BLAS, against NumPy on offset blocks of flat buffers."""

import numpy as np
import pytest

from fusetrain.engine.kernels.blas import gemm_scratch
from fusetrain.engine.kernels.dense import (dense_backward_bias, dense_backward_input, dense_backward_weights,
                                            dense_forward)


@pytest.mark.parametrize("use_blas,spread", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_dense_pair_matches_numpy(use_blas, spread, dtype, tol):
    rng = np.random.default_rng(1)
    rows, n_in, n_out = 7, 5, 3
    x, w, b = rng.normal(size=(rows, n_in)), rng.normal(size=(n_out, n_in)), rng.normal(size=n_out)
    dz = rng.normal(size=(rows, n_out))
    iscr, fscr = gemm_scratch(dtype)
    # theta: 4 padding values, then W (O, I), then b (O,)
    theta = np.concatenate([np.full(4, 7.0), w.ravel(), b]).astype(dtype)
    w_off, b_off = 4, 4 + w.size
    xs = np.concatenate([np.zeros(3), x.ravel()]).astype(dtype)
    z = np.full(2 + rows * n_out, -5.0, dtype=dtype)
    dense_forward(xs, 3, rows, n_in, theta, w_off, b_off, n_out, z, 2, use_blas, iscr, fscr, spread)
    np.testing.assert_allclose(z[2:].reshape(rows, n_out), x @ w.T + b, rtol=tol, atol=tol)
    assert list(z[:2]) == [-5.0, -5.0]

    dzs = dz.ravel().astype(dtype)
    dx = np.full(rows * n_in, np.nan, dtype=dtype)
    dense_backward_input(dzs, 0, rows, n_out, theta, w_off, n_in, dx, 0, use_blas, iscr, fscr, spread)
    np.testing.assert_allclose(dx.reshape(rows, n_in), dz @ w, rtol=tol, atol=tol)

    grad = np.full(theta.size, np.nan, dtype=dtype)
    dense_backward_weights(dzs, 0, rows, n_out, xs, 3, n_in, 1.0, 0.0, grad, w_off, use_blas, iscr, fscr, spread)
    np.testing.assert_allclose(grad[w_off:b_off].reshape(n_out, n_in), dz.T @ x, rtol=tol, atol=tol)
    dense_backward_bias(dzs, 0, rows, n_out, 1.0, 0.0, grad, b_off)
    np.testing.assert_allclose(grad[b_off:], dz.sum(axis=0), rtol=tol, atol=tol)

    # The folded SGD update: W <- (1 - lr wd) W - lr dz^T x, in place in theta.
    lr, wd = 0.1, 0.01
    dense_backward_weights(dzs, 0, rows, n_out, xs, 3, n_in, -lr, 1 - lr * wd, theta, w_off, use_blas, iscr, fscr, spread)
    np.testing.assert_allclose(theta[w_off:b_off].reshape(n_out, n_in), (1 - lr * wd) * w - lr * dz.T @ x,
                               rtol=tol, atol=tol)
    assert list(theta[:4]) == [7.0] * 4
