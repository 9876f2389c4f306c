"""The train step for networks whose every layer is tiny: one function, scalar loops, no views.

For a 2-2-1 or 7-5-3 network the arithmetic of a mini-batch takes less time than building
an array view or passing ~20 arrays to a kernel (each costs reference counting), so this
path indexes the flat buffers directly and calls only scalar functions, which LLVM inlines.
It computes what train_step (epochs.py) computes; layout.py picks it when every layer is
at most config.HAND_LOOP_MAX_MACS multiply-adds per row.

Legend as in epochs.py: R = rows of the batch, layer l maps I_l inputs to O_l units;
acts and deltas hold per-layer (R, O_l) blocks at a_off[l]; theta holds W (O, I) then b (O,).
"""

import numpy as np
from numba import njit

from ..config import JIT, variant
from .activations import LEAKY_RELU, RELU, SIGMOID, SOFTMAX, TANH, tanh_f32
from .blas import typed
from .columns import I_ACC, I_LOSS, I_OPT, M_ACT, M_B, M_FREEZE_B, M_FREEZE_W, M_IN, M_OUT, M_W
from .losses import BCE, HALF_SSE, MSE, count_correct
from .optimizers import HP_DECAY, optimizer_update
from .update import clip_gradients


@njit(**JIT)
def activate(z, code, slope, one, half, zero, is32):
    """One activation value; softmax is applied per row by the caller."""
    if code == SIGMOID:
        if is32:  # the same formula as activation_forward's vector loop
            return half + half * tanh_f32(half * z)
        return one / (one + np.exp(-z))
    if code == TANH:
        return tanh_f32(z) if is32 else np.tanh(z)
    if code == RELU:
        return z if z > zero else zero
    if code == LEAKY_RELU:
        return z if z > zero else z * slope
    return z


@njit(**JIT)
def derivative(a, code, slope, one, zero):
    """d activation / dz from the activation's output a (softmax is handled by the caller)."""
    if code == SIGMOID:
        return a * (one - a)
    if code == TANH:
        return one - a * a
    if code == RELU:
        return one if a > zero else zero
    if code == LEAKY_RELU:
        return one if a > zero else slope
    return one


@njit(**JIT)
def small_forward(x, x_off, rows, theta, acts, a_off, meta, slopes):
    """Every layer of a tiny network on x (R, I) at x_off; layer l lands at acts[a_off[l]:]."""
    one = typed(theta, 1.0)
    half = typed(theta, 0.5)
    zero = typed(theta, 0.0)
    is32 = theta.itemsize == 4
    for l in range(meta.shape[0]):
        n_in = meta[l, M_IN]
        n_out = meta[l, M_OUT]
        w = meta[l, M_W]
        b = meta[l, M_B]
        code = meta[l, M_ACT]
        slope = typed(theta, slopes[l])
        ao = a_off[l]
        prev = a_off[l - 1] if l > 0 else 0
        for r in range(rows):
            for o in range(n_out):
                s = theta[b + o]
                if l == 0:
                    for i in range(n_in):
                        s += x[x_off + r * n_in + i] * theta[w + o * n_in + i]
                else:
                    for i in range(n_in):
                        s += acts[prev + r * n_in + i] * theta[w + o * n_in + i]
                acts[ao + r * n_out + o] = activate(s, code, slope, one, half, zero, is32)
            if code == SOFTMAX:
                row = ao + r * n_out
                peak = acts[row]
                for o in range(1, n_out):
                    peak = max(peak, acts[row + o])
                total = zero
                for o in range(n_out):
                    e = np.exp(acts[row + o] - peak)
                    acts[row + o] = e
                    total += e
                for o in range(n_out):
                    acts[row + o] = acts[row + o] / total


def _make_small_step(fold: bool):
    """small_step for one update rule, fixed when it is compiled (as epochs._make_train_step)."""

    @variant("small_step_fold" if fold else "small_step_update")
    def small_step(x, x_off, y, y_off, rows, theta, grad, opt, step, acts, deltas, a_off, meta, slopes,
                   hp, lr, ints):
        """One mini-batch of a tiny network: forward, loss, backward, update -> (loss, correct)."""
        one = typed(theta, 1.0)
        zero = typed(theta, 0.0)
        eps = 1e-7 if theta.itemsize == 4 else 1e-15
        small_forward(x, x_off, rows, theta, acts, a_off, meta, slopes)
        last = meta.shape[0] - 1
        n_out = meta[last, M_OUT]
        out = a_off[last]
        code = ints[I_LOSS]
        out_act = meta[last, M_ACT]
        out_slope = typed(theta, slopes[last])
        # Loss, dL/dz of the output layer, and correct predictions.
        total = 0.0
        if code == HALF_SSE or code == MSE:
            scale = typed(theta, 1.0 / rows) if code == HALF_SSE else typed(theta, 2.0 / (rows * n_out))
        elif code == BCE:
            scale = typed(theta, 1.0 / (rows * n_out))
        else:
            scale = typed(theta, 1.0 / rows)
        for r in range(rows):
            row = out + r * n_out
            yr = y_off + r * n_out
            ysum = zero
            dot = zero
            for o in range(n_out):
                a = acts[row + o]
                t = y[yr + o]
                if code == HALF_SSE or code == MSE:
                    diff = a - t
                    total += float(diff) * float(diff)
                    g = diff * scale
                    if out_act == SOFTMAX:
                        deltas[row + o] = g
                        dot += g * a
                    else:
                        deltas[row + o] = g * derivative(a, out_act, out_slope, one, zero)
                elif code == BCE:
                    p = min(max(float(a), eps), 1.0 - eps)
                    total -= float(t) * np.log(p) + (1.0 - float(t)) * np.log(1.0 - p)
                    deltas[row + o] = (a - t) * scale
                else:
                    if t != 0:
                        total -= float(t) * np.log(max(float(a), eps))
                    ysum += t
            if code != HALF_SSE and code != MSE and code != BCE:  # softmax cross-entropy, fused
                for o in range(n_out):
                    deltas[row + o] = (acts[row + o] * ysum - y[yr + o]) * scale
            elif out_act == SOFTMAX:  # the softmax Jacobian times dL/da
                for o in range(n_out):
                    deltas[row + o] = acts[row + o] * (deltas[row + o] - dot)
        correct = count_correct(acts, out, y, y_off, rows, n_out, ints[I_ACC])
        if code == HALF_SSE:
            loss = 0.5 * total / rows
        elif code == MSE or code == BCE:
            loss = total / (rows * n_out)
        else:
            loss = total / rows

        lr_ = typed(theta, lr)
        keep = typed(theta, 1.0 - lr * hp[HP_DECAY])
        for l in range(last, -1, -1):
            n_in = meta[l, M_IN]
            n_o = meta[l, M_OUT]
            w = meta[l, M_W]
            b = meta[l, M_B]
            dl = a_off[l]
            prev = a_off[l - 1] if l > 0 else 0
            if l > 0:
                # Before W changes: dL/dz of the layer below.
                code_below = meta[l - 1, M_ACT]
                slope_below = typed(theta, slopes[l - 1])
                for r in range(rows):
                    for i in range(n_in):
                        s = zero
                        for o in range(n_o):
                            s += deltas[dl + r * n_o + o] * theta[w + o * n_in + i]
                        deltas[prev + r * n_in + i] = s * derivative(acts[prev + r * n_in + i], code_below,
                                                                     slope_below, one, zero)
            if meta[l, M_FREEZE_W] == 0:
                for o in range(n_o):
                    for i in range(n_in):
                        s = zero
                        if l == 0:
                            for r in range(rows):
                                s += deltas[dl + r * n_o + o] * x[x_off + r * n_in + i]
                        else:
                            for r in range(rows):
                                s += deltas[dl + r * n_o + o] * acts[prev + r * n_in + i]
                        k = w + o * n_in + i
                        if fold:
                            theta[k] = keep * theta[k] - lr_ * s
                        else:
                            grad[k] = s
            if meta[l, M_FREEZE_B] == 0:
                for o in range(n_o):
                    s = zero
                    for r in range(rows):
                        s += deltas[dl + r * n_o + o]
                    if fold:
                        theta[b + o] = theta[b + o] - lr_ * s
                    else:
                        grad[b + o] = s
        if not fold:
            apply_update(theta, grad, opt, step, meta, hp, lr, ints[I_OPT])
        return loss, correct
    return small_step


small_step_fold = _make_small_step(True)
small_step_update = _make_small_step(False)


@njit(**JIT)
def apply_update(theta, grad, opt, step, meta, hp, lr, kind):
    """Clip the global gradient norm if asked, then update every trainable range, on this thread."""
    step[0] += 1
    clip_gradients(grad, meta, hp)
    t = step[0]
    decay = hp[HP_DECAY]
    for l in range(meta.shape[0]):
        w = meta[l, M_W]
        b = meta[l, M_B]
        if meta[l, M_FREEZE_W] == 0:
            optimizer_update(theta, grad, opt, w, w + meta[l, M_IN] * meta[l, M_OUT], kind, lr, decay, hp, t)
        if meta[l, M_FREEZE_B] == 0:
            optimizer_update(theta, grad, opt, b, b + meta[l, M_OUT], kind, lr, 0.0, hp, t)
