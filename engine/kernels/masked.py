"""The epoch loop of jobs with dropout or sample weights; plain jobs never run this code.

Legend as in epochs.py (N rows, B batch rows, L layers, acts/deltas (B, U) blocks at a_off[l]).
Extra buffers:
    rates (L,) float64 dropout rate of each layer's output (0 for the output layer and for
    layers without dropout); masks, dropped (B * sum of units,) the inverted-dropout mask
    (0 or 1 / (1 - rate)) and the masked activations a * mask of the layers with a rate;
    w (N,) float64 row weights, empty when the job has none; wb (B,) the batch's gathered weights.

Dropout: hidden layer l's output a_l is replaced by a_l * m_l in the forward pass, so the
layer above reads `dropped`; backward, dL/da_l = m_l * dL/d(a_l m_l), and the activation's
derivative is taken from the unmasked a_l in `acts`. The masks are drawn per mini-batch,
layer by layer, row-major, from the job's generator (rng.py), on the calling thread: the
same bits for any thread count, and resumed exactly from the saved generator state.

Weights: the batch loss is sum_r w_r l_r / sum_r w_r (np.average; l_r the row's loss as
losses.py defines it for one row), so dL/dz of row r is w_r / sum_r w_r times the row's own
gradient, as scikit-learn's MLP computes it. A batch whose weights sum to 0 has no gradient.
"""

import numpy as np
from numba import njit

from ..config import JIT
from .activations import activation_backward, activation_forward
from .blas import MAX_BLOCKS, flush_denormals_on, restore_mxcsr, typed
from .columns import I_ACC, I_BATCH, I_FUSED, I_LOSS, I_OPT, I_SHUFFLE, I_SPREAD, M_ACT, M_B, M_BLAS, \
    M_FREEZE_B, M_FREEZE_W, M_IN, M_OUT, M_W
from .dense import dense_backward_bias, dense_backward_input, dense_backward_weights, dense_forward
from .losses import count_correct, loss_forward_backward
from .epochs import begin_epoch, gather_rows, undo_if_diverged
from .rng import next_u64
from .update import clip_gradients, update_layer

_TO_UNIT = 1.0 / 9007199254740992.0   # 2 ** -53


@njit(**JIT)
def draw_masks(rng, masks, a_off, rows, meta, rates):
    """Fill the mask of every layer with a rate: 0 with probability rate, else 1 / (1 - rate)."""
    for l in range(meta.shape[0]):
        p = rates[l]
        if p > 0.0:
            keep = typed(masks, 1.0 / (1.0 - p))
            zero = typed(masks, 0.0)
            m = masks[a_off[l]:a_off[l] + rows * meta[l, M_OUT]]
            for i in range(m.shape[0]):
                u = np.float64(next_u64(rng) >> np.uint64(11)) * _TO_UNIT
                m[i] = zero if u < p else keep


@njit(**JIT)
def masked_forward(x, x_off, rows, theta, acts, masks, dropped, a_off, meta, slopes, rates, iscr, fscr, spread):
    """Every layer on x (R, I); a layer with a rate also writes acts * mask into `dropped`."""
    for l in range(meta.shape[0]):
        n_out = meta[l, M_OUT]
        src, s_off = x, x_off
        if l > 0:
            src = dropped if rates[l - 1] > 0.0 else acts
            s_off = a_off[l - 1]
        dense_forward(src, s_off, rows, meta[l, M_IN], theta, meta[l, M_W], meta[l, M_B], n_out,
                      acts, a_off[l], meta[l, M_BLAS] != 0, iscr, fscr, spread)
        activation_forward(acts, a_off[l], rows, n_out, meta[l, M_ACT], slopes[l])
        if rates[l] > 0.0:
            o = a_off[l]
            for i in range(rows * n_out):
                dropped[o + i] = acts[o + i] * masks[o + i]


@njit(**JIT)
def weighted_loss(a, a_off, y, y_off, w, w_off, d, d_off, rows, outs, code, acc):
    """Row by row: (sum_r w_r l_r, sum_r w_r, sum_r w_r correct_r); d gets w_r / sum w times each
    row's dL/da (or fused dL/dz)."""
    total = 0.0
    wsum = 0.0
    hits = 0.0
    for r in range(rows):
        off = r * outs
        wr = w[w_off + r]
        total += wr * loss_forward_backward(a, a_off + off, y, y_off + off, d, d_off + off, 1, outs, code)
        hits += wr * count_correct(a, a_off + off, y, y_off + off, 1, outs, acc)
        wsum += wr
    inv = 1.0 / wsum if wsum > 0.0 else 0.0
    for r in range(rows):
        s = typed(d, w[w_off + r] * inv)
        for j in range(d_off + r * outs, d_off + (r + 1) * outs):
            d[j] *= s
    return total, wsum, hits


@njit(**JIT)
def masked_gradients(x, x_off, y, y_off, w, w_off, rows, theta, grad, acts, deltas, masks, dropped, a_off,
                     meta, slopes, rates, ints, iscr, fscr, spread):
    """Forward with the given masks, loss and every trainable gradient into grad.

    Returns (loss, weight, hits): with weights (w not empty) the batch's sums of w_r l_r, w_r and
    w_r correct_r; without, its mean loss, 1 and its correct count.
    """
    last = meta.shape[0] - 1
    n_out = meta[last, M_OUT]
    masked_forward(x, x_off, rows, theta, acts, masks, dropped, a_off, meta, slopes, rates, iscr, fscr, spread)
    if w.shape[0] > 0:
        loss, weight, hits = weighted_loss(acts, a_off[last], y, y_off, w, w_off, deltas, a_off[last], rows,
                                           n_out, ints[I_LOSS], ints[I_ACC])
    else:
        loss = loss_forward_backward(acts, a_off[last], y, y_off, deltas, a_off[last], rows, n_out, ints[I_LOSS])
        weight = 1.0
        hits = float(count_correct(acts, a_off[last], y, y_off, rows, n_out, ints[I_ACC]))
    if ints[I_FUSED] == 0:
        activation_backward(deltas, a_off[last], acts, a_off[last], rows, n_out, meta[last, M_ACT], slopes[last])
    for l in range(last, -1, -1):
        n_in = meta[l, M_IN]
        n_o = meta[l, M_OUT]
        use_blas = meta[l, M_BLAS] != 0
        src, s_off = x, x_off
        if l > 0:
            src = dropped if rates[l - 1] > 0.0 else acts
            s_off = a_off[l - 1]
            below = a_off[l - 1]
            dense_backward_input(deltas, a_off[l], rows, n_o, theta, meta[l, M_W], n_in, deltas, below,
                                 use_blas, iscr, fscr, spread)
            if rates[l - 1] > 0.0:
                for i in range(below, below + rows * n_in):
                    deltas[i] *= masks[i]
            activation_backward(deltas, below, acts, below, rows, n_in, meta[l - 1, M_ACT], slopes[l - 1])
        if meta[l, M_FREEZE_W] == 0:
            dense_backward_weights(deltas, a_off[l], rows, n_o, src, s_off, n_in, 1.0, 0.0, grad, meta[l, M_W],
                                   use_blas, iscr, fscr, spread)
        if meta[l, M_FREEZE_B] == 0:
            dense_backward_bias(deltas, a_off[l], rows, n_o, 1.0, 0.0, grad, meta[l, M_B])
    return loss, weight, hits


@njit(**JIT)
def run_epochs_masked(theta, grad, backup, opt, step, rng, x, y, w, perm, xb, yb, wb, acts, deltas, masks,
                      dropped, a_off, meta, slopes, rates, hp, lrs, ints, losses, correct):
    """Train for len(lrs) epochs as epochs.run_epochs does; returns (epochs done, diverged).

    losses (E,): the mean batch loss, or with weights sum w_r l_r / sum w_r over the epoch's rows;
    correct (E,) float64: correct predictions, with weights summed as w_r per correct row.
    """
    old_csr = flush_denormals_on()
    n_layers = meta.shape[0]
    n_in = meta[0, M_IN]
    n_out = meta[n_layers - 1, M_OUT]
    n_rows = perm.shape[0]
    batch = ints[I_BATCH]
    weighted = w.shape[0] > 0
    gather = ints[I_SHUFFLE] != 0 and batch < n_rows
    iscr = np.empty((MAX_BLOCKS, 8), np.int32)
    fscr = np.empty((MAX_BLOCKS, 2), theta.dtype)
    spread = ints[I_SPREAD] != 0
    kind = ints[I_OPT]
    n_batches = (n_rows + batch - 1) // batch
    for e in range(lrs.shape[0]):
        begin_epoch(theta, backup, perm, rng, gather)
        lr = lrs[e]
        total = 0.0
        wtotal = 0.0
        hits = 0.0
        for start in range(0, n_rows, batch):
            rows = min(batch, n_rows - start)
            src_x, off_x, src_y, off_y, src_w, off_w = x, start * n_in, y, start * n_out, w, start
            if gather:
                gather_rows(x, y, perm, start, rows, n_in, n_out, xb, yb)
                for r in range(rows if weighted else 0):
                    wb[r] = w[perm[start + r]]
                src_x, off_x, src_y, off_y, src_w, off_w = xb, 0, yb, 0, wb, 0
            draw_masks(rng, masks, a_off, rows, meta, rates)
            loss, weight, hit = masked_gradients(src_x, off_x, src_y, off_y, src_w, off_w, rows, theta, grad, acts,
                                                 deltas, masks, dropped, a_off, meta, slopes, rates, ints, iscr,
                                                 fscr, spread)
            step[0] += 1
            clip_gradients(grad, meta, hp)
            for l in range(n_layers):
                update_layer(theta, grad, opt, meta, l, kind, lr, hp, step[0], spread)
            total += loss
            wtotal += weight
            hits += hit
        if weighted:
            losses[e] = total / wtotal if wtotal > 0.0 else 0.0
        else:
            losses[e] = total / n_batches
        correct[e] = hits
        if undo_if_diverged(losses[e], theta, backup):
            restore_mxcsr(old_csr)
            return e, True
    restore_mxcsr(old_csr)
    return lrs.shape[0], False


@njit(**JIT)
def weighted_metrics(a, y, w, rows, outs, code, acc):
    """(weighted mean loss, weighted correct, sum of weights) of outputs a (R*O,) on y, w (R,)."""
    scratch = np.empty(outs, a.dtype)
    total = 0.0
    wsum = 0.0
    hits = 0.0
    for r in range(rows):
        wr = w[r]
        total += wr * loss_forward_backward(a, r * outs, y, r * outs, scratch, 0, 1, outs, code)
        hits += wr * count_correct(a, r * outs, y, r * outs, 1, outs, acc)
        wsum += wr
    return (total / wsum if wsum > 0.0 else 0.0), hits, wsum
