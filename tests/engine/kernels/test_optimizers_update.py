"""The BLAS step's optimizer updates (kernels/update.py): fixed blocks, threads, clipping, FTZ.

Each update is checked bit for bit against optimizer_update run serially over the whole range
(the arithmetic apply_update runs), and against a NumPy transcription of PyTorch's rules.
"""

import numba
import numpy as np
import pytest
from numba import njit

from fusetrain.engine import config as cfg
from fusetrain.engine.kernels.blas import BLOCK_ALIGN, flush_denormals_on, restore_mxcsr
from fusetrain.engine.kernels.columns import M_B, M_FREEZE_B, M_FREEZE_W, M_IN, M_OUT, M_W
from fusetrain.engine.kernels.optimizers import (HP_BETA1, HP_BETA2, HP_CLIP, HP_DECAY, HP_EPS, HP_MOMENTUM,
                                                 HP_RHO, HP_SIZE, MOMENTUM, optimizer_update)
from fusetrain.engine.kernels.update import (UPDATE_BLOCK_MIN, UPDATE_MAX_BLOCKS, clip_gradients, update_block,
                                             update_blocks, update_layer, update_range)
from fusetrain.engine.registry import OPTIMIZERS

from reference import B1, B2, EPS, MU, RHO, optimizer_steps as reference  # noqa: F401

STATEFUL = [k for k in OPTIMIZERS if k != "sgd"]
THREADS = sorted({1, 2, numba.config.NUMBA_NUM_THREADS})


def hyper(decay=0.0, clip=0.0):
    hp = np.zeros(HP_SIZE)
    hp[HP_MOMENTUM], hp[HP_BETA1], hp[HP_BETA2], hp[HP_RHO], hp[HP_EPS] = MU, B1, B2, RHO, EPS
    hp[HP_DECAY], hp[HP_CLIP] = decay, clip
    return hp


@pytest.mark.parametrize("n", [0, 1, 15, UPDATE_BLOCK_MIN - 1, UPDATE_BLOCK_MIN, 2 * UPDATE_BLOCK_MIN + 7,
                               401_408, 131_072, 10 ** 7])
@pytest.mark.parametrize("start", [0, 3, 401_920])
def test_blocks_cover_the_range_once_on_aligned_edges(n, start):
    blocks = update_blocks(n)
    assert 1 <= blocks <= UPDATE_MAX_BLOCKS and blocks & (blocks - 1) == 0
    assert blocks == 1 or n // blocks >= UPDATE_BLOCK_MIN // 2
    edges = [update_block(i, blocks, start, start + n) for i in range(blocks)]
    assert edges[0][0] == start and edges[-1][1] == start + n
    for (lo, hi), (lo2, _) in zip(edges, edges[1:]):
        assert hi == lo2 and (hi - start) % BLOCK_ALIGN == 0
    assert all(lo <= hi for lo, hi in edges)


def test_blocks_split_the_large_shape_for_two_threads():
    # 784-512-256-10: the first two weight matrices are cut, the last one and the biases are not.
    assert update_blocks(784 * 512) >= 2 and update_blocks(512 * 256) >= 2
    assert update_blocks(256 * 10) == 1 and update_blocks(512) == 1


def _run(kind, dtype, n, start, steps, spread, threads, decay=0.01):
    rng = np.random.default_rng(11)
    p = start + n + 5
    theta0 = rng.normal(size=p).astype(dtype)
    grads = [rng.normal(size=p).astype(dtype) for _ in range(steps)]
    hp = hyper()
    theta, state = theta0.copy(), np.zeros((2, p), dtype)
    with cfg.threads(threads):
        for t, g in enumerate(grads, start=1):
            if spread is None:
                optimizer_update(theta, g, state, start, start + n, OPTIMIZERS[kind], 0.05, decay, hp, t)
            else:
                update_range(theta, g, state, start, start + n, OPTIMIZERS[kind], 0.05, decay, hp, t, spread)
    return theta0, grads, theta, state


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", list(OPTIMIZERS))
def test_spread_update_equals_the_serial_loop_bit_for_bit(kind, dtype):
    # Four blocks, an unaligned start, at every thread count: the same bits as one serial loop.
    n, start = 4 * UPDATE_BLOCK_MIN + 37, 5
    assert update_blocks(n) == 4
    _, _, want, want_state = _run(kind, dtype, n, start, 3, None, 1)
    for threads in THREADS:
        for spread in (True, False):
            _, _, got, got_state = _run(kind, dtype, n, start, 3, spread, threads)
            np.testing.assert_array_equal(got, want, err_msg=f"{kind} spread={spread} threads={threads}")
            np.testing.assert_array_equal(got_state, want_state)


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
def test_spread_update_matches_the_numpy_reference(kind):
    n, start = 2 * UPDATE_BLOCK_MIN + 100, 7
    theta0, grads, got, _ = _run(kind, np.float64, n, start, 4, True, 2, decay=0.01)
    want = reference(kind, theta0[start:start + n], [g[start:start + n] for g in grads], 0.05, 0.01)
    np.testing.assert_allclose(got[start:start + n], want, rtol=1e-12, atol=1e-15)
    # Outside the range: untouched.
    np.testing.assert_array_equal(got[:start], theta0[:start])
    np.testing.assert_array_equal(got[start + n:], theta0[start + n:])


def _meta(layers, freeze_w=(), freeze_b=()):
    """meta rows for layers [(inputs, units)], packed W then b as layout.py does."""
    meta = np.zeros((len(layers), 8), np.int64)
    off = 0
    for l, (n_in, n_out) in enumerate(layers):
        meta[l, M_IN], meta[l, M_OUT], meta[l, M_W] = n_in, n_out, off
        off += n_in * n_out
        meta[l, M_B] = off
        off += n_out
        meta[l, M_FREEZE_W], meta[l, M_FREEZE_B] = int(l in freeze_w), int(l in freeze_b)
    return meta, off


@pytest.mark.parametrize("kind", STATEFUL)
def test_layer_update_decays_weights_only_and_skips_frozen_ranges(kind):
    meta, p = _meta([(300, 256), (256, 10)], freeze_w=(1,), freeze_b=(0,))
    rng = np.random.default_rng(2)
    theta0 = rng.normal(size=p)
    grad = rng.normal(size=p)
    theta, state = theta0.copy(), np.zeros((2, p))
    hp = hyper(decay=0.1)
    for l in range(2):
        update_layer(theta, grad, state, meta, l, OPTIMIZERS[kind], 0.05, hp, 1, True)
    w0 = slice(meta[0, M_W], meta[0, M_B])
    b1 = slice(meta[1, M_B], p)
    np.testing.assert_allclose(theta[w0], reference(kind, theta0[w0], [grad[w0]], 0.05, 0.1), rtol=1e-12)
    np.testing.assert_allclose(theta[b1], reference(kind, theta0[b1], [grad[b1]], 0.05, 0.0), rtol=1e-12)
    frozen = np.ones(p, bool)
    frozen[w0] = frozen[b1] = False
    np.testing.assert_array_equal(theta[frozen], theta0[frozen])
    assert not state[:, frozen].any()


@pytest.mark.parametrize("clip", [0.0, 0.5, 1e9])
def test_clip_gradients_scales_to_the_global_norm_of_trainable_ranges(clip):
    meta, p = _meta([(40, 30), (30, 5)], freeze_w=(1,))
    rng = np.random.default_rng(4)
    grad = rng.normal(size=p)
    frozen = np.zeros(p, bool)
    frozen[meta[1, M_W]:meta[1, M_B]] = True
    norm = np.linalg.norm(grad[~frozen])
    want = grad * (clip / (norm + 1e-6)) if 0 < clip < norm else grad.copy()
    got = grad.copy()
    clip_gradients(got, meta, hyper(clip=clip))
    np.testing.assert_allclose(got, want, rtol=1e-14)
    if clip == 0.5:
        assert np.linalg.norm(got[~frozen]) == pytest.approx(0.5, rel=1e-6)


@njit
def _flushed_update(theta, grad, state, n, kind, hp):
    old = flush_denormals_on()
    update_range(theta, grad, state, 0, n, kind, 0.01, 0.0, hp, 1, True)
    restore_mxcsr(old)


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="the MXCSR switch exists only in compiled code")
def test_blocks_on_other_threads_flush_denormals_like_the_caller():
    # Momentum's velocity of a denormal gradient (1e-40 in float32) is 0 with denormals-are-zero
    # and flush-to-zero, and 1e-40 without: every block, on whichever thread, must flush.
    n = UPDATE_MAX_BLOCKS * UPDATE_BLOCK_MIN
    assert update_blocks(n) == UPDATE_MAX_BLOCKS
    for threads in THREADS:
        theta = np.ones(n, np.float32)
        grad = np.full(n, 1e-40, np.float32)
        state = np.zeros((1, n), np.float32)
        with cfg.threads(threads):
            _flushed_update(theta, grad, state, n, MOMENTUM, hyper())
        assert not state.any(), f"{np.count_nonzero(state)} denormal velocities with {threads} threads"
    # Unflushed, the same update keeps them: the check above can fail.
    state = np.zeros((1, n), np.float32)
    update_range(np.ones(n, np.float32), grad, state, 0, n, MOMENTUM, 0.01, 0.0, hyper(), 1, True)
    assert np.all(state > 0)
