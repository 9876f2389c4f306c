"""fusetrain.wire.metrics: the metric names come from the EpochMetrics message, and the engine's
own dataclass (which imports no protobuf) has the same fields in the same order."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

from fusetrain.engine import result as engine_result
from fusetrain.service import executor as ex
from fusetrain.v1 import service_pb2 as pb
from fusetrain.wire import metrics


def test_epoch_fields_are_the_message_fields_in_number_order():
    fields = sorted(pb.EpochMetrics.DESCRIPTOR.fields, key=lambda f: f.number)
    assert metrics.EPOCH_FIELDS == tuple(f.name for f in fields)
    assert metrics.EPOCH_FIELDS[:2] == ("epoch", "train_loss")
    assert metrics.OPTIONAL_FIELDS == ("train_accuracy", "val_loss", "val_accuracy")
    assert metrics.FINAL_FIELDS == ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


def test_the_engine_and_the_wire_agree_on_the_metric_columns():
    # The engine keeps its own dataclass; its fields must be the wire's, in the wire's order,
    # because a History's rows travel as they are (jobfn.metrics_array, the store, the client).
    engine_fields = tuple(f.name for f in dataclasses.fields(engine_result.EpochMetrics))
    assert engine_fields == metrics.EPOCH_FIELDS
    assert engine_result.FIELDS == metrics.EPOCH_FIELDS
    assert ex.METRIC_FIELDS == metrics.EPOCH_FIELDS
    assert set(metrics.FINAL_FIELDS) <= set(metrics.EPOCH_FIELDS)


def test_the_engine_imports_no_protobuf_and_no_wire():
    code = ("import sys, fusetrain.engine\n"
            "bad = sorted(m for m in sys.modules if m.startswith(('google.protobuf', 'fusetrain.wire', "
            "'fusetrain.v1', 'grpc')))\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_row_message_round_trip_leaves_absent_metrics_unset():
    nan = math.nan
    row = [7, 0.25, nan, 0.5, nan, 0.01, 0.002, 1.5e6]
    m = metrics.epoch_message(row)
    assert m.epoch == 7 and m.train_loss == 0.25 and m.val_loss == 0.5
    assert not m.HasField("train_accuracy") and not m.HasField("val_accuracy")
    back = metrics.epoch_row(m)
    assert back[:2] == [7.0, 0.25] and math.isnan(back[2]) and back[3] == 0.5 and math.isnan(back[4])
    assert back[5:] == [0.01, 0.002, 1.5e6]
    assert metrics.metrics_dict(m) == {"epoch": 7, "train_loss": 0.25, "val_loss": 0.5, "learning_rate": 0.01,
                                       "seconds": 0.002, "samples_per_second": 1.5e6}


def test_a_diverged_loss_travels_and_non_finite_timings_do_not():
    m = metrics.epoch_message([3, math.nan, 0.5, math.nan, math.nan, math.inf, math.nan, 10.0])
    assert math.isnan(m.train_loss)
    assert m.train_accuracy == 0.5
    assert m.learning_rate == 0.0 and m.seconds == 0.0 and m.samples_per_second == 10.0


def test_final_metrics_dict():
    final = pb.FinalMetrics(train_loss=0.1, val_accuracy=0.9)
    assert metrics.metrics_dict(final) == {"train_loss": 0.1, "val_accuracy": 0.9}
