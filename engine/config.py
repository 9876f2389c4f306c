"""The one place for Numba policy: cache, fastmath, threading layer, thread counts, kernel choices.

Every `@njit` in the engine is written `@njit(**JIT)` or `@njit(**JIT_PARALLEL)`.
Importing this module fixes the threading layer before any parallel kernel is compiled.
"""

from __future__ import annotations

import os

import numba
from threadpoolctl import ThreadpoolController

from . import cache

# Kernels are cached on disk under cache.cache_dir(): one directory per engine build, under
# $NUMBA_CACHE_DIR or the user's cache directory (cache.py). Installed before any kernel exists.
CACHE = True
cache.install()
# fastmath would let LLVM reorder sums: results would then depend on inlining and thread
# count, and "bit-identical whatever the thread count" would no longer hold.
FASTMATH = False

# Numba's threads run the fixed GEMM slabs of one model (kernels/blas.py); BLAS itself always
# runs single-threaded (train_many spreads its models over Python threads instead).
# OpenMP first: a slab launch costs about 1.5 µs there against 130 µs with "workqueue",
# whose threads sleep between calls (a step launches several GEMMs per mini-batch). Its
# workers spin briefly after a region and then sleep; the service keeps workers x threads within the cores, so they never spin
# beside another worker. Without OpenMP, TBB, then workqueue. Results never depend on it.
THREADING_LAYER = os.environ.get("FUSETRAIN_THREADING_LAYER", "default")
numba.config.THREADING_LAYER = THREADING_LAYER
numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]

JIT = dict(cache=CACHE, fastmath=FASTMATH, nogil=True, error_model="numpy")
JIT_PARALLEL = dict(JIT, parallel=True)


def variant(name: str):
    """@njit(**JIT) for one variant of a kernel made by a factory, with the variant's constants
    in the factory's closure (Numba prunes the branches they rule out, so each variant compiles
    only its own code). The function takes `name`, so each variant has a cache entry of its own."""
    def compile_(fn):
        fn.__name__ = fn.__qualname__ = name
        return numba.njit(**JIT)(fn)
    return compile_

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
    """Context manager: run with `n` Numba threads (None: keep the current count), BLAS at one.

    The engine's GEMMs are fixed slabs, each one single-threaded BLAS call, spread over the
    Numba threads (kernels/blas.py): so the result is the same whatever `n` is.
    """

    def __init__(self, n: int | None = None):
        self.n = None if n is None else max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))

    def __enter__(self):
        self._old = numba.get_num_threads()
        numba.set_num_threads(self.n or self._old)
        self._old_blas = set_blas_threads(1)
        return self

    def __exit__(self, *exc):
        set_blas_threads(self._old_blas)
        numba.set_num_threads(self._old)
        return False


def threading_layer() -> str:
    """The Numba threading layer in use ("omp", "tbb" or "workqueue"), started if need be."""
    from numba.np.ufunc.parallel import _launch_threads  # what Numba runs before a first parallel call

    _launch_threads()
    return numba.threading_layer()


def blas_kernel() -> dict:
    """The BLAS the engine calls (SciPy's): library, version and SIMD kernel (threadpoolctl).

    Bit-identity across thread counts holds on one kernel; another kernel (AVX2 against
    AVX-512) may round differently, so results carry this to explain a disagreement.
    """
    libs = _blas_libraries()
    scipy_libs = [lib for lib in libs if "scipy.libs" in lib.filepath or "/scipy/" in lib.filepath]
    for lib in scipy_libs or libs[:1]:
        info = lib.info()
        return {"library": str(info.get("internal_api", "")), "version": str(info.get("version") or ""),
                "architecture": str(info.get("architecture") or "")}
    return {}
