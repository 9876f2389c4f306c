"""GEMM on flat buffers: all four transposes, alpha/beta, the fixed slabs, and the denormal switch."""

import numba
import numpy as np
import pytest
from numba import njit

from fusetrain.engine import config as cfg
from fusetrain.engine.kernels.blas import (BLOCK_ALIGN, MAX_BLOCKS, _slab, flush_denormals_on, gemm, gemm_block,
                                           gemm_plan, gemm_scratch, restore_mxcsr)

# (m, n, k): one slab; rows cut (k short: a weight gradient); columns cut (a forward product).
SHAPES = [(5, 4, 3), (300, 520, 70), (130, 600, 800)]


def operands(ta, tb, m, n, k, dtype, seed=0):
    """a, b, c as NumPy arrays and as flat buffers with a few leading pad values (offsets 1, 2, 3)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(k, m) if ta else (m, k))
    b = rng.normal(size=(n, k) if tb else (k, n))
    c = rng.normal(size=(m, n))
    flat = lambda arr, pad: np.concatenate([np.full(pad, 9.0), arr.ravel()]).astype(dtype)
    return a, b, c, flat(a, 1), flat(b, 2), flat(c, 3)


def run_gemm(ta, tb, m, n, k, af, bf, cf, lda, ldb, spread):
    iscr, fscr = gemm_scratch(cf.dtype)
    gemm(ta, tb, m, n, k, 0.5, af, 1, lda, bf, 2, ldb, 2.0, cf, 3, n, iscr, fscr, spread)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gemm_matches_numpy(shape, ta, tb, dtype):
    m, n, k = shape
    a, b, c, af, bf, cf = operands(ta, tb, m, n, k, dtype)
    run_gemm(ta, tb, m, n, k, af, bf, cf, a.shape[1], b.shape[1], spread=True)
    expect = 0.5 * (a.T if ta else a) @ (b.T if tb else b) + 2.0 * c
    tol = 1e-4 if dtype == "float32" else 1e-11
    np.testing.assert_allclose(cf[3:].reshape(m, n), expect, rtol=tol, atol=tol)
    assert list(cf[:3]) == [9.0] * 3


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (7, 3000, 5), (128, 256, 784), (128, 512, 784), (512, 784, 128),
                                   (256, 2048, 784), (2048, 784, 256), (256, 2048, 10), (1024, 10, 256),
                                   (100003, 17, 900), (129, 129, 100000)])
def test_plan_cuts_the_output_into_aligned_slabs(m, n, k):
    blocks, split_rows = gemm_plan(m, n, k)
    assert 1 <= blocks <= MAX_BLOCKS and blocks & (blocks - 1) == 0
    side = m if split_rows else n
    edges = [_slab(i, blocks, side) for i in range(blocks)]
    assert edges[0][0] == 0 and edges[-1][1] == side
    for (lo, hi), (nxt, _) in zip(edges, edges[1:]):
        assert hi == nxt and lo < hi and hi % BLOCK_ALIGN == 0


def test_plan_spreads_the_comparison_shapes():
    # large (784-512-256-10, batch 128) and wide (784-2048-10, batch 256): every big GEMM is cut.
    assert gemm_plan(128, 512, 784) == (MAX_BLOCKS, False)    # forward of the first layer: columns
    assert gemm_plan(512, 784, 128) == (MAX_BLOCKS, True)     # its weight gradient: rows
    assert gemm_plan(128, 256, 512)[0] == MAX_BLOCKS
    assert gemm_plan(256, 2048, 784) == (MAX_BLOCKS, False)
    assert gemm_plan(256, 2048, 10) == (MAX_BLOCKS, True)     # wide's input gradient (k = 10): rows
    assert gemm_plan(32, 128, 64) == (1, False)               # a small product stays one call


@pytest.mark.parametrize("shape", SHAPES[1:])
@pytest.mark.parametrize("ta,tb", [(False, True), (True, False), (False, False), (True, True)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_slabs_give_the_same_bits_in_any_order_and_thread_count(shape, ta, tb, dtype):
    m, n, k = shape
    a, b, _, af, bf, c0 = operands(ta, tb, m, n, k, dtype, seed=1)
    lda, ldb = a.shape[1], b.shape[1]
    blocks, split_rows = gemm_plan(m, n, k)
    assert blocks > 1
    results = []
    for threads in (1, 2):
        for spread in (False, True):
            cf = c0.copy()
            with cfg.threads(threads):
                run_gemm(ta, tb, m, n, k, af, bf, cf, lda, ldb, spread)
            results.append(cf)
    # The slabs one by one, last first: each is an independent single-threaded call.
    cf = c0.copy()
    iscr, fscr = gemm_scratch(cf.dtype)
    with cfg.threads(1):
        for i in reversed(range(blocks)):
            gemm_block(i, blocks, split_rows, ta, tb, m, n, k, 0.5, af, 1, lda, bf, 2, ldb, 2.0, cf, 3, n,
                       iscr, fscr)
    results.append(cf)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


@njit
def _flushed_gemm(a, b, c, m, n, k):
    """C = A . B^T with flush-to-zero on in the calling thread only, the slabs spread."""
    iscr = np.zeros((MAX_BLOCKS, 8), np.int32)
    fscr = np.zeros((MAX_BLOCKS, 2), c.dtype)
    old = flush_denormals_on()
    gemm(False, True, m, n, k, 1.0, a, 0, k, b, 0, k, 0.0, c, 0, n, iscr, fscr, True)
    restore_mxcsr(old)


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="the MXCSR switch exists only in compiled code")
def test_slabs_on_other_threads_flush_denormals_like_the_caller():
    # Every product 1e-20 * 1e-20 = 1e-40 is a float32 denormal: flushed to zero on the calling
    # thread. A slab run on a worker thread must flush too, or the result would depend on
    # which thread ran it.
    m, n, k = 256, 2048, 784
    assert gemm_plan(m, n, k)[0] > 1
    a = np.full(m * k, 1e-20, np.float32)
    b = np.full(n * k, 1e-20, np.float32)
    for threads in (1, 2):
        c = np.full(m * n, np.nan, np.float32)
        with cfg.threads(threads):
            _flushed_gemm(a, b, c, m, n, k)
        assert np.all(c == 0.0), f"{np.count_nonzero(c)} denormal values with {threads} threads"


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
