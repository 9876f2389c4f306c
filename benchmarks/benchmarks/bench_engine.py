"""Engine training speed: the five shapes x dtype x threads, as time, samples/s and peak memory.

Every suite compiles (or loads from Numba's cache) in `setup`, never in the timed body:
compilation has a suite of its own (bench_compile.py). One sample is one `engine.train`
call, plain SGD, fixed-seed synthetic data (XOR for tiny), with the issue's epochs and
rows except for large (1 epoch of 30,000 rows instead of 2 of 60,000) and wide (1 epoch of
10,000 rows instead of 20,000), so that one sample stays at a few seconds at most on a
2-core machine (common.ASV_TRIM).
"""

from __future__ import annotations

import time

from . import common
from .common import DTYPES, SHAPE_NAMES, THREADS


class TrainShapes:
    """`engine.train` on each shape, per dtype and thread count (`TrainConfig(threads=n)`)."""

    params = [SHAPE_NAMES, DTYPES, THREADS]
    param_names = ["shape", "dtype", "threads"]
    # At most 5 samples or 10 s per round (the large shapes take 1-4 s a sample).
    repeat = (1, 5, 10.0)
    warmup_time = 0.0      # setup already ran the kernels once (ensure_compiled)
    timeout = 300

    def setup(self, shape, dtype, threads):
        self.engine = common.engine_or_skip()
        common.ensure_compiled(dtype)
        self.shape = common.shape(shape)
        self.x, self.y = common.dataset(shape, dtype, self.shape.rows)
        self.specs = common.specs(self.engine, self.shape, dtype, threads)

    def time_train(self, shape, dtype, threads):
        """Wall time of one train() call: validation, allocation, every epoch, result."""
        self.engine.train(*self.specs, self.x, self.y)

    def track_samples_per_second(self, shape, dtype, threads):
        """Rows trained per second of the engine's own train_seconds (best of up to 3 calls).

        train_seconds covers the compiled epochs only, as in the comparison harness; calls
        stop once 2 s have been spent, so large and wide count one call.
        """
        best, spent = 0.0, 0.0
        for _ in range(3):
            t0 = time.perf_counter()
            result = self.engine.train(*self.specs, self.x, self.y)
            spent += time.perf_counter() - t0
            best = max(best, self.shape.rows * result.epochs_run / result.train_seconds)
            if spent > 2.0:
                break
        return float(round(best))

    track_samples_per_second.unit = "samples/s"


class TrainShapesMemory:
    """Peak resident memory of a process that trained each shape once (float32, 1 thread).

    asv's peakmem is the process's maximum RSS, so it includes Python, NumPy, Numba, the
    compiled kernels and the data: compare it across commits, not against the data size.
    """

    params = [SHAPE_NAMES]
    param_names = ["shape"]
    timeout = 300

    def setup(self, shape):
        self.engine = common.engine_or_skip()
        common.ensure_compiled("float32")
        self.shape = common.shape(shape)
        self.x, self.y = common.dataset(shape, "float32", self.shape.rows)
        self.specs = common.specs(self.engine, self.shape, "float32", 1)

    def peakmem_train(self, shape):
        self.engine.train(*self.specs, self.x, self.y)


class TrainMany:
    """A seed sweep: 100 small-shape models (7-5-3, 210 rows, batch 16) x 50 epochs at once.

    `engine.train_many` runs the models in parallel, one per thread; this is the path a
    batch of small jobs takes.
    """

    params = [THREADS]
    param_names = ["threads"]
    models = 100
    epochs = 50
    timeout = 300

    def setup(self, threads):
        self.engine = common.engine_or_skip()
        if not hasattr(self.engine, "train_many"):
            raise NotImplementedError("fusetrain.engine has no train_many at this commit")
        common.ensure_compiled("float32", many=True)
        s = common.shape("small")
        self.x, self.y = common.dataset("small", "float32", s.rows)
        model, optimizer, config = common.specs(self.engine, s, "float32", 1)
        config.epochs = 1 if common.smoke() else self.epochs
        self.args = (model, [optimizer], [config], self.x, self.y)
        models = 4 if common.smoke() else self.models
        self.kwargs = dict(seeds=list(range(models)), threads=threads)

    def time_train_many(self, threads):
        self.engine.train_many(*self.args, **self.kwargs)


class TrainSeedsReal:
    """The classic on real data: UCI wheat seeds 7-5-3 sigmoid, online SGD (batch 1), rate 0.3,
    500 epochs, all 210 rows (skipped when ../shared/datasets is absent)."""

    params = [DTYPES]
    param_names = ["dtype"]
    repeat = (1, 5, 10.0)
    warmup_time = 0.0
    timeout = 300

    def setup(self, dtype):
        self.engine = common.engine_or_skip()
        x, y = common.seeds_data()
        common.ensure_compiled(dtype)
        self.x, self.y = x.astype(dtype), y.astype(dtype)
        e = self.engine
        self.model = e.ModelSpec(7, [e.LayerSpec(5, "sigmoid"), e.LayerSpec(3, "sigmoid")],
                                 loss="half_sse", dtype=dtype)
        self.optimizer = e.OptimizerSpec("sgd", learning_rate=0.3)
        self.config = e.TrainConfig(epochs=1 if common.smoke() else 500, batch_size=1, seed=1)

    def time_train_seeds(self, dtype):
        self.engine.train(self.model, self.optimizer, self.config, self.x, self.y)
