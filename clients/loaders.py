"""Read training data from local files: CSV, NPY/NPZ and IDX (optionally gzipped).

Every loader returns a `Dataset` of features and targets (targets may be None) and raises
`LoadError` naming the file and the problem. CSV gives float64; NPY, NPZ and IDX keep their
numeric dtype (MNIST pixels stay uint8, a quarter of the bytes to upload). Numpy files are read
with allow_pickle=False and object arrays are refused: data never executes code.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from fusetrain.wire import idx


class LoadError(ValueError):
    """A data file cannot be used; the message names the file and what is wrong."""


@dataclass
class Dataset:
    """Features x (rows, columns), targets y (rows, outputs) or None, and class names if one-hot."""

    x: np.ndarray
    y: Optional[np.ndarray] = None
    classes: list = field(default_factory=list)


def load_idx(path) -> np.ndarray:
    """An IDX file (.gz or not) as an array of its shape; MNIST images are (n, 28, 28) uint8
    (fusetrain.wire.idx, the reader the MNIST benchmark uses too)."""
    try:
        return idx.read_idx(path)
    except idx.IDXError as err:
        raise LoadError(str(err)) from None


def load_npy(path) -> np.ndarray:
    """A .npy array, refusing pickled and object arrays."""
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise LoadError(f"{path}: refused: {err} (pickled data is never loaded)") from None
    except OSError as err:
        raise LoadError(f"{path}: cannot read: {err}") from None
    _check_numeric(arr, path)
    return arr


def load_npz(path, x_key: Optional[str] = None, y_key: Optional[str] = None) -> Dataset:
    """An .npz archive: features under x_key (default "x", else the only array), targets under y_key ("y")."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except ValueError as err:
        raise LoadError(f"{path}: refused: {err} (pickled data is never loaded)") from None
    except (OSError, EOFError) as err:
        raise LoadError(f"{path}: cannot read: {err}") from None
    if x_key is None:
        x_key = "x" if "x" in arrays else (next(iter(arrays)) if len(arrays) == 1 else None)
    if x_key not in arrays:
        raise LoadError(f"{path}: no array {x_key!r} for the features; it holds {sorted(arrays)}")
    y_key = y_key if y_key is not None else ("y" if "y" in arrays else None)
    if y_key is not None and y_key not in arrays:
        raise LoadError(f"{path}: no array {y_key!r} for the targets; it holds {sorted(arrays)}")
    for arr in arrays.values():
        _check_numeric(arr, path)
    x = _as_rows(arrays[x_key], path, x_key)
    y = None if y_key is None else _as_rows(arrays[y_key], path, y_key)
    return Dataset(x=x, y=y)


def load_csv(path, target: Optional[int] = -1, header: Optional[bool] = None, one_hot: Optional[bool] = None,
             delimiter: str = ",") -> Dataset:
    """A CSV file of numbers; column `target` (default the last; None for none) is the target.

    header: None detects a first row whose feature cells are not numbers. one_hot: None one-hot
    encodes a target column holding text labels or few distinct integers (<= 50), keeping
    the sorted class names in `classes`; False keeps the target as a number.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise LoadError(f"{path}: cannot read: {err}") from None
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if r and any(c.strip() for c in r)]
    if not rows:
        raise LoadError(f"{path}: no rows")
    width = len(rows[0])
    if target is not None and not -width <= target < width:
        raise LoadError(f"{path}: target column {target} does not exist in {width} columns")
    tcol = None if target is None else target % width
    if header is None:
        header = not all(_is_number(c) for i, c in enumerate(rows[0]) if i != tcol)
    if header:
        rows = rows[1:]
    if not rows:
        raise LoadError(f"{path}: a header but no data rows")
    feats, labels = [], []
    for n, row in enumerate(rows, start=2 if header else 1):
        if len(row) != width:
            raise LoadError(f"{path}: line {n} has {len(row)} columns, expected {width}")
        try:
            feats.append([float(c) for i, c in enumerate(row) if i != tcol])
        except ValueError:
            bad = next(c for i, c in enumerate(row) if i != tcol and not _is_number(c))
            raise LoadError(f"{path}: line {n}: {bad!r} is not a number") from None
        if tcol is not None:
            labels.append(row[tcol].strip())
    x = np.array(feats, dtype=np.float64)
    if tcol is None:
        return Dataset(x=x)
    numeric = all(_is_number(v) for v in labels)
    distinct = sorted(set(labels), key=(lambda v: float(v)) if numeric else str)
    if one_hot is None:
        one_hot = not numeric or (len(distinct) <= 50 and all(float(v).is_integer() for v in labels))
    if not one_hot:
        if not numeric:
            raise LoadError(f"{path}: target column {target} holds text labels; one_hot=False needs numbers")
        return Dataset(x=x, y=np.array([[float(v)] for v in labels]))
    index = {v: i for i, v in enumerate(distinct)}
    y = np.zeros((len(labels), len(distinct)))
    y[np.arange(len(labels)), [index[v] for v in labels]] = 1.0
    return Dataset(x=x, y=y, classes=distinct)


def load(path, **options) -> Dataset:
    """Any supported file by its extension: .csv/.txt, .npy, .npz, .idx/.gz (IDX)."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".csv", ".txt", ".tsv")):
        return load_csv(path, **options)
    if name.endswith(".npz"):
        return load_npz(path, **options)
    if name.endswith(".npy"):
        return Dataset(x=_as_rows(load_npy(path), path, "array"))
    if "idx" in name or name.endswith((".gz", ".ubyte")):
        return Dataset(x=_as_rows(load_idx(path), path, "array"))
    raise LoadError(f"{path}: unknown data format; expected .csv, .npy, .npz or IDX (.gz)")


def load_labels(path, one_hot: Optional[bool] = None) -> tuple[np.ndarray, list]:
    """Targets from their own file (IDX labels, .npy, or a one-column CSV) as rows, and class names.

    one_hot: None encodes 1-D integer or text labels with at most 50 distinct values (classes
    sorted); True always; False keeps the numbers.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".csv", ".txt", ".tsv")):
        d = load_csv(path, target=0, one_hot=one_hot)
        if d.x.shape[1] != 0:
            raise LoadError(f"{path}: a labels file has one column, this one has {d.x.shape[1] + 1}")
        return d.y, d.classes
    raw = load_npy(path) if name.endswith(".npy") else load_idx(path) if (
        "idx" in name or name.endswith((".gz", ".ubyte"))) else None
    if raw is None:
        raise LoadError(f"{path}: unknown labels format; expected IDX (.gz), .npy or a one-column .csv")
    flat = raw.reshape(len(raw)) if raw.ndim == 2 and raw.shape[1] == 1 else raw
    integral = flat.ndim == 1 and (flat.dtype.kind in "biu" or np.all(np.mod(flat, 1) == 0))
    if one_hot is None:
        one_hot = bool(integral and len(np.unique(flat)) <= 50)
    if not one_hot:
        return _as_rows(raw, path, "labels"), []
    if flat.ndim != 1:
        raise LoadError(f"{path}: one-hot encoding needs 1-D labels, got shape {raw.shape}")
    classes, index = np.unique(flat, return_inverse=True)
    y = np.zeros((len(flat), len(classes)), dtype=np.uint8)
    y[np.arange(len(flat)), index] = 1
    return y, [_label_name(c) for c in classes.tolist()]


def _label_name(value) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def one_hot(labels: Sequence[int], classes: Optional[int] = None) -> np.ndarray:
    """Integer labels (n,) -> one-hot rows (n, classes)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise LoadError("labels must be a 1-D array of integers")
    k = int(labels.max()) + 1 if classes is None else classes
    if labels.min() < 0 or labels.max() >= k:
        raise LoadError(f"labels must lie in [0, {k})")
    return np.eye(k)[labels]


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _check_numeric(arr: np.ndarray, path) -> None:
    if arr.dtype.kind not in "biuf":
        raise LoadError(f"{path}: arrays of dtype {arr.dtype} are refused; only numbers are accepted")


def _as_rows(arr: np.ndarray, path, name: str) -> np.ndarray:
    """Numbers as rows, dtype kept (native byte order): (n,) -> (n, 1); (n, a, b, ...) -> (n, a*b*...)."""
    if arr.ndim == 0:
        raise LoadError(f"{path}: {name} is a single number, not rows of data")
    arr = arr.reshape(len(arr), -1) if arr.ndim != 1 else arr.reshape(-1, 1)
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
