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
    assert metrics.OPTIONAL_FIELDS == ("train_accuracy", "val_loss", "val_accuracy", "val_macro_f1", "val_mae",
                                       "val_rmse", "val_r2")
    assert metrics.FINAL_FIELDS[:4] == ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    assert metrics.CONFUSION_FIELDS == ("train_confusion", "val_confusion")


def test_the_engine_and_the_wire_agree_on_the_metric_columns():
    # The engine keeps its own dataclass; its fields must be the wire's, in the wire's order,
    # because a History's rows travel as they are (jobfn.metrics_array, the store, the client).
    engine_fields = tuple(f.name for f in dataclasses.fields(engine_result.EpochMetrics))
    assert engine_fields == metrics.EPOCH_FIELDS
    assert engine_result.FIELDS == metrics.EPOCH_FIELDS
    assert ex.METRIC_FIELDS == metrics.EPOCH_FIELDS
    # Every final score is an epoch metric of the validation rows, or its twin for the training rows.
    scores = set(metrics.FINAL_FIELDS) - set(metrics.CONFUSION_FIELDS)
    assert {name.replace("train_", "val_") for name in scores} <= set(metrics.EPOCH_FIELDS)
    from fusetrain.engine.metrics import NAMES
    assert {f"{p}_{n}" for p in ("train", "val") for n in NAMES} <= scores


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
    row = [7, 0.25, nan, 0.5, nan, 0.01, 0.002, 1.5e6, nan, nan, nan, nan]
    m = metrics.epoch_message(row)
    assert m.epoch == 7 and m.train_loss == 0.25 and m.val_loss == 0.5
    assert not m.HasField("train_accuracy") and not m.HasField("val_accuracy")
    back = metrics.epoch_row(m)
    assert back[:2] == [7.0, 0.25] and math.isnan(back[2]) and back[3] == 0.5 and math.isnan(back[4])
    assert back[5:8] == [0.01, 0.002, 1.5e6] and all(math.isnan(v) for v in back[8:])
    assert metrics.metrics_dict(m) == {"epoch": 7, "train_loss": 0.25, "val_loss": 0.5, "learning_rate": 0.01,
                                       "seconds": 0.002, "samples_per_second": 1.5e6}


def test_a_diverged_loss_travels_and_non_finite_timings_do_not():
    m = metrics.epoch_message([3, math.nan, 0.5, math.nan, math.nan, math.inf, math.nan, 10.0, 0.75, math.nan,
                               math.nan, math.nan])
    assert math.isnan(m.train_loss)
    assert m.train_accuracy == 0.5
    assert m.learning_rate == 0.0 and m.seconds == 0.0 and m.samples_per_second == 10.0
    assert m.val_macro_f1 == 0.75 and not m.HasField("val_r2")


def test_final_metrics_dict():
    final = pb.FinalMetrics(train_loss=0.1, val_accuracy=0.9)
    assert metrics.metrics_dict(final) == {"train_loss": 0.1, "val_accuracy": 0.9}


def test_final_metrics_with_confusion_matrices_round_trip():
    import numpy as np
    cm = np.array([[5.0, 1.0], [0.0, 4.0]])
    multi = np.arange(12.0).reshape(3, 2, 2)
    final = {"train_loss": 0.2, "train_accuracy": 0.9, "val_loss": math.nan, "train_macro_f1": 0.89,
             "train_confusion": cm, "val_confusion": multi, "val_r2": None}
    m = metrics.final_message(final)
    assert list(m.train_confusion.shape) == [2, 2] and list(m.val_confusion.shape) == [3, 2, 2]
    assert not m.HasField("val_loss") and not m.HasField("val_r2")
    back = metrics.metrics_dict(pb.FinalMetrics.FromString(m.SerializeToString()))
    assert back == {"train_loss": 0.2, "train_accuracy": 0.9, "train_macro_f1": 0.89,
                    "train_confusion": cm.tolist(), "val_confusion": multi.tolist()}
    assert metrics.final_message({"train_loss": math.nan}).train_loss == 0.0
    bad = pb.ConfusionMatrix(shape=[2, 2], counts=[1.0, 2.0])
    try:
        metrics.confusion_array(bad)
    except ValueError as exc:
        assert "shape [2, 2] has 2 counts" in str(exc)
    else:
        raise AssertionError("a short confusion matrix was accepted")


def test_higher_is_better():
    assert [metrics.higher_is_better(n) for n in ("val_accuracy", "train_macro_f1", "val_r2", "val_loss",
                                                  "val_rmse", "train_mae")] == [True] * 3 + [False] * 3


def test_epoch_blocks_stored_before_the_new_metrics_still_decode():
    import numpy as np
    from fusetrain.service.messages import epoch_events, pack_epoch_block
    old = np.array([[1, 0.5, 0.75, 0.4, 0.8, 0.1, 0.01, 100.0], [2, 0.4, 0.8, 0.3, 0.9, 0.1, 0.01, 100.0]])
    payload = pack_epoch_block(old, 1000.0)                     # 1 + 8 columns a row, as stored then
    events = epoch_events("j", 5, payload, 2)
    assert [e.sequence for e in events] == [5, 6] and events[1].epoch.val_accuracy == 0.9
    assert not events[1].epoch.HasField("val_macro_f1")
    new = np.hstack([old, np.full((2, 4), 0.5)])
    assert epoch_events("j", 5, pack_epoch_block(new, 1000.0), 2)[0].epoch.val_r2 == 0.5
