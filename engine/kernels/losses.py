"""Losses: value, gradient with respect to the output layer, and correct-prediction counts.

Legend: B = rows of the batch, O = outputs. a (B, O) are the output activations and y (B, O)
the targets, flat at element offsets. Codes come from registry.LOSSES; all losses are means
over the B rows, so gradients are those of the batch mean:
    half_sse               L = 1/B sum_r 1/2 sum_o (a - y)^2       dL/da = (a - y) / B
    mse                    L = 1/(B O) sum (a - y)^2                dL/da = 2 (a - y) / (B O)
    binary_cross_entropy   L = -1/(B O) sum y ln a + (1-y) ln(1-a)  dL/dz = (a - y) / (B O)  (sigmoid fused)
    softmax_cross_entropy  L = -1/B sum y ln a                      dL/dz = (a sum_o y - y) / B (softmax fused)
"""

import numpy as np
from numba import njit

from ..config import JIT
from .blas import typed

HALF_SSE, MSE, BCE, SCE = 0, 1, 2, 3
# Accuracy rules (trainer.py picks one from the targets).
NO_ACCURACY, ARGMAX, THRESHOLD = 0, 1, 2


@njit(**JIT)
def loss_forward_backward(a, a_off, y, y_off, d, d_off, rows, outs, code):
    """Return the batch's mean loss (float64) and write dL/da (or fused dL/dz) into d (B, O)."""
    n = rows * outs
    out = a[a_off:a_off + n]
    t = y[y_off:y_off + n]
    g = d[d_off:d_off + n]
    total = 0.0
    if code == HALF_SSE or code == MSE:
        scale = typed(d, 1.0 / rows) if code == HALF_SSE else typed(d, 2.0 / n)
        for i in range(n):
            diff = out[i] - t[i]
            total += float(diff) * float(diff)
            g[i] = diff * scale
        return 0.5 * total / rows if code == HALF_SSE else total / n
    eps = 1e-7 if a.itemsize == 4 else 1e-15
    if code == BCE:
        scale = typed(d, 1.0 / n)
        for i in range(n):
            p = min(max(float(out[i]), eps), 1.0 - eps)
            ti = float(t[i])
            total -= ti * np.log(p) + (1.0 - ti) * np.log(1.0 - p)
            g[i] = (out[i] - t[i]) * scale
        return total / n
    # SCE
    scale = typed(d, 1.0 / rows)
    for r in range(rows):
        ar = out[r * outs:(r + 1) * outs]
        yr = t[r * outs:(r + 1) * outs]
        gr = g[r * outs:(r + 1) * outs]
        ysum = typed(d, 0.0)
        for j in range(outs):
            ysum += yr[j]
        for j in range(outs):
            if yr[j] != 0:
                total -= float(yr[j]) * np.log(max(float(ar[j]), eps))
            gr[j] = (ar[j] * ysum - yr[j]) * scale
    return total / rows


@njit(**JIT)
def count_correct(a, a_off, y, y_off, rows, outs, rule):
    """Correct predictions in the batch: argmax match per row, or per element a > 1/2 == y > 1/2."""
    correct = 0
    if rule == ARGMAX:
        for r in range(rows):
            ar = a_off + r * outs
            yr = y_off + r * outs
            best_a = 0
            best_y = 0
            for j in range(1, outs):
                if a[ar + j] > a[ar + best_a]:
                    best_a = j
                if y[yr + j] > y[yr + best_y]:
                    best_y = j
            if best_a == best_y:
                correct += 1
    elif rule == THRESHOLD:
        for i in range(rows * outs):
            if (a[a_off + i] > 0.5) == (y[y_off + i] > 0.5):
                correct += 1
    return correct


def loss_is_fused(loss_code: int) -> bool:
    """True when the loss writes dL/dz directly (the output activation's backward is skipped)."""
    return loss_code in (BCE, SCE)
