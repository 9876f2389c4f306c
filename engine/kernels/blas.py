"""Row-major GEMM on raw pointers through SciPy's BLAS, plus typed constants and FTZ/DAZ.

The kernels keep every buffer flat and address sub-matrices by offset, so no view or
reshape is built per mini-batch. `gemm` calls ?gemm from scipy.linalg.cython_blas through
a symbol registered with LLVM, so compiled code stays cacheable (a ctypes pointer would not).
"""

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic, overload

from ..config import JIT

llvm.add_symbol("fusetrain_sgemm", get_cython_function_address("scipy.linalg.cython_blas", "sgemm"))
llvm.add_symbol("fusetrain_dgemm", get_cython_function_address("scipy.linalg.cython_blas", "dgemm"))
# Fortran ABI: every argument is a pointer; pointers travel as intp addresses.
_sgemm = types.ExternalFunction("fusetrain_sgemm", types.void(*([types.intp] * 13)))
_dgemm = types.ExternalFunction("fusetrain_dgemm", types.void(*([types.intp] * 13)))

_N, _T = 78, 84  # ord("N"), ord("T")


def typed(arr, value):  # pragma: no cover - replaced by the overload inside compiled code
    """`value` cast to the dtype of `arr` (float32 * 2 would otherwise become float64)."""
    return arr.dtype.type(value)


@overload(typed, jit_options=JIT)
def _typed(arr, value):
    dt = arr.dtype

    def impl(arr, value):
        return dt(value)

    return impl


@njit(**JIT)
def gemm(ta, tb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc, scratch, coef):
    """Row-major C(m,n) = alpha * op(A) op(B) + beta * C on flat buffers at element offsets.

    a, b, c: 1-D arrays of one dtype; op(A) is (m, k), op(B) is (k, n); ta/tb transpose.
    scratch: int32 (8,) and coef: (2,) of c's dtype, the caller's buffers for the
    by-reference scalars (nothing is allocated per call).
    In column-major terms this is C^T = op(B)^T op(A)^T, so B goes first.
    """
    scratch[0] = n
    scratch[1] = m
    scratch[2] = k
    scratch[3] = ldb
    scratch[4] = lda
    scratch[5] = ldc
    scratch[6] = _T if tb else _N
    scratch[7] = _T if ta else _N
    coef[0] = alpha
    coef[1] = beta
    ip = scratch.ctypes.data
    fp = coef.ctypes.data
    size = c.itemsize
    pa = a.ctypes.data + a_off * size
    pb = b.ctypes.data + b_off * size
    pc = c.ctypes.data + c_off * size
    if size == 4:
        _sgemm(ip + 24, ip + 28, ip, ip + 4, ip + 8, fp, pb, ip + 12, pa, ip + 16, fp + 4, pc, ip + 20)
    else:
        _dgemm(ip + 24, ip + 28, ip, ip + 4, ip + 8, fp, pb, ip + 12, pa, ip + 16, fp + 8, pc, ip + 20)


def _mxcsr_fn(builder, name):
    fnty = ir.FunctionType(ir.VoidType(), [ir.PointerType(ir.IntType(8))])
    return cgutils.get_or_insert_function(builder.module, fnty, name)


@intrinsic
def _mxcsr_get(typingctx):
    """The MXCSR register (SSE control and status) of this thread."""
    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        builder.call(_mxcsr_fn(builder, "llvm.x86.sse.stmxcsr"), [builder.bitcast(slot, ir.IntType(8).as_pointer())])
        return builder.load(slot)

    return types.uint32(), codegen


@intrinsic
def _mxcsr_set(typingctx, bits):
    """Load `bits` (uint32) into this thread's MXCSR register."""
    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        builder.store(args[0], slot)
        builder.call(_mxcsr_fn(builder, "llvm.x86.sse.ldmxcsr"), [builder.bitcast(slot, ir.IntType(8).as_pointer())])
        return context.get_dummy_value()

    return types.none(types.uint32), codegen


_FTZ_DAZ = np.uint32(0x8040)


@njit(**JIT)
def flush_denormals_on():
    """Turn on flush-to-zero and denormals-are-zero for this thread; return the old MXCSR.

    Adam's moments decay into denormals, which cost ~60x per element without this.
    """
    old = _mxcsr_get()
    _mxcsr_set(old | _FTZ_DAZ)
    return old


@njit(**JIT)
def restore_mxcsr(old):
    _mxcsr_set(old)


if numba.config.DISABLE_JIT:
    # NUMBA_DISABLE_JIT=1 runs the kernels as plain Python (the test suite does, once):
    # the BLAS symbol and the MXCSR intrinsics exist only in compiled code.

    def gemm(ta, tb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc, scratch, coef):
        rows_a, rows_b = (k, m) if ta else (m, k), (n, k) if tb else (k, n)
        A = a[a_off:a_off + rows_a[0] * lda].reshape(rows_a[0], lda)[:, :rows_a[1]]
        B = b[b_off:b_off + rows_b[0] * ldb].reshape(rows_b[0], ldb)[:, :rows_b[1]]
        C = c[c_off:c_off + m * ldc].reshape(m, ldc)[:, :n]
        product = (A.T if ta else A) @ (B.T if tb else B)
        C[...] = alpha * product if beta == 0 else beta * C + alpha * product

    def flush_denormals_on():
        return np.uint32(0)

    def restore_mxcsr(old):
        return None
