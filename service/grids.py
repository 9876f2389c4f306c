"""Sweep grids: dotted-path overrides of a JobSpec and the expansion of a base spec over a grid."""

from __future__ import annotations

import itertools
import math
from typing import Iterable

from google.protobuf import json_format, struct_pb2

from fusetrain.v1 import job_pb2
from fusetrain.wire import paths

from .errors import InvalidArgument


def apply_override(spec: job_pb2.JobSpec, path: str, value, where: str) -> None:
    """Set the field at dotted `path` (proto or JSON names, `[i]` for list items) of `spec` to
    `value`, a plain Python value as in a JSON job file (fusetrain.wire.paths, the parser the
    client's --set uses too)."""
    try:
        paths.set_in_message(spec, path, value)
    except paths.FieldPathError as exc:
        raise InvalidArgument(f"{where}.{'values' if exc.kind == 'value' else 'field'}", str(exc)) from None


def check_finite(value: struct_pb2.Value, where: str) -> None:
    """Refuse NaN and infinity anywhere in a grid value (JSON has neither)."""
    kind = value.WhichOneof("kind")
    if kind == "number_value" and not math.isfinite(value.number_value):
        raise InvalidArgument(where, f"{value.number_value} is not a finite number")
    if kind == "list_value":
        for item in value.list_value.values:
            check_finite(item, where)
    elif kind == "struct_value":
        for item in value.struct_value.fields.values():
            check_finite(item, where)


def expand_grid(base: job_pb2.JobSpec, axes: Iterable) -> list[job_pb2.JobSpec]:
    """One spec per combination of the axes' values (the last axis varies fastest)."""
    axes = list(axes)
    columns = []
    for a, axis in enumerate(axes):
        if not axis.values:
            raise InvalidArgument(f"grid[{a}].values", "needs at least one value")
        column = []
        for j, v in enumerate(axis.values):
            if isinstance(v, struct_pb2.Value):
                check_finite(v, f"grid[{a}].values[{j}]")
                v = json_format.MessageToDict(v)
            column.append(v)
        columns.append(column)
    specs = []
    for combo in itertools.product(*columns):
        spec = job_pb2.JobSpec()
        spec.CopyFrom(base)
        for a, (axis, value) in enumerate(zip(axes, combo)):
            apply_override(spec, axis.field, value, f"grid[{a}]")
        specs.append(spec)
    return specs


def grid_size(axes) -> int:
    return math.prod(len(axis.values) for axis in axes)
