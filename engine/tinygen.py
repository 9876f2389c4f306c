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
from .kernels.activations import IDENTITY, LEAKY_RELU, RELU, SIGMOID, SOFTMAX, TANH
from .kernels.columns import I_ACC, I_LOSS, M_ACT, M_FREEZE_B, M_FREEZE_W, M_IN, M_OUT
from .kernels.epochs import folds
from .kernels.losses import ARGMAX, BCE, HALF_SSE, MSE, SCE, THRESHOLD

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


# --- code generation ---------------------------------------------------------------------------

def _activation(code: int, z: str, l: int, is32: bool) -> str:
    """activate() of kernels/small.py, as an expression of the scalar z."""
    if code == SIGMOID:
        return f"HALF + HALF * tanh_f32(HALF * {z})" if is32 else f"ONE / (ONE + np.exp(-{z}))"
    if code == TANH:
        return f"tanh_f32({z})" if is32 else f"np.tanh({z})"
    if code == RELU:
        return f"{z} if {z} > ZERO else ZERO"
    if code == LEAKY_RELU:
        return f"{z} if {z} > ZERO else {z} * SLOPE{l}"
    return z   # identity; softmax is applied to the row afterwards


def _derivative(code: int, a: str, l: int) -> str:
    """derivative() of kernels/small.py, parenthesised."""
    if code == SIGMOID:
        return f"({a} * (ONE - {a}))"
    if code == TANH:
        return f"(ONE - {a} * {a})"
    if code == RELU:
        return f"(ONE if {a} > ZERO else ZERO)"
    if code == LEAKY_RELU:
        return f"(ONE if {a} > ZERO else SLOPE{l})"
    return "ONE"


def _chain(first: str, terms) -> str:
    """first + t1 + t2 + ...: Python adds left to right, as the generic loops' `s += t` do."""
    return " + ".join([first, *terms])


def _row_lines(layers, loss, acc, is32) -> list:
    """One row r of a batch: forward, loss, deltas, and its terms added to the gradient sums.

    Written in single assignments (a sum is one expression, evaluated left to right as the
    generic loops' `s += ...` are): Numba's SSA pass and type inference take much longer over
    variables assigned again and again. Each sum across rows (total, hit, gw*, gb*) adds the
    rows in row order."""
    lines = []
    emit = lines.append
    last = len(layers) - 1
    n_in0 = layers[0][0]
    n_out = layers[last][1]
    out_act = layers[last][2]

    def inp(l: int, i: int) -> str:   # input i of layer l
        return f"x_{i}" if l == 0 else f"a{l - 1}_{i}"

    emit("src = perm[start + r]")   # the identity order unless shuffled (set at the start of the call)
    emit(f"xo = src * {n_in0}")
    emit(f"yo = src * {n_out}")
    for i in range(n_in0):
        emit(f"x_{i} = x[xo + {i}]")
    # Forward.
    for l, (n_i, n_o, act, _slope, _fw, _fb) in enumerate(layers):
        for o in range(n_o):
            z = f"z{l}_{o}"
            emit(f"{z} = {_chain(f'b{l}_{o}', [f'{inp(l, i)} * w{l}_{o}_{i}' for i in range(n_i)])}")
            if act == SOFTMAX:
                continue
            emit(f"a{l}_{o} = {_activation(act, z, l, is32)}")
        if act == SOFTMAX:
            peak = f"z{l}_0"
            for o in range(1, n_o):
                peak = f"max({peak}, z{l}_{o})"
            emit(f"pk{l} = {peak}")
            for o in range(n_o):
                emit(f"e{l}_{o} = np.exp(z{l}_{o} - pk{l})")
            emit(f"tot{l} = {_chain('ZERO', [f'e{l}_{o}' for o in range(n_o)])}")
            for o in range(n_o):
                emit(f"a{l}_{o} = e{l}_{o} / tot{l}")
    # Loss, and dL/dz of the output layer (small_step's order).
    t = [f"t_{o}" for o in range(n_out)]
    for o in range(n_out):
        emit(f"{t[o]} = y[yo + {o}]")
    A = [f"a{last}_{o}" for o in range(n_out)]
    D = [f"d{last}_{o}" for o in range(n_out)]
    if loss in (HALF_SSE, MSE):
        for o in range(n_out):
            emit(f"diff_{o} = {A[o]} - {t[o]}")
        emit(f"total = {_chain('total', [f'float(diff_{o}) * float(diff_{o})' for o in range(n_out)])}")
        for o in range(n_out):
            emit(f"g_{o} = diff_{o} * scale")
        if out_act == SOFTMAX:   # the softmax Jacobian times dL/da
            emit(f"dot = {_chain('ZERO', [f'g_{o} * {A[o]}' for o in range(n_out)])}")
            for o in range(n_out):
                emit(f"{D[o]} = {A[o]} * (g_{o} - dot)")
        else:
            for o in range(n_out):
                emit(f"{D[o]} = g_{o} * {_derivative(out_act, A[o], last)}")
    elif loss == BCE:
        for o in range(n_out):
            emit(f"p_{o} = min(max(float({A[o]}), EPS), 1.0 - EPS)")
            emit(f"total -= float({t[o]}) * np.log(p_{o}) + (1.0 - float({t[o]})) * np.log(1.0 - p_{o})")
            emit(f"{D[o]} = ({A[o]} - {t[o]}) * scale")
    else:  # softmax cross-entropy, fused
        for o in range(n_out):
            emit(f"if {t[o]} != 0:")
            emit(f"    total -= float({t[o]}) * np.log(max(float({A[o]}), EPS))")
        emit(f"ysum = {_chain('ZERO', t)}")
        for o in range(n_out):
            emit(f"{D[o]} = ({A[o]} * ysum - {t[o]}) * scale")
    # Correct predictions (losses.count_correct).
    if acc == ARGMAX:
        emit(f"best_a = {A[0]}")
        emit("arg_a = 0")
        emit(f"best_y = {t[0]}")
        emit("arg_y = 0")
        for o in range(1, n_out):
            emit(f"if {A[o]} > best_a:")
            emit(f"    best_a = {A[o]}")
            emit(f"    arg_a = {o}")
            emit(f"if {t[o]} > best_y:")
            emit(f"    best_y = {t[o]}")
            emit(f"    arg_y = {o}")
        emit("if arg_a == arg_y:")
        emit("    hit += 1")
    elif acc == THRESHOLD:
        emit(f"hit += {' + '.join(f'(({A[o]} > 0.5) == ({t[o]} > 0.5))' for o in range(n_out))}")
    # Backward: deltas of every layer from the weights before the update, then the sums.
    for l in range(last, -1, -1):
        n_i, n_o, _act, _slope, frz_w, frz_b = layers[l]
        if l > 0:
            below = layers[l - 1][2]
            for i in range(n_i):
                s = _chain("ZERO", [f"d{l}_{o} * w{l}_{o}_{i}" for o in range(n_o)])
                emit(f"d{l - 1}_{i} = ({s}) * {_derivative(below, f'a{l - 1}_{i}', l - 1)}")
        if not frz_w:
            for o in range(n_o):
                for i in range(n_i):
                    emit(f"gw{l}_{o}_{i} += d{l}_{o} * {inp(l, i)}")
        if not frz_b:
            for o in range(n_o):
                emit(f"gb{l}_{o} += d{l}_{o}")
    return lines


def generate(key: tuple) -> str:
    """The module source of one architecture's epoch loop."""
    dtype, layers, loss, acc = key
    is32 = dtype == "float32"
    T = f"np.{dtype}"
    n_layers = len(layers)
    last = n_layers - 1
    n_out = layers[last][1]

    # Parameter names in theta order: W (O, I) row by row, then b (O,), layer by layer.
    params = []
    for l, (n_i, n_o, *_rest) in enumerate(layers):
        params += [f"w{l}_{o}_{i}" for o in range(n_o) for i in range(n_i)]
        params += [f"b{l}_{o}" for o in range(n_o)]
    trainable = []
    for l, (n_i, n_o, _act, _slope, frz_w, frz_b) in enumerate(layers):
        if not frz_w:
            trainable += [(f"w{l}_{o}_{i}", f"gw{l}_{o}_{i}") for o in range(n_o) for i in range(n_i)]
        if not frz_b:
            trainable += [(f"b{l}_{o}", f"gb{l}_{o}") for o in range(n_o)]

    out = []
    emit = out.append
    head = f'''"""Generated by fusetrain.engine.tinygen: do not edit (the file name is a digest of the key).

key: {key!r}
"""

import numpy as np
from numba import njit

from fusetrain.engine.kernels.activations import tanh_f32
from fusetrain.engine.kernels.blas import flush_denormals_on, restore_mxcsr
from fusetrain.engine.kernels.rng import shuffle

ONE = {T}(1.0)
HALF = {T}(0.5)
ZERO = {T}(0.0)
EPS = {1e-7 if is32 else 1e-15!r}
'''
    emit(head)
    for l, layer in enumerate(layers):
        emit(f"SLOPE{l} = {T}({layer[3]!r})")
    emit("")
    emit("")
    emit('@njit(cache=True, fastmath=False, nogil=True, error_model="numpy")')
    emit("def run_epochs(theta, grad, backup, opt, step, rng, x, y, perm, xb, yb, acts, deltas, a_off,")
    emit("               meta, slopes, hp, lrs, ints, losses, correct):")
    emit('    """run_epochs_small_fold of kernels/epochs.py for one architecture (see the key above)."""')
    ind = "    "
    emit(f"{ind}old_csr = flush_denormals_on()")
    emit(f"{ind}n_rows = perm.shape[0]")
    emit(f"{ind}batch = ints[3]")
    emit(f"{ind}gather = ints[4] != 0 and batch < n_rows")
    emit(f"{ind}n_batches = (n_rows + batch - 1) // batch")
    emit(f"{ind}decay = hp[6]")
    emit(f"{ind}if not gather:   # rows in order: perm is the identity (run_epochs leaves it so too)")
    emit(f"{ind}    for i in range(n_rows):")
    emit(f"{ind}        perm[i] = i")
    for k, p in enumerate(params):
        emit(f"{ind}{p} = theta[{k}]")
    emit(f"{ind}for e in range(lrs.shape[0]):")
    ind2 = ind * 2
    for k, p in enumerate(params):
        emit(f"{ind2}backup[{k}] = {p}")
    emit(f"{ind2}lr = lrs[e]")
    emit(f"{ind2}lr_ = {T}(lr)")
    emit(f"{ind2}keep = {T}(1.0 - lr * decay)")
    emit(f"{ind2}if gather:")
    emit(f"{ind2}    for i in range(n_rows):")
    emit(f"{ind2}        perm[i] = i")
    emit(f"{ind2}    shuffle(perm, rng)")
    emit(f"{ind2}etotal = 0.0")
    emit(f"{ind2}hits = 0")
    emit(f"{ind2}for start in range(0, n_rows, batch):")
    ind3 = ind * 3
    emit(f"{ind3}rows = min(batch, n_rows - start)")
    if loss == HALF_SSE or loss == SCE:
        emit(f"{ind3}scale = {T}(1.0 / rows)")
    elif loss == MSE:
        emit(f"{ind3}scale = {T}(2.0 / (rows * {n_out}))")
    else:
        emit(f"{ind3}scale = {T}(1.0 / (rows * {n_out}))")
    for _p, g in trainable:
        emit(f"{ind3}{g} = ZERO")
    emit(f"{ind3}total = 0.0")
    emit(f"{ind3}hit = 0")
    i4 = ind * 4
    emit(f"{ind3}for r in range(rows):")
    out.extend(i4 + line for line in _row_lines(layers, loss, acc, is32))
    # The batch's loss and the update (small_step_fold's order: last layer first).
    if loss == HALF_SSE:
        emit(f"{ind3}loss = 0.5 * total / rows")
    elif loss in (MSE, BCE):
        emit(f"{ind3}loss = total / (rows * {n_out})")
    else:
        emit(f"{ind3}loss = total / rows")
    for p, g in trainable:
        if p.startswith("w"):
            emit(f"{ind3}{p} = keep * {p} - lr_ * {g}")
        else:
            emit(f"{ind3}{p} = {p} - lr_ * {g}")
    emit(f"{ind3}etotal += loss")
    emit(f"{ind3}hits += hit")
    emit(f"{ind2}losses[e] = etotal / n_batches")
    emit(f"{ind2}correct[e] = hits")
    # Non-finite check: w - w is 0 for a finite w, NaN otherwise.
    emit(f"{ind2}chk = ZERO")
    for p in params:
        emit(f"{ind2}chk += {p} - {p}")
    emit(f"{ind2}if not np.isfinite(losses[e]) or not np.isfinite(chk):")
    for k in range(len(params)):
        emit(f"{ind2}    theta[{k}] = backup[{k}]")
    emit(f"{ind2}    restore_mxcsr(old_csr)")
    emit(f"{ind2}    return e, True")
    for k, p in enumerate(params):
        emit(f"{ind}theta[{k}] = {p}")
    emit(f"{ind}restore_mxcsr(old_csr)")
    emit(f"{ind}return lrs.shape[0], False")
    emit("")
    return "\n".join(out)
