"""Sweep grids: dotted-path overrides of a JobSpec and the expansion of a base spec over a grid."""

from __future__ import annotations

import itertools
import math
import re
from typing import Iterable

from google.protobuf import json_format, struct_pb2

from fusetrain.v1 import job_pb2

from .errors import InvalidArgument

_PART = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)$")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def apply_override(spec: job_pb2.JobSpec, path: str, value, where: str) -> None:
    """Set the field at dotted `path` (JSON names, `[i]` for list items) of `spec` to `value`.

    `value` is a plain Python value as in a JSON job file (a number, string, bool, list or dict).
    """
    parts = path.split(".") if path else []
    if not parts:
        raise InvalidArgument(f"{where}.field", "is empty")
    msg = spec
    for n, part in enumerate(parts):
        match = _PART.match(part)
        if not match:
            raise InvalidArgument(f"{where}.field", f"cannot read {path!r} at {part!r}")
        name, indexes = _snake(match.group(1)), [int(i) for i in re.findall(r"\d+", match.group(2))]
        fd = msg.DESCRIPTOR.fields_by_name.get(name)
        if fd is None:
            raise InvalidArgument(f"{where}.field", f"{path!r}: {msg.DESCRIPTOR.name} has no field {name!r}")
        last = n == len(parts) - 1
        if last and not indexes:
            try:
                json_format.ParseDict({name: value}, msg)
            except json_format.ParseError as exc:
                raise InvalidArgument(f"{where}.values", f"{path}: {exc}") from None
            return
        target = getattr(msg, name)
        for i in indexes:
            if not fd.is_repeated or fd.message_type is None:
                raise InvalidArgument(f"{where}.field", f"{path!r}: {name} is not a list of messages")
            if i >= len(target):
                raise InvalidArgument(f"{where}.field", f"{path!r}: {name} has {len(target)} items")
            target = target[i]
        if last:
            try:
                json_format.ParseDict(value, target)
            except (json_format.ParseError, AttributeError, TypeError) as exc:
                raise InvalidArgument(f"{where}.values", f"{path}: {exc}") from None
            return
        if fd.message_type is None:
            raise InvalidArgument(f"{where}.field", f"{path!r}: {name} is not a message")
        msg = target


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
