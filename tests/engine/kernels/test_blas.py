"""GEMM on flat buffers (all four transposes, alpha/beta) and the denormal switch."""

import numba
import numpy as np
import pytest
from numba import njit

from fusetrain.engine.kernels.blas import flush_denormals_on, gemm, restore_mxcsr


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gemm_matches_numpy(ta, tb, dtype):
    rng = np.random.default_rng(0)
    m, n, k = 5, 4, 3
    a = rng.normal(size=(k, m) if ta else (m, k))
    b = rng.normal(size=(n, k) if tb else (k, n))
    c = rng.normal(size=(m, n))
    af = np.concatenate([[0.0], a.ravel()]).astype(dtype)
    bf = np.concatenate([[0.0, 0.0], b.ravel()]).astype(dtype)
    cf = c.ravel().astype(dtype)
    gemm(ta, tb, m, n, k, 0.5, af, 1, a.shape[1], bf, 2, b.shape[1], 2.0, cf, 0, n,
         np.empty(8, np.int32), np.empty(2, dtype))
    expect = 0.5 * (a.T if ta else a) @ (b.T if tb else b) + 2.0 * c
    np.testing.assert_allclose(cf.reshape(m, n), expect, rtol=1e-5 if dtype == "float32" else 1e-12)


@njit
def _products(x, out):
    """out[0] = x[0] * x[1] with FTZ/DAZ on, out[1] the same product after restoring."""
    old = flush_denormals_on()
    for i in range(x.shape[0] - 1):
        out[0] = x[i] * x[i + 1]
    restore_mxcsr(old)
    for i in range(x.shape[0] - 1):
        out[1] = x[i] * x[i + 1]


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="the MXCSR switch exists only in compiled code")
def test_flush_denormals_is_scoped():
    out = np.zeros(2, np.float32)
    _products(np.array([1e-20, 1e-20], np.float32), out)
    assert out[0] == 0.0          # 1e-40 is a float32 denormal: flushed to zero
    assert out[1] > 0.0           # and kept once the old mode is back
