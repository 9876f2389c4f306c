"""Shared pieces of the asv suites: the five shapes, fixed-seed cached data, engine specs, skips.

The shapes themselves (architecture, rows, batch, epochs, rate) come from
`benchmarks/compare_shapes.py`, the comparison harness's single definition of them; this
module only says how asv runs them:

- `ASV_TRIM` trims the two BLAS-sized shapes so that one timed sample stays at a second or
  two on a 2-core machine (up to ~4 s in float64 on one thread): large trains 1 epoch (not 2)
  over 30,000 of its 60,000 rows, wide 1 epoch over 10,000 of its 20,000 rows. Architecture,
  batch size and rate are the issue's; samples/s hardly depends on the row count.
- Data is fixed-seed synthetic (XOR for tiny), made once per process and cached: asv re-runs
  `setup` before every sample, and making 60,000 x 784 floats each time would be wasted.
- The engine is imported lazily, inside `setup`, through `engine_or_skip()`: asv imports
  this package once to discover the benchmarks, and an old commit without the engine (or
  the service) must turn into skipped benchmarks, not a broken suite.
- `FUSETRAIN_BENCH_SMOKE=1` shrinks every shape to at most 256 rows and one epoch: the
  tooling test (`tests/benchmarks/`) runs each benchmark once that way, in seconds.

Legend: N = rows, I = inputs, O = outputs (units of the last layer).
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parents[1]       # benchmarks/
REPO = BENCH_DIR.parent
DATASETS = REPO.parent / "shared" / "datasets"          # ../shared/datasets from the repo root

if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from compare_shapes import SHAPES as _COMPARE_SHAPES  # noqa: E402

SHAPE_NAMES = list(_COMPARE_SHAPES)                    # tiny, small, medium, large, wide
DTYPES = ["float32", "float64"]
THREADS = [1, 2]
SEED = 1234

# (epochs, rows) per timed sample where they differ from the issue's: one epoch of large
# over all 60,000 rows took 2 s in float32 and 6 s in float64 on one thread of the
# 2-core reference machine, a whole epoch of wide 1.9 s and 3.5 s.
ASV_TRIM = {"large": (1, 30_000), "wide": (1, 10_000)}

SMOKE_ROWS = 256


def smoke() -> bool:
    """True when the tooling test asks for tiny runs (FUSETRAIN_BENCH_SMOKE=1)."""
    return os.environ.get("FUSETRAIN_BENCH_SMOKE", "") not in ("", "0")


@dataclass(frozen=True)
class BenchShape:
    """One shape as the asv suites run it."""

    name: str
    sizes: tuple           # (I, hidden..., O)
    hidden: str
    output: str
    loss: str
    rows: int              # N
    batch: int             # rows per batch; >= rows means full batch
    epochs: int
    learning_rate: float

    @property
    def full_batch(self) -> bool:
        return self.batch >= self.rows

    @property
    def samples(self) -> int:
        """Rows seen by one training run (rows x epochs)."""
        return self.rows * self.epochs

    def arch(self) -> str:
        return "-".join(str(s) for s in self.sizes)


def shape(name: str) -> BenchShape:
    """The shape `name` as asv runs it: ASV_TRIM applied (and the smoke test's scaling when asked)."""
    s = _COMPARE_SHAPES[name]
    epochs, rows = ASV_TRIM.get(name, (s.epochs, s.rows))
    batch = s.batch
    if smoke():
        full = batch >= rows
        rows = min(rows, SMOKE_ROWS)
        batch = rows if full else min(batch, rows)
        epochs = 1
    return BenchShape(name, tuple(s.sizes), s.hidden, s.output, s.loss, rows, batch, epochs,
                      s.learning_rate)


@functools.lru_cache(maxsize=None)
def dataset(name: str, dtype: str, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """x (N, I) and targets y (N, O) of `dtype`: XOR for tiny, fixed-seed synthetic otherwise.

    Synthetic labels are the argmax of a random linear "teacher" of x, so the data is
    learnable (which speed does not need, but a diverging run would time something else).
    One-hot targets for O > 1, 0/1 for O == 1.
    """
    s = _COMPARE_SHAPES[name]
    inputs, outputs = s.sizes[0], s.sizes[-1]
    if name == "tiny":
        x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
        labels = np.array([0, 1, 1, 0])
        reps = -(-rows // 4)
        x, labels = np.tile(x, (reps, 1))[:rows], np.tile(labels, reps)[:rows]
    else:
        # Made in float32 without temporaries of x's size: peakmem_ should see the data, not
        # the making of it (large: 60,000 x 784 is 188 MB in float32).
        rng = np.random.default_rng(SEED)
        x = rng.random((rows, inputs), dtype=np.float32)
        teacher = rng.standard_normal((inputs, max(outputs, 2))).astype(np.float32)
        scores = x @ teacher - 0.5 * teacher.sum(0)          # (x - 0.5) @ teacher
        labels = scores.argmax(1) if outputs > 1 else (scores[:, 0] > 0).astype(np.int64)
    if outputs == 1:
        y = labels.reshape(-1, 1)
    else:
        y = np.eye(outputs, dtype=dtype)[labels]
    return np.ascontiguousarray(x, dtype=dtype), np.ascontiguousarray(y, dtype=dtype)


def engine_or_skip():
    """`fusetrain.engine`, or NotImplementedError (asv: skipped) when this commit lacks it."""
    try:
        import fusetrain.engine as engine
    except ImportError as exc:
        raise NotImplementedError(f"fusetrain.engine is not importable here: {exc}") from None
    for name in ("train", "ModelSpec", "LayerSpec", "OptimizerSpec", "TrainConfig"):
        if not hasattr(engine, name):
            raise NotImplementedError(f"fusetrain.engine has no {name} at this commit")
    return engine


def ensure_compiled(dtype: str, many: bool = False) -> None:
    """Compile (or load from Numba's cache) the engine's kernels for `dtype`, outside timing."""
    try:
        from fusetrain.engine.warm import ensure_compiled as _ensure
    except ImportError:     # an engine from before warm.py: a short run does the same
        engine = engine_or_skip()
        x, y = dataset("tiny", dtype, 4)
        model = engine.ModelSpec(2, [engine.LayerSpec(2, "sigmoid"), engine.LayerSpec(1, "sigmoid")],
                                 dtype=dtype)
        engine.train(model, engine.OptimizerSpec(), engine.TrainConfig(epochs=1, batch_size=2), x, y)
        return
    if many:
        _ensure(dtype, many=True)
    else:
        _ensure(dtype)


def specs(engine, s: BenchShape, dtype: str, threads: int, seed: int = 0):
    """(ModelSpec, OptimizerSpec, TrainConfig) for shape `s`: plain SGD, as in the comparison."""
    layers = [engine.LayerSpec(units, s.output if k == len(s.sizes) - 2 else s.hidden)
              for k, units in enumerate(s.sizes[1:])]
    model = engine.ModelSpec(s.sizes[0], layers, loss=s.loss, seed=seed, dtype=dtype)
    optimizer = engine.OptimizerSpec("sgd", learning_rate=s.learning_rate)
    config = engine.TrainConfig(epochs=s.epochs, batch_size=0 if s.full_batch else s.batch,
                                shuffle=not s.full_batch, seed=1, threads=threads)
    return model, optimizer, config


def seeds_data() -> tuple[np.ndarray, np.ndarray]:
    """The UCI wheat seeds data (210 x 7, min-max normalised; one-hot 3 classes), float64.

    Raises NotImplementedError (asv: skipped) when ../shared/datasets is absent.
    """
    path = DATASETS / "seeds_dataset.csv"
    if not path.is_file():
        raise NotImplementedError(f"real data absent: {path} (see ../shared/datasets/README.md)")
    raw = np.loadtxt(path, delimiter=",")
    x = raw[:, :7]
    x = (x - x.min(0)) / (x.max(0) - x.min(0))
    y = np.eye(3)[raw[:, 7].astype(np.int64) - 1]
    if smoke():
        x, y = x[:SMOKE_ROWS], y[:SMOKE_ROWS]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)
