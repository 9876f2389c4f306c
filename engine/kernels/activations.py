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

# float32 tanh as a rational function, x P(x^2) / Q(x^2) on |x| <= 7.9053111 (beyond it
# tanh rounds to +-1): branch-free, so loops of it vectorize, where np.tanh and np.exp
# compile to one scalar libm call per element (LLVM here has no vector math library).
# These are the coefficients XLA and Eigen use for float32; max error about 3 ulp.
_TANH_CLAMP = np.float32(7.90531110763549805)
_A1, _A3, _A5 = np.float32(4.89352455891786e-03), np.float32(6.37261928875436e-04), np.float32(1.48572235717979e-05)
_A7, _A9 = np.float32(5.12229709037114e-08), np.float32(-8.60467152213735e-11)
_A11, _A13 = np.float32(2.00018790482477e-13), np.float32(-2.76076847742355e-16)
_B0, _B2 = np.float32(4.89352518554385e-03), np.float32(2.26843463243900e-03)
_B4, _B6 = np.float32(1.18534705686654e-04), np.float32(1.19825839466702e-06)


@njit(**JIT)
def tanh_f32(x):
    """tanh of a float32, vectorizable; exact enough that float32 cannot tell (see above)."""
    x = max(min(x, _TANH_CLAMP), -_TANH_CLAMP)
    x2 = x * x
    p = x2 * _A13 + _A11
    p = x2 * p + _A9
    p = x2 * p + _A7
    p = x2 * p + _A5
    p = x2 * p + _A3
    p = x2 * p + _A1
    q = x2 * _B6 + _B4
    q = x2 * q + _B2
    q = x2 * q + _B0
    return x * p / q


@njit(**JIT)
def activation_forward(z, off, rows, units, code, slope):
    """z[off : off + R*U] (R, U): pre-activations in, activations out."""
    n = rows * units
    v = z[off:off + n]  # a view indexed from 0: no negative-index wraparound, so loops vectorize
    one = typed(z, 1.0)
    zero = typed(z, 0.0)
    s = typed(z, slope)
    half = typed(z, 0.5)
    # Selects, not branches: a sign that flips at random costs a misprediction per element.
    if code == SIGMOID and z.itemsize == 4:
        for i in range(n):  # sigma(x) = (1 + tanh(x / 2)) / 2
            v[i] = half + half * tanh_f32(half * v[i])
    elif code == SIGMOID:
        for i in range(n):
            v[i] = one / (one + np.exp(-v[i]))
    elif code == TANH and z.itemsize == 4:
        for i in range(n):
            v[i] = tanh_f32(v[i])
    elif code == TANH:
        for i in range(n):
            v[i] = np.tanh(v[i])
    elif code == RELU:
        for i in range(n):
            x = v[i]
            v[i] = x if x > zero else zero
    elif code == LEAKY_RELU:
        for i in range(n):
            x = v[i]
            v[i] = x if x > zero else x * s
    elif code == SOFTMAX:
        for r in range(rows):
            row = v[r * units:(r + 1) * units]
            peak = row[0]
            for j in range(1, units):
                peak = max(peak, row[j])
            total = zero
            for j in range(units):
                e = np.exp(row[j] - peak)
                row[j] = e
                total += e
            inv = one / total
            for j in range(units):
                row[j] = row[j] * inv


@njit(**JIT)
def activation_backward(d, d_off, a, a_off, rows, units, code, slope):
    """d[d_off:] (R, U): dL/da in, dL/dz out, given the activations a[a_off:] (R, U)."""
    n = rows * units
    g = d[d_off:d_off + n]
    y = a[a_off:a_off + n]
    one = typed(d, 1.0)
    zero = typed(d, 0.0)
    s = typed(d, slope)
    if code == SIGMOID:
        for i in range(n):
            g[i] = g[i] * y[i] * (one - y[i])
    elif code == TANH:
        for i in range(n):
            g[i] = g[i] * (one - y[i] * y[i])
    elif code == RELU:
        for i in range(n):
            g[i] = g[i] if y[i] > zero else zero
    elif code == LEAKY_RELU:
        for i in range(n):
            g[i] = g[i] if y[i] > zero else g[i] * s
    elif code == SOFTMAX:
        # dz_j = a_j (g_j - sum_k g_k a_k): the softmax Jacobian times g, row by row.
        for r in range(rows):
            gr = g[r * units:(r + 1) * units]
            ar = y[r * units:(r + 1) * units]
            dot = zero
            for j in range(units):
                dot += gr[j] * ar[j]
            for j in range(units):
                gr[j] = ar[j] * (gr[j] - dot)
