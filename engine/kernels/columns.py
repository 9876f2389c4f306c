"""Column indices of the per-layer `meta` table and slots of the `ints` settings vector.

meta (L, 8) int64, one row per layer, filled by layout.py:
    inputs, units, offset of W in theta, offset of b, activation code, W frozen, b frozen,
    layer uses BLAS.
ints (8,) int64, one per job, filled by buffers.py:
    optimizer code, loss code, accuracy rule, batch rows, shuffle, loss gradient fused with
    the output activation, every layer tiny (kernels/small.py runs the step), GEMM slabs may
    run on the Numba threads (0 inside train_many's parallel loop over models).
"""

M_IN, M_OUT, M_W, M_B, M_ACT, M_FREEZE_W, M_FREEZE_B, M_BLAS = range(8)
I_OPT, I_LOSS, I_ACC, I_BATCH, I_SHUFFLE, I_FUSED, I_SMALL, I_SPREAD = range(8)
N_INTS = 8
