"""Rows before training: the cross-validation split and the input normalisation (numpy, and the
engine's rule for which targets are classes).

    split_folds(x, y, cv, loss)            -> (x_train, y_train, x_val, y_val)
    fit_normalization(spec, x, dtype)      -> (kind, shift, scale) or None
    normalize(x, shift, scale, dtype)      -> (x - shift) * scale in the model's dtype

The job applies these in that order; Predict applies `normalize` again with the stored values.
Shift and scale are kept in the model's dtype and applied in it, which is exactly what the ONNX
export's Sub and Mul do, so exported models reproduce Predict.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from fusetrain.engine.metrics import class_codes
from fusetrain.wire.tensors import tensor_to_array

from .errors import InvalidArgument

KINDS = ("minmax", "standardize")


def normalization_kind(norm) -> str:
    """The spec's kind ("" when none), checked."""
    kind = norm.kind
    if kind in ("", "none"):
        return ""
    if kind not in KINDS:
        raise InvalidArgument("model.normalization.kind",
                              f"unknown value {kind!r}; expected none, {', '.join(KINDS)}")
    return kind


def fold_rows(rows: int, folds: int, fold: int, seed: int,
              strata: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows) of fold `fold` of a seeded k-fold split.

    The rows are shuffled with `seed`. Plain: the shuffled order is cut into `folds` parts of
    sizes differing by at most one. Stratified (`strata`, one class code per row): the shuffled
    rows are put in class order (stable, so shuffled within each class) and dealt to the folds in
    turn, so each fold holds floor or ceil of (class rows / folds) rows of every class and the
    fold sizes differ by at most one (scikit-learn's StratifiedKFold allocation).
    """
    order = np.random.default_rng(seed).permutation(rows)
    if strata is None:
        parts = np.array_split(order, folds)
        return np.concatenate([p for i, p in enumerate(parts) if i != fold]), parts[fold]
    dealt = order[np.argsort(strata[order], kind="stable")]
    turn = np.arange(rows) % folds
    return np.sort(dealt[turn != fold]), np.sort(dealt[turn == fold])


def split_folds(x: np.ndarray, y: np.ndarray, cv, loss: str) -> tuple:
    """(x_train, y_train, x_val, y_val) of the spec's data.cross_validation (see job.proto)."""
    stratify = cv.stratify if cv.HasField("stratify") else True
    strata = class_codes(y.reshape(len(y), -1), loss) if stratify else None
    train, val = fold_rows(len(x), cv.folds, cv.fold, cv.seed + cv.repeat, strata)
    return x[train], y[train], x[val], y[val]


def fit_normalization(norm, x: np.ndarray, dtype: str, where: str = "model.normalization"
                      ) -> Optional[tuple[str, np.ndarray, np.ndarray]]:
    """(kind, shift, scale) in `dtype` from the spec's explicit values or computed on `x`.

    minmax: shift = min, scale = 1 / (max - min); standardize: shift = mean, scale = 1 / std.
    A constant column (range or std 0) gets scale 1, so it becomes 0 rather than NaN.
    """
    kind = normalization_kind(norm)
    if not kind:
        return None
    dt = np.dtype(dtype)
    if norm.HasField("shift") or norm.HasField("scale"):
        if not (norm.HasField("shift") and norm.HasField("scale")):
            raise InvalidArgument(where, "give both shift and scale, or neither")
        shift = tensor_to_array(norm.shift, f"{where}.shift").astype(np.float64).reshape(-1)
        scale = tensor_to_array(norm.scale, f"{where}.scale").astype(np.float64).reshape(-1)
    else:
        columns = x.reshape(len(x), -1)
        axis = None if norm.all_columns else 0
        if kind == "minmax":
            lo = columns.min(axis=axis).astype(np.float64)
            span = columns.max(axis=axis).astype(np.float64) - lo
            shift, spread = lo, span
        else:
            shift = columns.mean(axis=axis, dtype=np.float64)
            spread = columns.std(axis=axis, dtype=np.float64)
        spread = np.where(spread > 0, spread, 1.0)
        shift, scale = np.atleast_1d(shift), np.atleast_1d(1.0 / spread)
    if not (np.all(np.isfinite(shift)) and np.all(np.isfinite(scale))):
        raise InvalidArgument(where, "shift and scale must be finite")
    return kind, shift.astype(dt), scale.astype(dt)


def check_normalization(norm, inputs: int, where: str = "model.normalization") -> None:
    """Submit-time checks of the kind and of explicit values' shapes."""
    if not normalization_kind(norm):
        return
    if norm.HasField("shift") or norm.HasField("scale"):
        kind, shift, scale = fit_normalization(norm, np.zeros((1, inputs)), "float64", where)
        for name, values in (("shift", shift), ("scale", scale)):
            if values.shape[0] not in (1, inputs):
                raise InvalidArgument(f"{where}.{name}", f"has {values.shape[0]} values; expected 1 or "
                                                         f"{inputs} (model.inputs)")


def normalize(x: np.ndarray, shift: np.ndarray, scale: np.ndarray, dtype: str) -> np.ndarray:
    """(x - shift) * scale, computed in `dtype` (x converted first), as the ONNX export does."""
    dt = np.dtype(dtype)
    out = np.asarray(x, dtype=dt).reshape(len(x), -1).copy()
    out -= shift.astype(dt, copy=False)
    out *= scale.astype(dt, copy=False)
    return out
