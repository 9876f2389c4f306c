"""Tiny networks' epoch loop generated per architecture: the step unrolled into scalars.

For a 2-2-1 or 7-5-3 network the generic tiny step (kernels/small.py) spends its time on loop
control and on loads and stores of the flat buffers, not on arithmetic. Here the whole epoch
loop is written out as Python source for one architecture (layer sizes, activations and leaky
slopes, frozen flags, loss, accuracy rule, dtype; the update rule is plain SGD without clipping,
weight decay at run time), every weight a local variable: loaded from theta once per call, kept
in registers across the epochs, stored back at the end. Rows of a batch are a loop; everything
inside one row is unrolled.

It computes exactly what run_epochs_small_fold (kernels/epochs.py with small_step_fold) computes,
bit for bit: the same operations in the same order, the same float32 tanh/sigmoid formulas, no
fastmath, so no FMA contraction. Gradients are summed per weight over the rows in row order, as
the generic step's loops over rows do; all deltas of a step use the weights before its update.

The source goes to <cache_dir()>/tiny/tiny_<digest>.py, the digest taken over the architecture
key; the build directory (cache.py) is named by a digest of every engine source, this file's
included, so a file there never needs rewriting and is never stale. Numba caches the compiled
loop beside it (cache.py's locator). Anything else runs the generic loop: `select` says which.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cache import GENERATED, cache_dir
from .kernels.columns import I_ACC, I_LOSS, M_ACT, M_FREEZE_B, M_FREEZE_W, M_IN, M_OUT
from .kernels.epochs import folds
from .tinysrc import generate

# Which architectures get a generated loop: every layer at most MAX_UNITS units and MAX_UNITS
# inputs, and at most MAX_PARAMS parameters in all. Compile time grows faster than the
# parameter count (Numba's SSA pass visits every statement for every reassigned variable): on
# a loaded 2-core machine 2-2-1 (9 parameters) compiled in 3.0-3.6 s, 7-5-3 (58) in 7.2 s,
# 8-8-4 (108) in 20 s and 8-8-8 (144) in 33 s, for 3-5x the generic loop's samples/s. The
# seeds' 7-5-3 is in; Iris's 4-8-3 (67) is not. Quiet, from an empty cache: 2-2-1 0.94 s,
# 7-5-3 2.85 s (plus 1.9 s for the tiny networks' predict, which the generic family also
# compiles); loaded from the cache, 0.005 s each.
MAX_UNITS = 8
MAX_PARAMS = 64
# FUSETRAIN_TINY=0 turns the generated path off (the generic loop for every job).
ENABLED = os.environ.get("FUSETRAIN_TINY", "1") != "0"
# A new architecture's loop compiles on a thread while its job runs the generic loop, when that
# one is ready in the process (a warmed-up service worker); else the job compiles it first.
BACKGROUND = True

_local = threading.local()
_loaded: dict = {}      # key digest -> the module's run_epochs dispatcher
_compiled: set = set()  # key digests whose loop is compiled (or loaded) in this process
_pending: set = set()   # key digests compiling on a background thread
_compiling: dict = {}   # key digest -> the lock its compile holds in this process
_lock = threading.RLock()


@contextmanager
def generic_only():
    """Within the block, on this thread, every job runs the generic loop (warm-ups of it)."""
    old = getattr(_local, "off", False)
    _local.off = True
    try:
        yield
    finally:
        _local.off = old


@dataclass(frozen=True)
class Tiny:
    """One architecture's generated loop: `run` takes run_epochs' arguments (kernels/epochs.py)."""

    key: tuple
    digest: str
    path: Path
    run: object


def arch_key(layout, ints, dtype) -> tuple:
    """What the generated code fixes: dtype, per layer (inputs, units, activation, slope, W frozen,
    b frozen), loss and accuracy rule."""
    layers = tuple((int(r[M_IN]), int(r[M_OUT]), int(r[M_ACT]), float(s), int(r[M_FREEZE_W]), int(r[M_FREEZE_B]))
                   for r, s in zip(layout.meta, layout.slopes))
    return (np.dtype(dtype).name, layers, int(ints[I_LOSS]), int(ints[I_ACC]))


def eligible(layout, ints, hp) -> bool:
    """Whether a job's buffers can run a generated loop (see MAX_UNITS; plain SGD without clipping)."""
    if not ENABLED or getattr(_local, "off", False) or not layout.small or not folds(ints, hp):
        return False
    meta = layout.meta
    return (int(meta[:, M_IN].max()) <= MAX_UNITS and int(meta[:, M_OUT].max()) <= MAX_UNITS
            and layout.n_params <= MAX_PARAMS)


def select(layout, buf, dtype, x, y):
    """The generated loop to run this job with, or None: the generic loop.

    A new architecture's loop is compiled now, unless this process has the generic loop of the
    job's family ready and no compiled copy is on disk: then the job runs the generic loop and
    the generated one compiles on a thread for the jobs after it (BACKGROUND)."""
    if not eligible(layout, buf.ints, buf.hp):
        return None
    try:
        tiny = load(arch_key(layout, buf.ints, dtype))
    except OSError:   # the cache directory cannot be written: the generic loop needs no file
        return None
    if BACKGROUND and tiny.digest not in _compiled and not on_disk(tiny):
        from .kernels.epochs import loop_key
        from .warm import is_ready   # warm imports the trainer, which imports this module

        if is_ready(np.dtype(dtype).name, loop_key(buf.ints, buf.hp)):
            compile_later(tiny, buf, x, y)
            return None
    return tiny


def on_disk(tiny: Tiny) -> bool:
    """Whether Numba has an index for the generated loop beside its source (it loads in milliseconds)."""
    return any(tiny.path.parent.glob(f"{tiny.path.stem}.run_epochs-*.nbi"))


def compile_later(tiny: Tiny, buf, x, y) -> None:
    """Compile `tiny` on a daemon thread (once), with copies of the job's arrays for their types."""
    with _lock:
        if tiny.digest in _pending or tiny.digest in _compiled:
            return
        _pending.add(tiny.digest)

    class Copy:
        pass

    copy = Copy()
    for name in ("theta", "grad", "backup", "opt", "step", "rng", "perm", "xb", "yb", "acts", "deltas",
                 "a_off", "hp", "ints"):
        setattr(copy, name, getattr(buf, name).copy())
    x, y = x[:1].copy(), y[:1].copy()

    def work():
        try:
            ensure_compiled(tiny, copy, x, y)
        finally:
            with _lock:
                _pending.discard(tiny.digest)

    threading.Thread(target=work, name=f"tinygen-{tiny.digest}", daemon=True).start()


def wait_background(timeout: float = 600.0) -> None:
    """Wait until no generated loop is compiling on a thread (tests, and an orderly shutdown)."""
    deadline = time.perf_counter() + timeout
    while _pending and time.perf_counter() < deadline:
        time.sleep(0.01)


def key_digest(key: tuple) -> str:
    return hashlib.sha256(repr(key).encode()).hexdigest()[:16]


def source_path(key: tuple) -> Path:
    return cache_dir() / GENERATED / f"tiny_{key_digest(key)}.py"


def load(key: tuple) -> Tiny:
    """Write the source for `key` (unless the file is there already) and import it."""
    digest = key_digest(key)
    path = source_path(key)
    with _lock:
        run = _loaded.get(digest)
        if run is None:
            text = generate(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                same = path.read_text() == text
            except OSError:
                same = False
            if not same:  # atomic: a reader sees the whole file or none (its mtime is Numba's stamp)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
                tmp.write_text(text)
                os.replace(tmp, path)
            name = f"fusetrain_tiny_{digest}"
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module   # Numba's cached code looks its globals up by module name
            spec.loader.exec_module(module)
            run = _loaded[digest] = module.run_epochs
    return Tiny(key, digest, path, run)


def ensure_compiled(tiny: Tiny, buf, x, y) -> float:
    """Seconds spent compiling (or loading from the cache) `tiny` for these buffers' types: a
    call of no epochs. Processes take turns on a lock per key, so one compiles, the rest load."""
    if tiny.digest in _compiled:
        return 0.0
    from .warm import compile_lock   # warm imports the trainer, which imports this module

    t0 = time.perf_counter()
    with _lock:
        mine = _compiling.setdefault(tiny.digest, threading.Lock())
    with mine, compile_lock(f"tiny-{tiny.digest}"):
        if tiny.digest not in _compiled:
            none = np.zeros(0)
            tiny.run(buf.theta, buf.grad, buf.backup, buf.opt, buf.step, buf.rng, x, y, buf.perm, buf.xb,
                     buf.yb, buf.acts, buf.deltas, buf.a_off, np.zeros((1, 8), np.int64), none, buf.hp, none,
                     buf.ints, none, np.zeros(0, np.int64))
            _compiled.add(tiny.digest)
    return time.perf_counter() - t0
