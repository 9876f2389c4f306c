"""Column indices of the per-layer `meta` table and slots of the `ints` settings vector.

meta (L, 8) int64, one row per layer, filled by layout.py:
    inputs, units, offset of W in theta, offset of b, activation code, W frozen, b frozen,
    layer uses BLAS.
ints (7,) int64, one per job, filled by buffers.py:
    optimizer code, loss code, accuracy rule, batch rows, shuffle, loss gradient fused with
    the output activation, every layer tiny (kernels/small.py runs the step).
"""

M_IN, M_OUT, M_W, M_B, M_ACT, M_FREEZE_W, M_FREEZE_B, M_BLAS = range(8)
I_OPT, I_LOSS, I_ACC, I_BATCH, I_SHUFFLE, I_FUSED, I_SMALL = range(7)
N_INTS = 7
