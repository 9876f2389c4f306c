"""Compile (or load from Numba's cache) every kernel a dtype needs, once per process and once per cache.

Training reports these seconds as compile time, apart from training time. A service calls
`warmup()` when a worker starts so that its first job pays nothing. Processes that start
together take turns on a lock file in the cache directory: one compiles, the rest load.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .cache import cache_dir

_ready: set = set()   # kernels ready in this process
_done: set = set()    # ready, or being made ready by the thread that holds _lock
_waits: dict = {}   # seconds each key waited for another process's compile
_lock = threading.RLock()


# The epoch loops' (small, fold) variants (kernels/epochs.py), in the order a full warm-up makes
# them ready: the tiny networks with Adam (XOR, the classic examples), the BLAS path with plain
# SGD, then with another optimizer, then tiny networks with plain SGD. (PREDICT, small): the
# forward pass alone (predict, evaluate), which every training also runs at its end.
PATHS = ((True, False), (False, True), (False, False), (True, True))
PREDICT = "predict"
FAMILY_NAMES = {(True, False): "tiny networks, Adam and the other optimizers",
                (False, True): "BLAS networks, plain SGD",
                (False, False): "BLAS networks, Adam and the other optimizers",
                (True, True): "tiny networks, plain SGD"}


def path_name(path) -> str:
    first, second = path
    if first == PREDICT:
        return f"predict-{'small' if second else 'blas'}"
    return f"{'small' if first else 'blas'}-{'fold' if second else 'update'}"


def _tiny_run(dtype: str, path) -> None:
    """Run the kernels of one path once on a few rows, so that they are compiled or loaded."""
    # Imported here: trainer imports this module.
    from .spec import LayerSpec, ModelSpec, OptimizerSpec, TrainConfig
    from .tinygen import generic_only
    from .trainer import predict, train

    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype)
    y = np.array([[0], [1], [1], [0]], dtype=dtype)
    first, second = path
    small = second if first == PREDICT else first
    width = 2 if small else 16      # 16 x 16 is over HAND_LOOP_MAX_MACS: the BLAS path
    x = np.tile(x, (1, width // 2))
    model = ModelSpec(inputs=width, layers=[LayerSpec(width, "tanh"), LayerSpec(1, "sigmoid")], dtype=dtype)
    if first == PREDICT:
        weights = [(np.zeros((width, width), dtype), np.zeros(width, dtype)), (np.zeros((1, width), dtype), np.zeros(1, dtype))]
        predict(model, weights, x)
        return
    # Shuffled batches of 2, and the final evaluation (predict_rows) that every training runs;
    # the generic loop of the family even where a job of this shape would run a generated one.
    with generic_only():
        train(model, OptimizerSpec(kind="sgd" if second else "adam"), TrainConfig(epochs=1, batch_size=2), x, y)


def is_ready(dtype: str, path) -> bool:
    """Whether the kernels of `path` (as ensure_compiled takes it) are ready in this process."""
    return (dtype, path) in _ready


def ensure_compiled(dtype: str, path=None, many: bool = False) -> float:
    """Seconds spent making the kernels of `path` for `dtype` ready now; 0 when they already were.

    path: an epoch loop's (small, fold) key (kernels/epochs.py loop_key), (PREDICT, small) for
    the forward pass alone, or None for every path. A job compiles only its own path. A thread that finds another thread compiling
    them (a worker's background warm-up) waits, and the wait counts. Batches of models (`many`)
    run the same kernels as single models.
    """
    if path is None:
        return sum(ensure_compiled(dtype, p) for p in (*PATHS, (PREDICT, True), (PREDICT, False)))
    key = (dtype, path)
    if key in _ready:
        return 0.0
    t0 = time.perf_counter()
    with _lock:
        if key in _done:  # ready now, or this very thread's tiny run asking again
            return time.perf_counter() - t0
        _done.add(key)
        try:
            # One process compiles; the others wait here, then load what it wrote.
            with compile_lock(f"{dtype}-{path_name(path)}") as waited:
                _waits[key] = waited
                _tiny_run(dtype, path)
        except BaseException:
            _done.discard(key)
            raise
        _ready.add(key)
        return time.perf_counter() - t0


@contextmanager
def compile_lock(name: str):
    """Hold an exclusive lock on cache_dir()/compile-<name>.lock across processes; yields the seconds waited.

    Workers of a server, Ray tasks and command lines that start together with an empty cache
    would each compile the same kernels at once (on 2 cores, each twice as slowly); with the
    lock the first compiles and writes the cache, and the others then load it.
    Where the cache directory cannot be written, each process compiles alone.
    """
    try:
        import fcntl
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / f"compile-{name}.lock", "a+")
    except (ImportError, OSError):
        yield 0.0
        return
    with handle:
        t0 = time.perf_counter()
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield time.perf_counter() - t0
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _misses() -> int:
    """Epoch loops compiled in this process so far (Numba's cache misses)."""
    from .kernels.epochs import loops_compiled

    return loops_compiled()


def _shown(path) -> str:
    """A path as a person would write it: the home directory as ~."""
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home):] if home != "/" and text.startswith(home + "/") else text


def warmup(dtypes=("float32", "float64"), many: bool = True,
           progress: Optional[Callable[[str], None]] = None, paths=None) -> float:
    """Make every kernel ready for `dtypes` (or only those of `paths`, keys as ensure_compiled
    takes them); return the seconds it took.

    progress, when given, receives a line before and after each dtype's kernels: where the
    cache is, and how long it took (compiled, or loaded from the cache). `many` is kept for
    callers of older versions: batches of models need nothing more.
    """
    total = 0.0
    for dtype in dtypes:
        what = f"{dtype} kernels" + (f" ({'; '.join(FAMILY_NAMES.get(p, path_name(p)) for p in paths)})"
                                     if paths is not None else "")
        if progress is not None:
            progress(f"{what}: loading from {_shown(cache_dir())}, or compiling (tens of seconds on two cores)")
        before = _misses()
        seconds = (ensure_compiled(dtype) if paths is None
                   else sum(ensure_compiled(dtype, path) for path in paths))
        total += seconds
        if progress is not None:
            waited = sum(v for (d, _), v in _waits.items() if d == dtype)
            how = ("compiled" if _misses() > before else "loaded from the cache"
                   + (f" after {waited:.1f} s waiting for another process to compile them" if waited >= 1.0 else ""))
            progress(f"{what} ready in {seconds:.1f} s ({how})")
    return total
