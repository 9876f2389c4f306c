"""Row-major GEMM on raw pointers through SciPy's BLAS, plus typed constants and FTZ/DAZ.

The kernels keep every buffer flat and address sub-matrices by offset, so no view or
reshape is built per mini-batch. `gemm` calls ?gemm from scipy.linalg.cython_blas through
a symbol registered with LLVM, so compiled code stays cacheable (a ctypes pointer would not).
"""

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic, overload

from ..config import JIT, JIT_PARALLEL

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


# The fixed decomposition of every GEMM. It is part of the arithmetic: it depends on the
# shape alone, never on the thread count, and changing it may change results in the last bit.
# C (m, n) is cut into at most MAX_BLOCKS slabs of whole rows or whole columns, edges on
# multiples of BLOCK_ALIGN; each slab is one single-threaded ?gemm call over the full k, so
# every element is summed in the same order however many threads share the slabs.
# Measured on 2 cores (docs/ENGINE.md): each slab re-packs the operand it shares with the
# others; 2 slabs keep the wide shape at the speed of two-thread OpenBLAS, 4 cost it about 6%
# at two threads, 16 about 15%.
BLOCK_ALIGN = 16           # slab edges on multiples of 16 (the SIMD kernels' unroll)
BLOCK_MIN_WIDTH = 128      # rows or columns per slab, at least
BLOCK_MIN_MACS = 1 << 20   # multiply-adds per slab, at least (a call costs microseconds)
MAX_BLOCKS = 2             # slabs per GEMM, a power of two (the scratch buffers' rows)


@njit(**JIT)
def gemm_plan(m, n, k):
    """(blocks, split_rows): how C (m, n) = op(A) (m, k) op(B) (k, n) is cut, by shape alone.

    blocks is a power of two in [1, MAX_BLOCKS]. Rows are cut when k is the short side (the
    weight gradient: C's traffic dominates, and row slabs are contiguous) or m is the long one;
    otherwise columns (the forward and input-gradient products of a batch).
    """
    split_rows = k <= min(m, n) or m > n
    side = m if split_rows else n
    cap = min(MAX_BLOCKS, side // BLOCK_MIN_WIDTH, (m * n * k) // BLOCK_MIN_MACS)
    blocks = 1
    while blocks * 2 <= cap:
        blocks *= 2
    return blocks, split_rows


@njit(**JIT)
def _slab(i, blocks, side):
    """[start, stop) of slab i of `blocks` along a side of `side`, cut on BLOCK_ALIGN multiples."""
    units = (side + BLOCK_ALIGN - 1) // BLOCK_ALIGN
    return min(side, BLOCK_ALIGN * (units * i // blocks)), min(side, BLOCK_ALIGN * (units * (i + 1) // blocks))


@njit(**JIT)
def gemm_call(ta, tb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc, scratch, coef):
    """One single-threaded ?gemm: row-major C(m,n) = alpha * op(A) op(B) + beta * C at offsets.

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


@njit(**JIT)
def gemm_block(i, blocks, split_rows, ta, tb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off,
               ldc, scratch, coef):
    """Slab i of gemm_plan's decomposition: the rows [r0, r1) of C, or its columns [c0, c1)."""
    if split_rows:
        r0, r1 = _slab(i, blocks, m)
        # op(A) rows r0..: A (m, k) rows, or columns of A (k, m) when transposed.
        gemm_call(ta, tb, r1 - r0, n, k, alpha, a, a_off + (r0 if ta else r0 * lda), lda, b, b_off, ldb,
                  beta, c, c_off + r0 * ldc, ldc, scratch[i], coef[i])
    else:
        c0, c1 = _slab(i, blocks, n)
        # op(B) columns c0..: B (k, n) columns, or rows of B (n, k) when transposed.
        gemm_call(ta, tb, m, c1 - c0, k, alpha, a, a_off, lda, b, b_off + (c0 * ldb if tb else c0), ldb,
                  beta, c, c_off + c0, ldc, scratch[i], coef[i])


@njit(**JIT_PARALLEL)
def _gemm_threads(blocks, split_rows, ta, tb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off,
                  ldc, scratch, coef, csr):
    """The slabs spread over this thread's Numba threads, each run with the caller's MXCSR."""
    for i in prange(blocks):
        own = _mxcsr_get()
        _mxcsr_set(csr)
        gemm_block(i, blocks, split_rows, ta, tb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c,
                   c_off, ldc, scratch, coef)
        _mxcsr_set(own)


@njit(**JIT)
def gemm(ta, tb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc, scratch, coef, spread):
    """Row-major C(m,n) = alpha * op(A) op(B) + beta * C as gemm_plan's fixed slabs.

    scratch: int32 (MAX_BLOCKS, 8) and coef: (MAX_BLOCKS, 2) of c's dtype, one row per slab.
    spread: run the slabs on this thread's Numba threads (False inside a parallel region).
    One thread or many run the same calls on the same slabs, so C is bit-identical.
    """
    blocks, split_rows = gemm_plan(m, n, k)
    if blocks == 1:
        gemm_call(ta, tb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc, scratch[0], coef[0])
    elif spread:
        _gemm_threads(blocks, split_rows, ta, tb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c,
                      c_off, ldc, scratch, coef, _mxcsr_get())
    else:
        for i in range(blocks):
            gemm_block(i, blocks, split_rows, ta, tb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta,
                       c, c_off, ldc, scratch, coef)


def gemm_scratch(dtype):
    """The (scratch, coef) buffers `gemm` needs, allocated once per job or call."""
    return np.zeros((MAX_BLOCKS, 8), np.int32), np.zeros((MAX_BLOCKS, 2), dtype)


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

    def gemm_call(ta, tb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc, scratch, coef):
        def view(x, off, shape, ld):  # a (rows, cols) block with row stride ld, as a NumPy view
            return np.lib.stride_tricks.as_strided(x[off:], shape, (ld * x.itemsize, x.itemsize))

        A = view(a, a_off, (k, m) if ta else (m, k), lda)
        B = view(b, b_off, (n, k) if tb else (k, n), ldb)
        C = view(c, c_off, (m, n), ldc)
        product = (A.T if ta else A) @ (B.T if tb else B)
        C[...] = alpha * product if beta == 0 else beta * C + alpha * product

    def _mxcsr_get():
        return np.uint32(0)

    def _mxcsr_set(bits):
        return None

    def flush_denormals_on():
        return np.uint32(0)

    def restore_mxcsr(old):
        return None
