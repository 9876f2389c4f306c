"""The two ceilings every throughput is held against, measured in the same run.

GEMM peak: the best GFLOP/s of a big float32 square matrix product through NumPy.
BLAS floor: for one shape, only the training step's own matrix products, timed alone with
NumPy over one epoch's batches: per layer the forward Z = A·Wᵀ, the weight gradient
dW = dZᵀ·A and, except for the first layer, the input gradient dA = dZ·W. A trainer that
matched it would spend no time at all on activations, losses, biases or updates.

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


def _epoch_buffers(shape: Shape, rows: int, rng) -> list:
    """Per layer (A (B, I), W (O, I), Z (B, O), dZ (B, O), dW (O, I), dA (B, I))."""
    layers = []
    for fan_in, fan_out in zip(shape.sizes[:-1], shape.sizes[1:]):
        layers.append((
            rng.random((rows, fan_in), dtype=np.float32),
            rng.random((fan_out, fan_in), dtype=np.float32) - 0.5,
            np.empty((rows, fan_out), dtype=np.float32),
            rng.random((rows, fan_out), dtype=np.float32) - 0.5,
            np.empty((fan_out, fan_in), dtype=np.float32),
            np.empty((rows, fan_in), dtype=np.float32),
        ))
    return layers


def _step(layers: list) -> None:
    """One training step's GEMMs: forward for every layer, then backward last to first."""
    for a, w, z, _, _, _ in layers:
        np.matmul(a, w.T, out=z)                   # Z (B, O) = A (B, I) · Wᵀ (I, O)
    for k in range(len(layers) - 1, -1, -1):
        a, w, _, dz, dw, da = layers[k]
        np.matmul(dz.T, a, out=dw)                 # dW (O, I) = dZᵀ (O, B) · A (B, I)
        if k > 0:
            np.matmul(dz, w, out=da)               # dA (B, I) = dZ (B, O) · W (O, I)


def blas_floor(shape: Shape, threads: int, min_seconds: float = 0.3, tries: int = 5) -> dict:
    """Samples/s and GFLOP/s of one epoch's GEMM calls alone (best of `tries` timings).

    A timing covers as many whole epochs as fit in about `min_seconds` / `tries`, so the tiny
    shapes (one call takes a microsecond) are measured over many epochs.
    """
    rng = np.random.default_rng(0)
    sizes = batch_sizes(shape)
    buffers = {b: _epoch_buffers(shape, b, rng) for b in set(sizes)}
    plan = [buffers[b] for b in sizes]

    def epoch():
        for layers in plan:
            _step(layers)

    with _limit(threads):
        epoch()                                    # warm up
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
