"""Optimizer updates of the BLAS step: per layer, right after its gradient, on the job's threads.

Plain SGD folds its update into the weight-gradient GEMM (epochs.py). The other rules keep
state, so their update is an elementwise loop (optimizers.optimizer_update); here it runs
- fused into the backward pass: layer l's weights and bias are updated as soon as their
  gradients are computed (the layer below needs only W_l's old values for its input gradient,
  which is computed before), while the gradient block is still in cache;
- over a fixed split of each layer's weights into blocks (update_blocks, from the size alone),
  the blocks spread over the job's Numba threads when `spread` is on, each run with the
  caller's MXCSR (flush-to-zero and denormals-are-zero: Adam's moments decay into denormals).

Every parameter's update reads only that parameter's gradient and state, so neither the split
nor the thread that runs a block can change a bit: the arithmetic is optimizer_update's, the
same as the serial loop of apply_update. Gradient-norm clipping needs the whole gradient
first: with clipping on, the gradients are all computed, then clipped (clip_gradients, one
serial sum in a fixed order), then every layer is updated over the same blocks.

Measured on 2 cores, 784-512-256-10, batch 128, 2 threads (samples/s over plain SGD's, which
folds its update into the GEMM): momentum 0.91, Adam 0.94, AdamW 0.89 (0.85, 0.80 and 0.81 with
the serial loop after the backward pass). What is left is the traffic of the state itself:
reading and writing a slot of 535k values per step, which plain SGD does not have.
"""

import numpy as np
from numba import njit, prange

from ..config import JIT, JIT_PARALLEL
from .blas import BLOCK_ALIGN, _mxcsr_get, _mxcsr_set, typed
from .columns import M_B, M_FREEZE_B, M_FREEZE_W, M_IN, M_OUT, M_W
from .optimizers import HP_CLIP, HP_DECAY, optimizer_update

# The fixed split of one update: blocks of at least UPDATE_BLOCK_MIN parameters, at most
# UPDATE_MAX_BLOCKS, a power of two, edges on multiples of BLOCK_ALIGN. A block below ~32k
# parameters costs less than a parallel launch is worth (1.5 µs with OpenMP).
UPDATE_BLOCK_MIN = 1 << 15
UPDATE_MAX_BLOCKS = 8


@njit(**JIT)
def update_blocks(n):
    """How many blocks an update of n parameters is cut into: by size alone."""
    cap = min(UPDATE_MAX_BLOCKS, n // UPDATE_BLOCK_MIN)
    blocks = 1
    while blocks * 2 <= cap:
        blocks *= 2
    return blocks


@njit(**JIT)
def update_block(i, blocks, start, end):
    """[lo, hi) of block i of `blocks` over [start, end), cut on BLOCK_ALIGN multiples."""
    n = end - start
    units = (n + BLOCK_ALIGN - 1) // BLOCK_ALIGN
    return (start + min(n, BLOCK_ALIGN * (units * i // blocks)),
            start + min(n, BLOCK_ALIGN * (units * (i + 1) // blocks)))


@njit(**JIT_PARALLEL)
def _update_threads(theta, grad, state, start, end, kind, lr, decay, hp, t, blocks, csr):
    """The blocks of one update spread over this thread's Numba threads, each with the caller's MXCSR."""
    for i in prange(blocks):
        own = _mxcsr_get()
        _mxcsr_set(csr)
        lo, hi = update_block(i, blocks, start, end)
        optimizer_update(theta, grad, state, lo, hi, kind, lr, decay, hp, t)
        _mxcsr_set(own)


@njit(**JIT)
def update_range(theta, grad, state, start, end, kind, lr, decay, hp, t, spread):
    """optimizer_update of theta[start:end], its fixed blocks on the Numba threads when `spread`."""
    blocks = update_blocks(end - start)
    if spread and blocks > 1:
        _update_threads(theta, grad, state, start, end, kind, lr, decay, hp, t, blocks, _mxcsr_get())
    else:
        optimizer_update(theta, grad, state, start, end, kind, lr, decay, hp, t)


@njit(**JIT)
def update_layer(theta, grad, state, meta, l, kind, lr, hp, t, spread):
    """Update layer l's trainable weights (with weight decay) and bias (without)."""
    w = meta[l, M_W]
    b = meta[l, M_B]
    if meta[l, M_FREEZE_W] == 0:
        update_range(theta, grad, state, w, w + meta[l, M_IN] * meta[l, M_OUT], kind, lr, hp[HP_DECAY], hp, t,
                     spread)
    if meta[l, M_FREEZE_B] == 0:
        update_range(theta, grad, state, b, b + meta[l, M_OUT], kind, lr, 0.0, hp, t, spread)


@njit(**JIT)
def clip_gradients(grad, meta, hp):
    """Scale the trainable gradients to a global norm of at most hp[HP_CLIP] (0: no clipping).

    The squares are summed in float64, layer by layer in order, weights before bias: one
    fixed order, on the calling thread.
    """
    clip = hp[HP_CLIP]
    if clip > 0.0:
        total = 0.0
        for l in range(meta.shape[0]):
            if meta[l, M_FREEZE_W] == 0:
                for i in range(meta[l, M_W], meta[l, M_W] + meta[l, M_IN] * meta[l, M_OUT]):
                    total += float(grad[i]) * float(grad[i])
            if meta[l, M_FREEZE_B] == 0:
                for i in range(meta[l, M_B], meta[l, M_B] + meta[l, M_OUT]):
                    total += float(grad[i]) * float(grad[i])
        norm = np.sqrt(total)
        if norm > clip:
            scale = typed(grad, clip / (norm + 1e-6))
            for i in range(grad.shape[0]):
                grad[i] *= scale
