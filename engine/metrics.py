"""Scores of a model's outputs against targets: MAE, RMSE and R² for regression targets, macro-F1
and the confusion matrix for class targets (NumPy, float64).

Legend: N = rows, O = outputs. out (N, O) are the model's outputs, y (N, O) the targets, w (N,)
optional row weights (scikit-learn's `sample_weight`; None = every row weighs 1).

Which scores a job gets follows the one rule that already decides its accuracy
(buffers.accuracy_rule, from the loss and the targets):
    NO_ACCURACY  (regression)   mae, rmse, r2
    ARGMAX       (one-hot rows) macro_f1, confusion (O, O)
    THRESHOLD    (0/1 targets)  macro_f1, confusion (2, 2) for one output, (O, 2, 2) for several
Each score is the one scikit-learn's `metrics` computes with its defaults, which the tests check:
    mae   = mean_o  sum_r w |out - y| / sum_r w                 mean_absolute_error
    rmse  = mean_o  sqrt(sum_r w (out - y)^2 / sum_r w)         root_mean_squared_error
    r2    = mean_o  1 - SSE_o / SST_o   (1 when SST_o = SSE_o = 0, 0 when only SST_o = 0;
                                         NaN for a single row)                       r2_score
    confusion[i, j] = sum of w over rows of true class i predicted as class j   confusion_matrix
    macro_f1 = mean over classes of 2 TP / (2 TP + FP + FN)     f1_score(average="macro")
Multi-output scores are averaged over the outputs (multioutput="uniform_average"). One-hot rows:
the class is the argmax (the first on ties, as accuracy counts it); 0/1 targets: above 1/2. The
macro average runs over the classes present in the targets or the predictions, except for several
0/1 outputs (multi-label), where it runs over every output, an empty one scoring 0.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .buffers import accuracy_rule
from .kernels.losses import ARGMAX, NO_ACCURACY

REGRESSION = ("mae", "rmse", "r2")
CLASSIFICATION = ("macro_f1",)
NAMES = CLASSIFICATION + REGRESSION        # every scalar score, in the messages' order


def score_names(rule: int) -> tuple:
    """The scalar scores of a job whose accuracy follows `rule`."""
    return REGRESSION if rule == NO_ACCURACY else CLASSIFICATION


def class_codes(y: np.ndarray, loss: str) -> Optional[np.ndarray]:
    """One class code per row of targets y (N, O), or None for regression targets: the class of a
    one-hot row, of a 0/1 target, or of a row of several 0/1 targets (each combination a class).
    A stratified cross-validation split keeps these in proportion."""
    rule = accuracy_rule(loss, y)
    if rule == NO_ACCURACY:
        return None
    if rule == ARGMAX:
        return np.argmax(y, axis=1)
    return np.unique(y > 0.5, axis=0, return_inverse=True)[1].reshape(-1)


def macro_f1(cm: np.ndarray) -> float:
    """Macro-F1 of a (C, C) confusion matrix (over the classes present in its rows or columns), or
    of (O, 2, 2) binary confusions (multi-label: over every output, an empty one scoring 0)."""
    if cm.ndim == 3:
        return sum(_f1(cm[o].tolist()) for o in range(len(cm))) / len(cm)
    return _macro_f1_flat(cm.reshape(-1).tolist(), len(cm))


def _macro_f1_flat(counts: list, k: int) -> float:
    """Macro-F1 of a k x k confusion matrix given row-major as a list (plain Python: for a few
    classes this is faster than NumPy calls on arrays this small)."""
    total, present = 0.0, 0
    for i in range(k):
        denom = sum(counts[i * k:(i + 1) * k]) + sum(counts[i::k])    # 2 TP + FN + FP of class i
        if denom > 0:
            total += 2 * counts[i * k + i] / denom
            present += 1
    return total / present if present else 0.0


def _f1(block: list) -> float:
    """F1 of the positive class of [[TN, FP], [FN, TP]]; 0 when it never occurs."""
    (_, fp), (fn, tp) = block
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 0.0


class Scorer:
    """The scores of outputs against fixed targets y (N, O) (a job's training or validation rows),
    with optional row weights w (N,). What stays the same from epoch to epoch (the true classes,
    the targets' spread) is computed once; an epoch's scores then cost a few NumPy calls on the
    outputs and a loop over the classes or outputs."""

    def __init__(self, y: np.ndarray, rule: int, w: Optional[np.ndarray] = None):
        self.rule = rule
        self.w = None if w is None else np.asarray(w, np.float64).reshape(-1)
        self.names = score_names(rule)
        self.y = y                       # kept as given: no copy (memory.py counts what scoring adds)
        self.outputs = y.shape[1]
        if rule == NO_ACCURACY:
            centred = y.astype(np.float64)
            centred -= self._sums(centred) / (len(y) if self.w is None else self.w.sum())
            centred *= centred
            self.sst = self._sums(centred).tolist()                   # (O,) the spread: R²'s denominator
        elif rule == ARGMAX or self.outputs == 1:
            # One class per row: confusion counts by bincount of (true class * C + predicted class).
            self.n_classes = self.outputs if rule == ARGMAX else 2
            self.base = np.argmax(y, axis=1) if rule == ARGMAX else (y[:, 0] > 0.5).astype(np.int64)
            self.base *= self.n_classes
        else:
            self.true = y > 0.5                                        # multi-label (N, O)

    def _sums(self, values: np.ndarray) -> np.ndarray:
        """(O,) weighted sums over the rows of values (N, O)."""
        return values.sum(axis=0) if self.w is None else self.w @ values

    def _counts(self, out: np.ndarray) -> np.ndarray:
        """(C * C,) confusion counts, row-major, for one class per row."""
        pred = np.argmax(out, axis=1) if self.rule == ARGMAX else out[:, 0] > 0.5
        return np.bincount(self.base + pred, weights=self.w, minlength=self.n_classes ** 2)

    def confusion(self, out: np.ndarray) -> np.ndarray:
        """(C, C) for one class per row, (O, 2, 2) for several 0/1 outputs: see the module docstring."""
        if self.rule == ARGMAX or self.outputs == 1:
            return self._counts(out).astype(np.float64).reshape(self.n_classes, self.n_classes)
        pred = out > 0.5
        cms = np.empty((self.outputs, 2, 2))
        cms[:, 1, 1] = self._sums(pred & self.true)
        cms[:, 0, 1] = self._sums(pred & ~self.true)
        cms[:, 1, 0] = self._sums(~pred & self.true)
        n = len(pred) if self.w is None else self.w.sum()
        cms[:, 0, 0] = n - cms[:, 1, 1] - cms[:, 0, 1] - cms[:, 1, 0]
        return cms

    def scores(self, out: np.ndarray) -> dict:
        """{name: value} of the scalar scores (score_names(rule)) of outputs out (N, O)."""
        if self.rule == ARGMAX or (self.rule != NO_ACCURACY and self.outputs == 1):
            return {"macro_f1": _macro_f1_flat(self._counts(out).tolist(), self.n_classes)}
        if self.rule != NO_ACCURACY:
            return {"macro_f1": macro_f1(self.confusion(out))}
        d = out.astype(np.float64)
        d -= self.y
        sae = self._sums(np.abs(d)).tolist()
        d *= d
        sse = self._sums(d).tolist()
        n = len(d) if self.w is None else float(self.w.sum())
        r2 = [1.0 - e / t if t > 0 else float(e == 0) for e, t in zip(sse, self.sst)]   # sklearn's force_finite
        return {"mae": sum(sae) / (n * self.outputs), "rmse": sum(math.sqrt(e / n) for e in sse) / self.outputs,
                "r2": sum(r2) / self.outputs if len(d) > 1 else math.nan}

    def final(self, out: np.ndarray, prefix: str) -> dict:
        """The scores and the confusion matrix (nested lists, rows the true class), named with
        `prefix` ("train_", "val_")."""
        found = {prefix + k: v for k, v in self.scores(out).items()}
        if self.rule != NO_ACCURACY:
            found[prefix + "confusion"] = self.confusion(out).tolist()
        return found
