"""The Python source of one tiny network's epoch loop (tinygen.py writes, caches and compiles it).

Every weight a scalar local, the step unrolled per row, and the same operations in the same order
as the generic tiny step (kernels/small.py with small_step_fold, kernels/epochs.py's loop), so
the weights come out bit-identical; tinygen.py's docstring says which networks get one.
"""

from __future__ import annotations

from .kernels.activations import LEAKY_RELU, RELU, SIGMOID, SOFTMAX, TANH
from .kernels.losses import ARGMAX, BCE, HALF_SSE, MSE, SCE, THRESHOLD

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
