"""Field paths of a JobSpec (`optimizer.learning_rate`, `model.layers[0].units`, `labels.team`):
the one parser behind the client's `--set` and the service's sweep grids.

A path is dotted field names, each optionally followed by `[i]` list indexes. A name may be
spelt as in the proto (`learning_rate`) or as proto3 JSON writes it (`learningRate`); both
name the same field. A mapping given as a job file may also mix the two spellings: `canonical`
rewrites it with the proto names (so `learningRate` in a file and `--set
optimizer.learning_rate=...` set one field, not two), and refuses unknown fields with the
closest known name (`optimizer.learning_rat: unknown field; did you mean learning_rate?`).

numpy, protobuf and fusetrain.v1 only: the client and the service both import it.
"""

from __future__ import annotations

import difflib
import re
from typing import Optional

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from fusetrain.v1 import job_pb2

_PART = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)$")


class FieldPathError(ValueError):
    """A path or value that does not fit the message. `path` is the dotted path of the field
    concerned, `reason` what is wrong; `kind` is "field" (the path) or "value" (the value)."""

    def __init__(self, path: str, reason: str, kind: str = "field"):
        self.path, self.reason, self.kind = path, reason, kind
        super().__init__(f"{path}: {reason}" if path else reason)


def split(path: str) -> list[tuple[str, list[int]]]:
    """`a.b[0][1].c` -> [("a", []), ("b", [0, 1]), ("c", [])]."""
    if not isinstance(path, str) or not path.strip():
        raise FieldPathError("", "the field path is empty")
    parts = []
    for part in path.strip().split("."):
        m = _PART.match(part)
        if not m:
            raise FieldPathError(path, f"cannot read the field path at {part!r}")
        parts.append((m.group(1), [int(i) for i in re.findall(r"\d+", m.group(2))]))
    return parts


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def field(descriptor: Descriptor, name: str, where: str = "") -> FieldDescriptor:
    """The field `name` (proto or JSON spelling) of a message type; an unknown name raises
    FieldPathError naming the closest field."""
    fd = descriptor.fields_by_name.get(name) or descriptor.fields_by_camelcase_name.get(name) \
        or descriptor.fields_by_name.get(snake(name))
    if fd is not None:
        return fd
    names = [f.name for f in descriptor.fields]
    close = difflib.get_close_matches(snake(name), names, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"{descriptor.name} has {', '.join(names)}"
    raise FieldPathError(_join(where, name), f"unknown field; {hint}")


def _is_map(fd: FieldDescriptor) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


def _is_message(fd: FieldDescriptor) -> bool:
    return fd.message_type is not None and not _is_map(fd)


def canonical(data, descriptor: Descriptor = job_pb2.JobSpec.DESCRIPTOR, where: str = ""):
    """A copy of the mapping `data` (a message in proto3 JSON form) with every field under its
    proto name; refuses unknown fields and a field given under both spellings."""
    if not isinstance(data, dict):
        return data
    out: dict = {}
    given: dict = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise FieldPathError(_join(where, str(key)), "a field name must be text")
        fd = field(descriptor, key, where)
        path = _join(where, fd.name)
        if fd.name in out:
            raise FieldPathError(path, f"given twice, as {given[fd.name]} and {key}")
        given[fd.name] = key
        out[fd.name] = _canonical_value(fd, value, path)
    return out


def _canonical_value(fd: FieldDescriptor, value, path: str):
    if _is_map(fd):
        value_fd = fd.message_type.fields_by_name["value"]
        if isinstance(value, dict) and _is_message(value_fd):
            return {k: canonical(v, value_fd.message_type, f"{path}.{k}") for k, v in value.items()}
        return value
    if not _is_message(fd) or fd.message_type.full_name.startswith("google.protobuf."):
        return value
    if fd.is_repeated and isinstance(value, list):
        return [canonical(v, fd.message_type, f"{path}[{i}]") for i, v in enumerate(value)]
    return canonical(value, fd.message_type, path)


def _check_value(descriptor: Descriptor, fd: FieldDescriptor, value, path: str) -> None:
    """Parse {field: value} into an empty message of the parent type: a bad value names its path."""
    from google.protobuf import message_factory
    scratch = message_factory.GetMessageClass(descriptor)()
    try:
        json_format.ParseDict({fd.name: value}, scratch)
    except (json_format.ParseError, TypeError, AttributeError, ValueError) as exc:
        raise FieldPathError(path, _reason(exc), "value") from None


def _reason(exc: Exception) -> str:
    text = str(exc)
    # protobuf names the field by its full name and the message in front; keep what is wrong.
    m = re.search(r"Failed to parse \w+ field: (.*)", text)
    return m.group(1) if m else text


def set_in_dict(data: dict, path: str, value, descriptor: Descriptor = job_pb2.JobSpec.DESCRIPTOR) -> None:
    """Set `path` in the canonical mapping `data` (see `canonical`) to `value` (a JSON value),
    creating mappings on the way; the value is checked against the field's type."""
    parts = split(path)
    node, desc, where = data, descriptor, ""
    for n, (name, indexes) in enumerate(parts):
        last = n == len(parts) - 1
        fd = field(desc, name, where)
        here = _join(where, fd.name)
        if _is_map(fd):
            if indexes or n != len(parts) - 2:
                raise FieldPathError(path, f"{here} is a map: name one key, as {here}.KEY")
            key = parts[n + 1][0]
            entry = node.setdefault(fd.name, {})
            value_fd = fd.message_type.fields_by_name["value"]
            if _is_message(value_fd):
                value = canonical(value, value_fd.message_type, f"{here}.{key}")
            _check_value(desc, fd, {key: value}, f"{here}.{key}")
            entry[key] = value
            return
        if last and not indexes:
            value = _canonical_value(fd, value, here)
            _check_value(desc, fd, value, here)
            node[fd.name] = value
            return
        if indexes:
            if not fd.is_repeated or not _is_message(fd):
                raise FieldPathError(path, f"{here} is not a list of messages")
            seq = node.get(fd.name)
            for depth, i in enumerate(indexes):
                if not isinstance(seq, list) or i >= len(seq):
                    raise FieldPathError(path, f"{fd.name} has no item {i}"
                                         + (f" (it has {len(seq)})" if isinstance(seq, list) else ""))
                here = f"{here}[{i}]"
                if depth == len(indexes) - 1:
                    break
                seq = seq[i]
            if last:
                value = canonical(value, fd.message_type, here)
                _check_value(desc, fd, [value], here)
                seq[i] = value
                return
            node = seq[i]
        else:
            if not _is_message(fd):
                raise FieldPathError(path, f"{here} is not a message")
            node = node.setdefault(fd.name, {})
        if not isinstance(node, dict):
            raise FieldPathError(path, f"{here} is not a mapping")
        desc, where = fd.message_type, here


def set_in_message(msg, path: str, value) -> None:
    """Set `path` of the message `msg` to `value` (a JSON value: number, text, bool, list, or a
    mapping for a message field, either spelling of names), as a sweep grid does."""
    parts = split(path)
    where = ""
    for n, (name, indexes) in enumerate(parts):
        last = n == len(parts) - 1
        fd = field(msg.DESCRIPTOR, name, where)
        here = _join(where, fd.name)
        if _is_map(fd):
            if indexes or n != len(parts) - 2:
                raise FieldPathError(path, f"{here} is a map: name one key, as {here}.KEY")
            key = parts[n + 1][0]
            try:
                json_format.ParseDict({fd.name: {key: _canonical_value(fd, {key: value}, here)[key]}}, msg)
            except (json_format.ParseError, TypeError, AttributeError, ValueError) as exc:
                raise FieldPathError(f"{here}.{key}", _reason(exc), "value") from None
            return
        if last and not indexes:
            try:
                json_format.ParseDict({fd.name: _canonical_value(fd, value, here)}, msg)
            except (json_format.ParseError, TypeError, AttributeError, ValueError) as exc:
                raise FieldPathError(here, _reason(exc), "value") from None
            return
        target = getattr(msg, fd.name)
        for i in indexes:
            if not fd.is_repeated or not _is_message(fd):
                raise FieldPathError(path, f"{here} is not a list of messages")
            if i >= len(target):
                raise FieldPathError(path, f"{fd.name} has no item {i} (it has {len(target)})")
            target = target[i]
            here = f"{here}[{i}]"
        if last:
            if not isinstance(value, dict):
                raise FieldPathError(here, f"a list item takes a mapping of its fields, got {value!r}", "value")
            try:
                json_format.ParseDict(canonical(value, fd.message_type, here), target)
            except (json_format.ParseError, TypeError, AttributeError, ValueError) as exc:
                raise FieldPathError(here, _reason(exc), "value") from None
            return
        if not _is_message(fd):
            raise FieldPathError(path, f"{here} is not a message")
        msg, where = target, here


def get_in_message(msg, path: str, default: Optional[object] = None):
    """The value at `path` of a message (a scalar, a sub-message, or a list)."""
    for name, indexes in split(path):
        fd = field(msg.DESCRIPTOR, name)
        msg = getattr(msg, fd.name)
        for i in indexes:
            if i >= len(msg):
                return default
            msg = msg[i]
    return msg


# ------------------------------------------------------------------- fields a choice leaves unused

# The optional fields of Optimizer each kind uses; learning_rate, weight_decay, clip_norm and
# schedule serve every kind. A field the chosen kind does not use would be ignored without a
# word, so the service and the client refuse it, naming it.
OPTIMIZER_FIELDS = {"sgd": (), "momentum": ("momentum",), "nesterov": ("momentum",),
                    "adam": ("beta1", "beta2", "epsilon"), "adamw": ("beta1", "beta2", "epsilon"),
                    "rmsprop": ("rho", "epsilon")}
OPTIMIZER_KIND_FIELDS = ("momentum", "beta1", "beta2", "rho", "epsilon")
# The optional fields of Schedule each kind uses.
SCHEDULE_FIELDS = {"constant": (), "step": ("step_size", "gamma"), "exponential": ("gamma",),
                   "inverse_scaling": ("power",), "cosine": ("min_lr",),
                   "plateau": ("min_lr", "factor", "patience", "threshold", "cooldown")}
SCHEDULE_KIND_FIELDS = ("step_size", "gamma", "power", "min_lr", "factor", "patience", "threshold", "cooldown")


def _users(table: dict, name: str) -> str:
    kinds = [k for k, fields in table.items() if name in fields]
    return " or ".join(kinds)


def unused_fields(spec) -> list[tuple[str, str]]:
    """[(field path, why)] of the hyper-parameters `spec` sets that its optimizer's (or its
    schedule's) kind does not use; empty when there are none. Unknown kinds are left to the
    engine's own check."""
    o = spec.optimizer
    return (_unused(o, o.kind or "sgd", OPTIMIZER_FIELDS, OPTIMIZER_KIND_FIELDS, "optimizer")
            + _unused(o.schedule, o.schedule.kind or "constant", SCHEDULE_FIELDS, SCHEDULE_KIND_FIELDS,
                      "optimizer.schedule"))


def _unused(message, kind: str, fields: dict, kind_fields, where: str) -> list[tuple[str, str]]:
    """unused_fields of one message: `fields` maps each kind to the fields it uses, `kind_fields`
    are the fields that depend on the kind, `where` the message's path ("optimizer")."""
    if kind not in fields:
        return []
    what = where.rsplit(".", 1)[-1]
    return [(f"{where}.{name}", f"is not used by {what} kind {kind!r} (only {_users(fields, name)} use it): "
                                f"remove it, or choose one of those kinds")
            for name in kind_fields if message.HasField(name) and name not in fields[kind]]
