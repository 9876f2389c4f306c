"""Activation forward/backward pairs, in place on flat row-major buffers.

Legend: R = rows of the block, U = units of the layer. Every buffer is 1-D; a block starts at
an element offset and holds R*U values, row by row. Codes come from registry.ACTIVATIONS.
The backward pass needs only the activation's output a, never its input z:
    sigmoid' = a (1 - a), tanh' = 1 - a^2, relu' = [a > 0], leaky' = 1 or slope (sign of a = sign of z).
"""

import numpy as np
from numba import njit

from ..config import JIT
from .blas import typed

IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, SOFTMAX = 0, 1, 2, 3, 4, 5


@njit(**JIT)
def activation_forward(z, off, rows, units, code, slope):
    """z[off : off + R*U] (R, U): pre-activations in, activations out."""
    n = rows * units
    one = typed(z, 1.0)
    zero = typed(z, 0.0)
    s = typed(z, slope)
    if code == SIGMOID:
        for i in range(off, off + n):
            z[i] = one / (one + np.exp(-z[i]))
    elif code == TANH:
        for i in range(off, off + n):
            z[i] = np.tanh(z[i])
    elif code == RELU:
        for i in range(off, off + n):
            if z[i] < zero:
                z[i] = zero
    elif code == LEAKY_RELU:
        for i in range(off, off + n):
            if z[i] < zero:
                z[i] = z[i] * s
    elif code == SOFTMAX:
        for r in range(rows):
            start = off + r * units
            peak = z[start]
            for j in range(start + 1, start + units):
                if z[j] > peak:
                    peak = z[j]
            total = zero
            for j in range(start, start + units):
                e = np.exp(z[j] - peak)
                z[j] = e
                total += e
            inv = one / total
            for j in range(start, start + units):
                z[j] = z[j] * inv


@njit(**JIT)
def activation_backward(d, d_off, a, a_off, rows, units, code, slope):
    """d[d_off:] (R, U): dL/da in, dL/dz out, given the activations a[a_off:] (R, U)."""
    n = rows * units
    one = typed(d, 1.0)
    zero = typed(d, 0.0)
    s = typed(d, slope)
    if code == SIGMOID:
        for i in range(n):
            y = a[a_off + i]
            d[d_off + i] = d[d_off + i] * y * (one - y)
    elif code == TANH:
        for i in range(n):
            y = a[a_off + i]
            d[d_off + i] = d[d_off + i] * (one - y * y)
    elif code == RELU:
        for i in range(n):
            if a[a_off + i] <= zero:
                d[d_off + i] = zero
    elif code == LEAKY_RELU:
        for i in range(n):
            if a[a_off + i] <= zero:
                d[d_off + i] = d[d_off + i] * s
    elif code == SOFTMAX:
        # dz_j = a_j (g_j - sum_k g_k a_k): the softmax Jacobian times g, row by row.
        for r in range(rows):
            dr = d_off + r * units
            ar = a_off + r * units
            dot = zero
            for j in range(units):
                dot += d[dr + j] * a[ar + j]
            for j in range(units):
                d[dr + j] = a[ar + j] * (d[dr + j] - dot)
