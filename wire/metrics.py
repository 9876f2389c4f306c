"""Metric names, read from the messages that carry them, and the conversions of a metrics row.

EPOCH_FIELDS are the fields of fusetrain.v1.EpochMetrics in field-number order: the columns of
every per-epoch metrics array (the worker's progress batches, a result's history, the client's
History). The engine keeps its own EpochMetrics dataclass with the same names in the same order
(it imports no protobuf); tests/wire/test_metrics.py holds the two together.

A metric that does not apply (no validation set, no accuracy for a regression) is NaN in a row
and unset in a message: the optional fields of the message are OPTIONAL_FIELDS.

FinalMetrics adds the training rows' scores and the confusion matrices (ConfusionMatrix messages,
numpy arrays in a result dict, nested lists in the client's dicts).
"""

from __future__ import annotations

import math

import numpy as np

from fusetrain.v1 import service_pb2 as pb


def _names(message) -> tuple:
    return tuple(f.name for f in sorted(message.DESCRIPTOR.fields, key=lambda f: f.number))


def _optional(message) -> tuple:
    return tuple(f.name for f in sorted(message.DESCRIPTOR.fields, key=lambda f: f.number)
                 if f.has_presence)


EPOCH_FIELDS = _names(pb.EpochMetrics)      # epoch, train_loss, ..., samples_per_second
FINAL_FIELDS = _names(pb.FinalMetrics)      # train_loss, train_accuracy, val_loss, val_accuracy, ...
CONFUSION_FIELDS = tuple(f.name for f in pb.FinalMetrics.DESCRIPTOR.fields if f.message_type is not None)
# Scores where more is better (a sweep's table sorts them descending); losses and errors: less.
HIGHER_IS_BETTER = ("accuracy", "macro_f1", "r2")


def higher_is_better(name: str) -> bool:
    """Whether a larger value of metric `name` ("val_accuracy", "train_r2", ...) is better."""
    return name.endswith(HIGHER_IS_BETTER)


def is_fraction(name: str) -> bool:
    """Accuracy and F1 lie in [0, 1] and read best as percentages."""
    return name.endswith(("accuracy", "macro_f1"))
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


def confusion_message(counts) -> pb.ConfusionMatrix:
    a = np.asarray(counts, dtype=np.float64)
    return pb.ConfusionMatrix(shape=list(a.shape), counts=a.reshape(-1).tolist())


def confusion_array(m: pb.ConfusionMatrix) -> np.ndarray:
    """The counts of a ConfusionMatrix as a float64 array of its shape."""
    counts = np.array(m.counts, dtype=np.float64)
    shape = tuple(m.shape)
    if math.prod(shape) != counts.size:
        raise ValueError(f"a confusion matrix of shape {list(shape)} has {counts.size} counts")
    return counts.reshape(shape)


def final_message(final: dict) -> pb.FinalMetrics:
    """A FinalMetrics message from a result's final dict (engine.TrainResult.final): NaN, None and
    missing metrics are left unset, the train loss sent as 0 when it is not finite."""
    loss = final.get("train_loss")
    m = pb.FinalMetrics(train_loss=loss if loss is not None and math.isfinite(loss) else 0.0)
    for name in FINAL_FIELDS[1:]:
        value = final.get(name)
        if value is None:
            continue
        if name in CONFUSION_FIELDS:
            getattr(m, name).CopyFrom(confusion_message(value))
        elif not math.isnan(value):
            setattr(m, name, value)
    return m


def metrics_dict(m) -> dict:
    """The metrics of an EpochMetrics or FinalMetrics message by name, unset ones left out; a
    confusion matrix as nested lists of counts."""
    return {f.name: confusion_array(getattr(m, f.name)).tolist() if f.message_type is not None
            else getattr(m, f.name)
            for f in sorted(m.DESCRIPTOR.fields, key=lambda f: f.number)
            if not f.has_presence or m.HasField(f.name)}
