"""Human and machine output of the command line: rich tables on stdout, JSON, number formats."""

from __future__ import annotations

import json
import math
import sys
from typing import Optional

import numpy as np


def console():
    from rich.console import Console
    # Off a terminal (pipes, logs) rich would wrap tables at 80 columns: allow wide lines.
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def table(title: Optional[str], columns: list, rows: list) -> None:
    """A table on stdout; numbers right-aligned."""
    from rich.table import Table

    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False, box=None,
              header_style="bold")
    keep = [i for i in range(len(columns)) if any(r[i] not in ("", None) for r in rows)] if rows else \
        list(range(len(columns)))
    columns = [columns[i] for i in keep]
    rows = [[r[i] for i in keep] for r in rows]
    numeric = [all(_is_num(r[i]) for r in rows if r[i] not in ("", None)) for i in range(len(columns))]
    for name, num in zip(columns, numeric):
        t.add_column(name, justify="right" if num else "left", no_wrap=True)
    for r in rows:
        t.add_row(*("" if c is None else str(c) for c in r))
    console().print(t)


def _is_num(text) -> bool:
    try:
        float(str(text).rstrip("%"))
        return True
    except ValueError:
        return False


def _default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _clean(value):
    """NaN and infinity are not JSON: null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def message_dict(msg) -> dict:
    """A protobuf message as a dict with its proto field names, numbers kept as numbers (proto3
    JSON writes 64-bit integers as strings, which mixed strings and numbers in `info --json`)."""
    from google.protobuf import json_format
    doc = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    return _int64_numbers(msg.DESCRIPTOR, doc)


_INT64 = {3, 4, 6, 16, 18}    # FieldDescriptor types: int64, uint64, fixed64, sfixed64, sint64


def _int64_numbers(descriptor, doc: dict) -> dict:
    for name, value in doc.items():
        fd = descriptor.fields_by_name.get(name)
        if fd is None:
            continue
        if fd.type in _INT64:
            doc[name] = [int(v) for v in value] if isinstance(value, list) else int(value)
        elif fd.message_type is not None and not fd.message_type.GetOptions().map_entry:
            if isinstance(value, list):
                doc[name] = [_int64_numbers(fd.message_type, v) if isinstance(v, dict) else v for v in value]
            elif isinstance(value, dict):
                doc[name] = _int64_numbers(fd.message_type, value)
    return doc


def print_json(obj, lines: bool = False) -> None:
    """One JSON document (indented), or one compact line (for streams of events)."""
    text = json.dumps(_clean(obj), default=_default, indent=None if lines else 2, sort_keys=not lines)
    print(text, flush=True)


def pct(value: Optional[float]) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def num(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.4g}"


def seconds(value: Optional[float]) -> str:
    if value is None:
        return ""
    return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"


LINE_METRICS = ("train_loss", "train_accuracy", "train_macro_f1", "train_mae", "train_rmse", "train_r2",
                "val_loss", "val_accuracy", "val_macro_f1", "val_mae", "val_rmse", "val_r2")


def metric(name: str, value: Optional[float]) -> str:
    """A metric's value as people read it: accuracy and F1 as percentages, others to 4 digits."""
    from fusetrain.wire.metrics import is_fraction
    return pct(value) if is_fraction(name) else num(value)


def metrics_line(metrics: dict) -> str:
    return "  ".join(f"{key} {metric(key, metrics[key])}" for key in LINE_METRICS
                     if metrics.get(key) is not None)


def confusion_lines(counts, class_names=()) -> list[str]:
    """A confusion matrix as text lines: rows are the true class, columns the predicted one,
    labelled with the class names when there is one per class (else the class index); shape
    (outputs, 2, 2) as one 2 x 2 block per output."""
    a = np.asarray(counts, dtype=np.float64)
    if a.ndim == 3:
        return [line for o, block in enumerate(a)
                for line in [f"output {class_names[o] if o < len(class_names) else o}:", *confusion_lines(block)]]
    names = [str(n) for n in class_names] if len(class_names) == len(a) else [str(i) for i in range(len(a))]
    cells = [[f"{v:g}" for v in row] for row in a]
    corner = "true \\ predicted"
    width = max(len(t) for t in names + [c for row in cells for c in row])
    head = max(len(corner), *(len(t) for t in names))
    return [f"{corner:<{head}}  " + "  ".join(t.rjust(width) for t in names),
            *(f"{t:<{head}}  " + "  ".join(c.rjust(width) for c in row) for t, row in zip(names, cells))]
