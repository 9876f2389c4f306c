"""The fused training loop: whole epochs of forward, loss, backward and update in one call.

Legend: N = training rows, B = batch size, L = layers, P = parameters, E = epochs in the call.
Buffers (all flat, all allocated once per job by layout.py):
    theta (P,) parameters; grad (P,) gradients; backup (P,) theta at the start of the epoch;
    opt (S, P) optimizer slots; step (1,) int64 updates so far; rng (1,) uint64 shuffle state;
    x (N*I,), y (N*O,) data; perm (N,) int64 row order (reset and shuffled per epoch); xb (B*I,), yb (B*O,) gathered batch;
    acts, deltas (B * sum of units,) per-layer (B, U) blocks at a_off[l];
    meta (L, 8) and ints (8,) int64: see columns.py;
    slopes (L,) leaky slopes; hp (8,) float64 hyper-parameters; lrs (E,) learning rate per epoch.
Outputs: losses (E,) mean batch loss per epoch, correct (E,) correct predictions per epoch.
"""

import numpy as np
from numba import njit

from ..config import JIT, variant
from .activations import activation_backward, activation_forward
from .blas import MAX_BLOCKS, flush_denormals_on, restore_mxcsr
from .dense import (dense_backward_bias, dense_backward_input, dense_backward_weights, dense_forward,
                    dense_forward_loops)
from .losses import count_correct, loss_forward_backward
from .columns import (I_ACC, I_BATCH, I_FUSED, I_LOSS, I_OPT, I_SHUFFLE, I_SMALL, I_SPREAD, M_ACT, M_B, M_BLAS,
                      M_FREEZE_B, M_FREEZE_W, M_IN, M_OUT, M_W)
from .optimizers import HP_CLIP, HP_DECAY, SGD
from .rng import shuffle
from .small import small_step_fold, small_step_update
from .update import clip_gradients, update_layer


def _make_forward(blas_ok: bool):
    """forward, or (blas_ok False) forward_loops: every layer in hand loops, for tiny networks."""

    @variant("forward" if blas_ok else "forward_loops")
    def forward(x, x_off, rows, theta, acts, a_off, meta, slopes, iscr, fscr, spread):
        """Run every layer on rows of x (R, I) at x_off; layer l's activations land at a_off[l]."""
        src = x
        s_off = x_off
        for l in range(meta.shape[0]):
            n_in = meta[l, M_IN]
            n_out = meta[l, M_OUT]
            if blas_ok:
                dense_forward(src, s_off, rows, n_in, theta, meta[l, M_W], meta[l, M_B], n_out,
                              acts, a_off[l], meta[l, M_BLAS] != 0, iscr, fscr, spread)
            else:
                dense_forward_loops(src, s_off, rows, n_in, theta, meta[l, M_W], meta[l, M_B], n_out,
                                    acts, a_off[l], False, iscr, fscr, spread)
            activation_forward(acts, a_off[l], rows, n_out, meta[l, M_ACT], slopes[l])
            src = acts
            s_off = a_off[l]
    return forward


forward = _make_forward(True)
forward_loops = _make_forward(False)


def _make_train_step(fold: bool):
    """train_step for one update rule, fixed when it is compiled: `fold`, plain SGD without
    clipping, folds the update into the weight-gradient GEMM; otherwise the gradients go to
    `grad` and each layer's update runs right after them (update.py: on the job's threads when
    `spread`; after the whole gradient when clipping). Each variant compiles only its own code."""

    @variant("train_step_fold" if fold else "train_step_update")
    def train_step(x, x_off, y, y_off, rows, theta, grad, opt, step, acts, deltas, a_off, meta,
                   slopes, hp, lr, ints, iscr, fscr, spread):
        """One mini-batch: forward, loss, backward and update. Returns (batch loss, correct)."""
        n_layers = meta.shape[0]
        last = n_layers - 1
        n_out = meta[last, M_OUT]
        forward(x, x_off, rows, theta, acts, a_off, meta, slopes, iscr, fscr, spread)
        loss = loss_forward_backward(acts, a_off[last], y, y_off, deltas, a_off[last], rows, n_out,
                                     ints[I_LOSS])
        correct = count_correct(acts, a_off[last], y, y_off, rows, n_out, ints[I_ACC])
        if ints[I_FUSED] == 0:
            activation_backward(deltas, a_off[last], acts, a_off[last], rows, n_out,
                                meta[last, M_ACT], slopes[last])
        decay = hp[HP_DECAY]
        # The other rules: each layer is updated right after its gradients (update.py), unless
        # clipping needs the whole gradient first.
        kind = ints[I_OPT]
        clipped = hp[HP_CLIP] > 0.0
        t = 0
        if not fold:
            step[0] += 1
            t = step[0]
        alpha = -lr if fold else 1.0
        beta_w = 1.0 - lr * decay if fold else 0.0
        beta_b = 1.0 if fold else 0.0
        target = theta if fold else grad
        for l in range(last, -1, -1):
            n_in = meta[l, M_IN]
            n_o = meta[l, M_OUT]
            use_blas = meta[l, M_BLAS] != 0
            src = x if l == 0 else acts
            s_off = x_off if l == 0 else a_off[l - 1]
            if l > 0:
                # Before W changes: pass the gradient down, through the activation below.
                dense_backward_input(deltas, a_off[l], rows, n_o, theta, meta[l, M_W], n_in,
                                     deltas, a_off[l - 1], use_blas, iscr, fscr, spread)
                activation_backward(deltas, a_off[l - 1], acts, a_off[l - 1], rows, n_in,
                                    meta[l - 1, M_ACT], slopes[l - 1])
            if meta[l, M_FREEZE_W] == 0:
                dense_backward_weights(deltas, a_off[l], rows, n_o, src, s_off, n_in, alpha, beta_w,
                                       target, meta[l, M_W], use_blas, iscr, fscr, spread)
            if meta[l, M_FREEZE_B] == 0:
                dense_backward_bias(deltas, a_off[l], rows, n_o, alpha, beta_b, target, meta[l, M_B])
            if not fold:
                if not clipped:
                    update_layer(theta, grad, opt, meta, l, kind, lr, hp, t, spread)
        if not fold:
            if clipped:
                clip_gradients(grad, meta, hp)
                for l in range(n_layers):
                    update_layer(theta, grad, opt, meta, l, kind, lr, hp, t, spread)
        return loss, correct
    return train_step


train_step_fold = _make_train_step(True)
train_step_update = _make_train_step(False)


@njit(**JIT)
def begin_epoch(theta, backup, perm, rng, gather):
    """Keep theta in backup (to undo a diverged epoch); reset and shuffle the row order when gathering."""
    for i in range(theta.shape[0]):
        backup[i] = theta[i]
    if gather:
        for i in range(perm.shape[0]):
            perm[i] = i
        shuffle(perm, rng)


@njit(**JIT)
def gather_rows(x, y, perm, start, rows, n_in, n_out, xb, yb):
    """Rows perm[start : start + rows] of x (N*I,) and y (N*O,) into the batch buffers xb, yb."""
    # Element loops: a slice assignment compiles Numba's shape-mismatch message too.
    for r in range(rows):
        src = perm[start + r]
        for j in range(n_in):
            xb[r * n_in + j] = x[src * n_in + j]
        for j in range(n_out):
            yb[r * n_out + j] = y[src * n_out + j]


@njit(**JIT)
def undo_if_diverged(loss, theta, backup):
    """True, with theta restored from backup, when the epoch's loss or any parameter is not finite."""
    bad = not np.isfinite(loss)
    for i in range(theta.shape[0]):
        if bad:
            break
        bad = not np.isfinite(theta[i])
    if bad:
        for i in range(theta.shape[0]):
            theta[i] = backup[i]
    return bad


def _make_run_epochs(small: bool, fold: bool):
    """The epoch loop of one step path: the tiny networks' scalar step (`small`) or the BLAS
    step, and one update rule (`fold`, see _make_train_step). A job compiles only its own
    variant (epoch_loop picks it); all four compute what one loop with runtime branches would."""

    @variant(f"run_epochs_{'small' if small else 'blas'}_{'fold' if fold else 'update'}")
    def run_epochs(theta, grad, backup, opt, step, rng, x, y, perm, xb, yb, acts, deltas, a_off,
                   meta, slopes, hp, lrs, ints, losses, correct):
        """Train for len(lrs) epochs. Returns (epochs done, diverged).

        A non-finite epoch loss, or a non-finite parameter after the epoch (a huge learning rate
        or weight decay can overflow the weights while the epoch's loss, taken before each update,
        stays finite), restores theta to its value before that epoch and stops: the weights kept
        are always the last finite ones.
        """
        old_csr = flush_denormals_on()
        n_layers = meta.shape[0]
        n_in = meta[0, M_IN]
        n_out = meta[n_layers - 1, M_OUT]
        n_rows = perm.shape[0]
        batch = ints[I_BATCH]
        gather = ints[I_SHUFFLE] != 0 and batch < n_rows
        iscr = np.empty((MAX_BLOCKS, 8), np.int32)
        fscr = np.empty((MAX_BLOCKS, 2), theta.dtype)
        spread = ints[I_SPREAD] != 0
        n_batches = (n_rows + batch - 1) // batch
        for e in range(lrs.shape[0]):
            begin_epoch(theta, backup, perm, rng, gather)
            lr = lrs[e]
            total = 0.0
            hits = 0
            for start in range(0, n_rows, batch):
                rows = min(batch, n_rows - start)
                # One call site per step function: each is compiled (and inlined) once.
                src_x, off_x, src_y, off_y = x, start * n_in, y, start * n_out
                if gather:
                    gather_rows(x, y, perm, start, rows, n_in, n_out, xb, yb)
                    src_x, off_x, src_y, off_y = xb, 0, yb, 0
                # `small` and `fold` are constants here: Numba prunes the other three calls.
                if small and fold:
                    loss, hit = small_step_fold(src_x, off_x, src_y, off_y, rows, theta, grad, opt, step,
                                                acts, deltas, a_off, meta, slopes, hp, lr, ints)
                elif small:
                    loss, hit = small_step_update(src_x, off_x, src_y, off_y, rows, theta, grad, opt, step,
                                                  acts, deltas, a_off, meta, slopes, hp, lr, ints)
                elif fold:
                    loss, hit = train_step_fold(src_x, off_x, src_y, off_y, rows, theta, grad, opt, step,
                                                acts, deltas, a_off, meta, slopes, hp, lr, ints, iscr, fscr,
                                                spread)
                else:
                    loss, hit = train_step_update(src_x, off_x, src_y, off_y, rows, theta, grad, opt, step,
                                                  acts, deltas, a_off, meta, slopes, hp, lr, ints, iscr, fscr,
                                                  spread)
                total += loss
                hits += hit
            losses[e] = total / n_batches
            correct[e] = hits
            if undo_if_diverged(losses[e], theta, backup):
                restore_mxcsr(old_csr)
                return e, True
        restore_mxcsr(old_csr)
        return lrs.shape[0], False
    return run_epochs


EPOCH_LOOPS = {(small, fold): _make_run_epochs(small, fold) for small in (False, True) for fold in (True, False)}


def folds(ints: np.ndarray, hp: np.ndarray) -> bool:
    """Whether a job's update folds into its gradient GEMM: plain SGD without clipping."""
    return int(ints[I_OPT]) == SGD and float(hp[HP_CLIP]) == 0.0


def loop_key(ints: np.ndarray, hp: np.ndarray) -> tuple[bool, bool]:
    """(small, fold) of a job's buffers (JobBuffers.ints and .hp): which epoch loop it runs."""
    return int(ints[I_SMALL]) != 0, folds(ints, hp)


def epoch_loop(ints: np.ndarray, hp: np.ndarray):
    """The compiled epoch loop for a job's buffers."""
    return EPOCH_LOOPS[loop_key(ints, hp)]


def loops_compiled() -> int:
    """Epoch loops compiled in this process so far (Numba's cache misses)."""
    return sum(sum(d.stats.cache_misses.values()) for d in EPOCH_LOOPS.values())


def _make_predict_rows(blas_ok: bool):
    """predict_rows, or (blas_ok False) predict_rows_loops for tiny networks (no GEMM chain)."""

    @variant("predict_rows" if blas_ok else "predict_rows_loops")
    def predict_rows(theta, x, n_rows, acts, a_off, meta, slopes, block, out, spread):
        """Forward x (N*I,) in blocks of `block` rows; out (N*O,) gets the output activations.

        spread: GEMM slabs may run on the Numba threads (as in training, results do not depend on it).
        """
        n_layers = meta.shape[0]
        n_in = meta[0, M_IN]
        n_out = meta[n_layers - 1, M_OUT]
        iscr = np.empty((MAX_BLOCKS, 8), np.int32)
        fscr = np.empty((MAX_BLOCKS, 2), theta.dtype)
        last = a_off[n_layers - 1]
        for start in range(0, n_rows, block):
            rows = min(block, n_rows - start)
            if blas_ok:
                forward(x, start * n_in, rows, theta, acts, a_off, meta, slopes, iscr, fscr, spread)
            else:
                forward_loops(x, start * n_in, rows, theta, acts, a_off, meta, slopes, iscr, fscr, spread)
            for j in range(rows * n_out):
                out[start * n_out + j] = acts[last + j]
    return predict_rows


predict_rows = _make_predict_rows(True)
predict_rows_loops = _make_predict_rows(False)
