"""Metric names, read from the messages that carry them, and the conversions of a metrics row.

EPOCH_FIELDS are the fields of fusetrain.v1.EpochMetrics in field-number order: the columns of
every per-epoch metrics array (the worker's progress batches, a result's history, the client's
History). The engine keeps its own EpochMetrics dataclass with the same names in the same order
(it imports no protobuf); tests/wire/test_metrics.py holds the two together.

A metric that does not apply (no validation set, no accuracy for a regression) is NaN in a row
and unset in a message: the optional fields of the message are OPTIONAL_FIELDS.
"""

from __future__ import annotations

import math

from fusetrain.v1 import service_pb2 as pb


def _names(message) -> tuple:
    return tuple(f.name for f in sorted(message.DESCRIPTOR.fields, key=lambda f: f.number))


def _optional(message) -> tuple:
    return tuple(f.name for f in sorted(message.DESCRIPTOR.fields, key=lambda f: f.number)
                 if f.has_presence)


EPOCH_FIELDS = _names(pb.EpochMetrics)      # epoch, train_loss, ..., samples_per_second
FINAL_FIELDS = _names(pb.FinalMetrics)      # train_loss, train_accuracy, val_loss, val_accuracy
OPTIONAL_FIELDS = _optional(pb.EpochMetrics)  # unset when they do not apply (NaN in a row)

_REQUIRED_AFTER_LOSS = tuple(n for n in EPOCH_FIELDS[2:] if n not in OPTIONAL_FIELDS)


def epoch_message(row) -> pb.EpochMetrics:
    """An EpochMetrics message from a row of EPOCH_FIELDS: NaN optional metrics are left unset,
    non-finite timings and learning rate sent as 0 (the loss is sent as it is: NaN when diverged)."""
    values = dict(zip(EPOCH_FIELDS, (float(v) for v in row)))
    m = pb.EpochMetrics(epoch=int(values["epoch"]), train_loss=values["train_loss"])
    for name in OPTIONAL_FIELDS:
        if not math.isnan(values[name]):
            setattr(m, name, values[name])
    for name in _REQUIRED_AFTER_LOSS:
        setattr(m, name, values[name] if math.isfinite(values[name]) else 0.0)
    return m


def epoch_row(m: pb.EpochMetrics) -> list:
    """The row of EPOCH_FIELDS of an EpochMetrics message (floats; NaN for unset metrics)."""
    return [float(getattr(m, name)) if name not in OPTIONAL_FIELDS or m.HasField(name) else math.nan
            for name in EPOCH_FIELDS]


def metrics_dict(m) -> dict:
    """The metrics of an EpochMetrics or FinalMetrics message by name, unset ones left out."""
    return {f.name: getattr(m, f.name) for f in sorted(m.DESCRIPTOR.fields, key=lambda f: f.number)
            if not f.has_presence or m.HasField(f.name)}
