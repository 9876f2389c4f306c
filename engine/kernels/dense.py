"""Dense layer forward/backward pairs: hand loops for tiny layers, BLAS for the rest.

Legend: R = rows of the batch, I = inputs of the layer, O = outputs (units).
Parameters live in one flat vector theta: W (O, I) at w_off (row o = weights into unit o),
then b (O,) at b_off. Activations and deltas are flat (R, U) blocks at element offsets.
`iscr` (int32 (16, 8)) and `fscr` ((16, 2) of the dtype) are the caller's GEMM scratch buffers
(blas.gemm_scratch); `spread` lets a GEMM run its fixed slabs on the Numba threads.
"""

import numpy as np
from numba import njit

from ..config import JIT, variant
from .blas import gemm, typed

# The transpose flags as plain booleans: literal True/False would compile `gemm` (and its slab
# runner) once per combination, three times over.
_NO, _YES = np.bool_(False), np.bool_(True)


def _make_dense_forward(blas_ok: bool):
    """dense_forward, or (blas_ok False) its hand loops alone: the forward pass of tiny networks
    compiles without the GEMM chain, and computes exactly what dense_forward's loops do."""

    @variant("dense_forward" if blas_ok else "dense_forward_loops")
    def dense_forward(x, x_off, rows, n_in, theta, w_off, b_off, n_out, z, z_off, use_blas, iscr, fscr, spread):
        """z (R, O) = x (R, I) . W^T (I, O) + b (O,)."""
        b = theta[b_off:b_off + n_out]
        # Views indexed from 0: LLVM can drop Numba's negative-index checks and vectorize.
        zz = z[z_off:z_off + rows * n_out]
        if blas_ok and use_blas:
            gemm(_NO, _YES, rows, n_out, n_in, 1.0, x, x_off, n_in, theta, w_off, n_in, 0.0,
                 z, z_off, n_out, iscr, fscr, spread)
            for r in range(rows):
                zr = zz[r * n_out:(r + 1) * n_out]
                for o in range(n_out):
                    zr[o] += b[o]
        else:
            xx = x[x_off:x_off + rows * n_in]
            w = theta[w_off:w_off + n_out * n_in]
            for r in range(rows):
                for o in range(n_out):
                    s = b[o]
                    for i in range(n_in):
                        s += xx[r * n_in + i] * w[o * n_in + i]
                    zz[r * n_out + o] = s
    return dense_forward


dense_forward = _make_dense_forward(True)
dense_forward_loops = _make_dense_forward(False)


@njit(**JIT)
def dense_backward_input(dz, dz_off, rows, n_out, theta, w_off, n_in, dx, dx_off, use_blas, iscr, fscr, spread):
    """dx (R, I) = dz (R, O) . W (O, I): the gradient passed to the layer below."""
    if use_blas:
        gemm(_NO, _NO, rows, n_in, n_out, 1.0, dz, dz_off, n_out, theta, w_off, n_in, 0.0,
             dx, dx_off, n_in, iscr, fscr, spread)
    else:
        g = dz[dz_off:dz_off + rows * n_out]
        w = theta[w_off:w_off + n_out * n_in]
        out = dx[dx_off:dx_off + rows * n_in]
        zero = typed(dx, 0.0)
        for r in range(rows):
            for i in range(n_in):
                out[r * n_in + i] = zero
            for o in range(n_out):
                go = g[r * n_out + o]
                for i in range(n_in):
                    out[r * n_in + i] += go * w[o * n_in + i]


@njit(**JIT)
def dense_backward_weights(dz, dz_off, rows, n_out, x, x_off, n_in, alpha, beta, out, out_off,
                           use_blas, iscr, fscr, spread):
    """out (O, I) = beta * out + alpha * dz^T (O, R) . x (R, I).

    With out = grad, alpha = 1, beta = 0 this is dL/dW; with out = theta, alpha = -lr and
    beta = 1 - lr * weight_decay it is the whole plain-SGD update folded into one GEMM.
    """
    if use_blas:
        gemm(_YES, _NO, n_out, n_in, rows, alpha, dz, dz_off, n_out, x, x_off, n_in, beta,
             out, out_off, n_in, iscr, fscr, spread)
    else:
        g = dz[dz_off:dz_off + rows * n_out]
        xx = x[x_off:x_off + rows * n_in]
        w = out[out_off:out_off + n_out * n_in]
        a = typed(out, alpha)
        b = typed(out, beta)
        zero = typed(out, 0.0)
        for o in range(n_out):
            for i in range(n_in):
                s = zero
                for r in range(rows):
                    s += g[r * n_out + o] * xx[r * n_in + i]
                w[o * n_in + i] = b * w[o * n_in + i] + a * s if b != zero else a * s


@njit(**JIT)
def dense_backward_bias(dz, dz_off, rows, n_out, alpha, beta, out, out_off):
    """out (O,) = beta * out + alpha * sum over rows of dz (R, O)."""
    g = dz[dz_off:dz_off + rows * n_out]
    bias = out[out_off:out_off + n_out]
    a = typed(out, alpha)
    b = typed(out, beta)
    zero = typed(out, 0.0)
    if b == zero:
        for o in range(n_out):
            bias[o] = zero
    else:
        for o in range(n_out):
            bias[o] = b * bias[o]
    # Row by row, so the inner loop runs along memory (and vectorizes).
    for r in range(rows):
        gr = g[r * n_out:(r + 1) * n_out]
        for o in range(n_out):
            bias[o] += a * gr[o]
