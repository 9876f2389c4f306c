"""A tiny, saveable random generator for shuffling inside compiled code (SplitMix64).

State is one uint64 in a (1,) array, so it is saved with the training state and the same
seed gives the same row order in every thread and every model of a batch.
"""

import numpy as np
from numba import njit

from ..config import JIT

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@njit(**JIT)
def next_u64(state):
    """Advance state (1,) uint64 and return the next 64-bit output."""
    state[0] += _GOLDEN
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(**JIT)
def shuffle(perm, state):
    """Fisher-Yates shuffle of perm (N,) in place."""
    for i in range(perm.shape[0] - 1, 0, -1):
        # Lemire's multiply-shift on the top 32 bits: an index in [0, i].
        r = (next_u64(state) >> np.uint64(32)) * np.uint64(i + 1)
        j = np.int64(r >> np.uint64(32))
        tmp = perm[i]
        perm[i] = perm[j]
        perm[j] = tmp


def seed_state(seed: int) -> np.ndarray:
    """A fresh generator state from a non-negative integer seed."""
    return np.array([np.uint64(seed & 0xFFFFFFFFFFFFFFFF)], dtype=np.uint64)
