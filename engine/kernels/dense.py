"""Dense layer forward/backward pairs: hand loops for tiny layers, BLAS for the rest.

Legend: R = rows of the batch, I = inputs of the layer, O = outputs (units).
Parameters live in one flat vector theta: W (O, I) at w_off (row o = weights into unit o),
then b (O,) at b_off. Activations and deltas are flat (R, U) blocks at element offsets.
`iscr` (int32 (8,)) and `fscr` ((2,) of the dtype) are the caller's GEMM scratch buffers.
"""

from numba import njit

from ..config import JIT
from .blas import gemm, typed


@njit(**JIT)
def dense_forward(x, x_off, rows, n_in, theta, w_off, b_off, n_out, z, z_off, use_blas, iscr, fscr):
    """z (R, O) = x (R, I) . W^T (I, O) + b (O,)."""
    if use_blas:
        gemm(False, True, rows, n_out, n_in, 1.0, x, x_off, n_in, theta, w_off, n_in, 0.0,
             z, z_off, n_out, iscr, fscr)
        for r in range(rows):
            zr = z_off + r * n_out
            for o in range(n_out):
                z[zr + o] += theta[b_off + o]
    else:
        for r in range(rows):
            xr = x_off + r * n_in
            zr = z_off + r * n_out
            for o in range(n_out):
                s = theta[b_off + o]
                wo = w_off + o * n_in
                for i in range(n_in):
                    s += x[xr + i] * theta[wo + i]
                z[zr + o] = s


@njit(**JIT)
def dense_backward_input(dz, dz_off, rows, n_out, theta, w_off, n_in, dx, dx_off, use_blas, iscr, fscr):
    """dx (R, I) = dz (R, O) . W (O, I): the gradient passed to the layer below."""
    if use_blas:
        gemm(False, False, rows, n_in, n_out, 1.0, dz, dz_off, n_out, theta, w_off, n_in, 0.0,
             dx, dx_off, n_in, iscr, fscr)
    else:
        zero = typed(dx, 0.0)
        for r in range(rows):
            dxr = dx_off + r * n_in
            dzr = dz_off + r * n_out
            for i in range(n_in):
                dx[dxr + i] = zero
            for o in range(n_out):
                g = dz[dzr + o]
                wo = w_off + o * n_in
                for i in range(n_in):
                    dx[dxr + i] += g * theta[wo + i]


@njit(**JIT)
def dense_backward_weights(dz, dz_off, rows, n_out, x, x_off, n_in, alpha, beta, out, out_off,
                           use_blas, iscr, fscr):
    """out (O, I) = beta * out + alpha * dz^T (O, R) . x (R, I).

    With out = grad, alpha = 1, beta = 0 this is dL/dW; with out = theta, alpha = -lr and
    beta = 1 - lr * weight_decay it is the whole plain-SGD update folded into one GEMM.
    """
    if use_blas:
        gemm(True, False, n_out, n_in, rows, alpha, dz, dz_off, n_out, x, x_off, n_in, beta,
             out, out_off, n_in, iscr, fscr)
    else:
        a = typed(out, alpha)
        b = typed(out, beta)
        zero = typed(out, 0.0)
        for o in range(n_out):
            oo = out_off + o * n_in
            for i in range(n_in):
                s = zero
                for r in range(rows):
                    s += dz[dz_off + r * n_out + o] * x[x_off + r * n_in + i]
                out[oo + i] = b * out[oo + i] + a * s if b != zero else a * s


@njit(**JIT)
def dense_backward_bias(dz, dz_off, rows, n_out, alpha, beta, out, out_off):
    """out (O,) = beta * out + alpha * sum over rows of dz (R, O)."""
    a = typed(out, alpha)
    b = typed(out, beta)
    zero = typed(out, 0.0)
    for o in range(n_out):
        s = zero
        for r in range(rows):
            s += dz[dz_off + r * n_out + o]
        out[out_off + o] = b * out[out_off + o] + a * s if b != zero else a * s
