"""The two ceilings every throughput is held against, measured in the same run.

GEMM peak: the best GFLOP/s of a big float32 square matrix product through NumPy.
BLAS floor: for one shape, only the training step's own matrix products, timed alone over
one epoch's batches: per layer the forward Z = A·Wᵀ, the weight gradient dW = dZᵀ·A and,
except for the first layer, the input gradient dA = dZ·W. They run as the engine runs them:
the engine's own `gemm`, each product cut into the same fixed slabs of single-threaded BLAS
calls spread over the threads (kernels/blas.py), so the floor pays what that decomposition
costs. A trainer that matched it would spend no time at all on activations, losses, biases
or updates.

Legend: B = batch rows, I = inputs of a layer, O = units of a layer.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from compare_shapes import Shape, batch_sizes


_SHIPPERS = (("numpy.libs", "numpy"), ("/numpy/", "numpy"), ("scipy.libs", "scipy"), ("/scipy/", "scipy"),
             ("/torch/", "torch"), ("jaxlib", "jaxlib"), ("scikit_learn", "sklearn"), ("/sklearn/", "sklearn"))


def blas_info() -> list[dict]:
    """Every BLAS/OpenMP library loaded in this process, as threadpoolctl sees it."""
    try:
        import threadpoolctl
    except ImportError:
        return [{"error": "threadpoolctl not installed"}]
    keys = ("user_api", "internal_api", "prefix", "version", "architecture", "num_threads",
            "threading_layer")
    out = []
    for info in threadpoolctl.threadpool_info():
        row = {k: info.get(k) for k in keys}
        path = str(info.get("filepath", ""))
        # Which package shipped it (no machine paths in the figures).
        row["shipped_by"] = next((name for key, name in _SHIPPERS if key in path), Path(path).name)
        out.append(row)
    return out


def _limit(threads: int):
    import threadpoolctl
    return threadpoolctl.threadpool_limits(limits=threads, user_api="blas")


def gemm_peak(threads: int, n: int = 2048, tries: int = 5) -> dict:
    """Best GFLOP/s of an (n, n) · (n, n) float32 product over `tries` runs."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    with _limit(threads):
        np.matmul(a, b, out=c)                     # warm up the BLAS threads
        best = min(_timed(lambda: np.matmul(a, b, out=c)) for _ in range(tries))
    return {"n": n, "seconds": best, "gflops": 2.0 * n**3 / best / 1e9}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _epoch_buffers(shape: Shape, rows: int, rng) -> dict:
    """Flat float32 buffers for `rows`-row batches: per layer A (B, I), W (O, I), Z and dZ (B, O),
    dW (O, I) and dA (B, I), each layer's block at the offsets of its kind."""
    ins, outs = np.array(shape.sizes[:-1], np.int64), np.array(shape.sizes[1:], np.int64)
    offsets = lambda sizes: np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    buf = {"ins": ins, "outs": outs, "a_off": offsets(rows * ins), "w_off": offsets(ins * outs),
           "z_off": offsets(rows * outs)}
    buf["a"] = rng.random(int((rows * ins).sum()), dtype=np.float32)
    buf["w"] = rng.random(int((ins * outs).sum()), dtype=np.float32) - 0.5
    buf["z"] = np.empty(int((rows * outs).sum()), dtype=np.float32)
    buf["dz"] = rng.random(buf["z"].size, dtype=np.float32) - 0.5
    buf["dw"] = np.empty_like(buf["w"])
    buf["da"] = np.empty_like(buf["a"])
    return buf


def _epoch_kernel():
    """The compiled epoch of GEMM calls (built on first use: the limits worker imports the engine)."""
    from numba import njit

    from fusetrain.engine.kernels.blas import gemm, gemm_scratch

    @njit(nogil=True)
    def epoch(batches, ins, outs, a, a_off, w, w_off, z, dz, z_off, dw, da, iscr, fscr):
        for rows in batches:
            for l in range(ins.shape[0]):        # Z (B, O) = A (B, I) · Wᵀ (I, O)
                gemm(False, True, rows, outs[l], ins[l], 1.0, a, a_off[l], ins[l], w, w_off[l], ins[l],
                     0.0, z, z_off[l], outs[l], iscr, fscr, True)
            for l in range(ins.shape[0] - 1, -1, -1):
                # dW (O, I) = dZᵀ (O, B) · A (B, I)
                gemm(True, False, outs[l], ins[l], rows, 1.0, dz, z_off[l], outs[l], a, a_off[l], ins[l],
                     0.0, dw, w_off[l], ins[l], iscr, fscr, True)
                if l > 0:                            # dA (B, I) = dZ (B, O) · W (O, I)
                    gemm(False, False, rows, ins[l], outs[l], 1.0, dz, z_off[l], outs[l], w, w_off[l],
                         ins[l], 0.0, da, a_off[l], ins[l], iscr, fscr, True)

    return epoch, gemm_scratch


def blas_floor(shape: Shape, threads: int, min_seconds: float = 0.3, tries: int = 5) -> dict:
    """Samples/s and GFLOP/s of one epoch's GEMM calls alone (best of `tries` timings).

    A timing covers as many whole epochs as fit in about `min_seconds` / `tries`, so the tiny
    shapes (one call takes a microsecond) are measured over many epochs.
    """
    from fusetrain.engine import config as cfg

    kernel, gemm_scratch = _epoch_kernel()
    rng = np.random.default_rng(0)
    sizes = batch_sizes(shape)
    # One set of buffers at the full batch serves the short last batch too (its offsets differ
    # only in the unused tail), as in the engine.
    buf = _epoch_buffers(shape, max(sizes), rng)
    batches = np.array(sizes, np.int64)
    iscr, fscr = gemm_scratch(np.float32)

    def epoch():
        kernel(batches, buf["ins"], buf["outs"], buf["a"], buf["a_off"], buf["w"], buf["w_off"], buf["z"],
               buf["dz"], buf["z_off"], buf["dw"], buf["da"], iscr, fscr)

    with cfg.threads(threads):
        epoch()                                    # compile, warm up
        once = _timed(epoch)
        reps = max(1, int(min_seconds / tries / max(once, 1e-9)))

        def timed_reps():
            t0 = time.perf_counter()
            for _ in range(reps):
                epoch()
            return (time.perf_counter() - t0) / reps

        best = min(timed_reps() for _ in range(tries))
    samples_per_s = shape.rows / best
    return {"epoch_seconds": best, "samples_per_s": samples_per_s,
            "gflops": samples_per_s * shape.flops_per_sample / 1e9}


def measure(shapes: list[Shape], threads: int) -> dict:
    """The limits worker: BLAS libraries, GEMM peak and each shape's BLAS floor."""
    import scipy.linalg  # noqa: F401  (loads SciPy's OpenBLAS, whose ?gemm the engine calls through cython_blas)
    with _limit(threads):
        blas = blas_info()                         # the thread counts the measurements ran with
    return {
        "blas": blas,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
        "gemm_peak": gemm_peak(threads),
        "floor": {s.name: blas_floor(s, threads) for s in shapes},
    }
