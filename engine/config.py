"""The one place for Numba policy: cache, fastmath, threading layer, thread counts, kernel choices.

Every `@njit` in the engine is written `@njit(**JIT)` or `@njit(**JIT_PARALLEL)`.
Importing this module fixes the threading layer before any parallel kernel is compiled.
"""

from __future__ import annotations

import os

import numba
from threadpoolctl import ThreadpoolController

# Set NUMBA_CACHE_DIR in the environment (before importing the engine) to move the cache.
CACHE = True
# fastmath would let LLVM reorder sums: results would then depend on inlining and thread
# count, and "bit-identical whatever the thread count" would no longer hold.
FASTMATH = False

# Parallel kernels only run over independent models (many.py), never around threaded BLAS.
# "workqueue" threads sleep between calls; OpenMP's spinning workers fought OpenBLAS's
# threads on these 2-core machines (76k -> 4.6k samples/s on the large shape).
THREADING_LAYER = os.environ.get("FUSETRAIN_THREADING_LAYER", "workqueue")
numba.config.THREADING_LAYER = THREADING_LAYER

JIT = dict(cache=CACHE, fastmath=FASTMATH, nogil=True, error_model="numpy")
JIT_PARALLEL = dict(JIT, parallel=True)

# A layer with at most this many multiply-adds per row runs in hand-written loops;
# larger layers call BLAS (measured: hand loops win only below about 128).
HAND_LOOP_MAX_MACS = 128

# Rows per block when predicting or evaluating.
EVAL_BLOCK_ROWS = 1024


def cpu_count() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_blas = None


def _blas_libraries():
    """The BLAS libraries loaded in this process (looked up once: a scan takes ~2 ms)."""
    global _blas
    if _blas is None:
        _blas = ThreadpoolController().select(user_api="blas").lib_controllers
    return _blas


def set_blas_threads(n: int) -> int:
    """Set every loaded BLAS library to n threads; return the previous count of the first."""
    libs = _blas_libraries()
    old = libs[0].num_threads if libs else n
    for lib in libs:
        if lib.num_threads != n:
            lib.set_num_threads(n)
    return old


class threads:
    """Context manager: run with `n` Numba threads and `blas` BLAS threads, then restore."""

    def __init__(self, n: int, blas: int):
        self.n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
        self.blas = max(1, int(blas))

    def __enter__(self):
        self._old = numba.get_num_threads()
        numba.set_num_threads(self.n)
        self._old_blas = set_blas_threads(self.blas)
        return self

    def __exit__(self, *exc):
        set_blas_threads(self._old_blas)
        numba.set_num_threads(self._old)
        return False
