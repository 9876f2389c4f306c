"""Cross-validation folds: stratified by default for class targets (scikit-learn's StratifiedKFold
allocation), repeated k-fold, the plain split kept for regression targets and stratify: false."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from google.protobuf import json_format
from service_helpers import npz_bytes, upload, wait_done

from fusetrain.engine.metrics import class_codes
from fusetrain.service.dataprep import fold_rows, split_folds
from fusetrain.v1 import job_pb2, service_pb2 as pb
from fusetrain.wire.metrics import confusion_array

model_selection = pytest.importorskip("sklearn.model_selection", reason="scikit-learn checks the folds")


def imbalanced(seed=0):
    """Classes of 50, 31, 12 and 4 rows, each appearing first in class order (as scikit-learn
    numbers them), the rest shuffled."""
    labels = np.repeat(np.arange(4), [50, 31, 12, 4])
    rest = np.random.default_rng(seed).permutation(np.delete(labels, [0, 50, 81, 93]))
    return np.concatenate([[0, 1, 2, 3], rest])


def cv(**fields) -> job_pb2.CrossValidation:
    return json_format.ParseDict(fields, job_pb2.CrossValidation())


@pytest.mark.filterwarnings("ignore:The least populated class")     # 4 rows of class 3 in 5 folds
@pytest.mark.parametrize("k", [2, 3, 5])
def test_stratified_folds_allocate_classes_as_sklearn(k):
    labels = imbalanced()
    n = len(labels)
    sk = model_selection.StratifiedKFold(k, shuffle=True, random_state=0)
    want = [np.bincount(labels[val], minlength=4) for _, val in sk.split(np.zeros(n), labels)]
    held = []
    for fold in range(k):
        train, val = fold_rows(n, k, fold, seed=11, strata=labels)
        assert not set(train.tolist()) & set(val.tolist()) and len(train) + len(val) == n
        counts = np.bincount(labels[val], minlength=4)
        np.testing.assert_array_equal(counts, want[fold])          # the same class counts, fold by fold
        held.extend(val.tolist())
    assert sorted(held) == list(range(n))                           # every row validated exactly once


def test_repeats_reshuffle_and_each_validates_every_row_once():
    labels = imbalanced(1)
    y = np.eye(4)[labels]
    x = np.arange(len(y), dtype=float)[:, None]
    seen = {}
    for repeat in range(3):
        rows = []
        for fold in range(4):
            _, _, xv, yv = split_folds(x, y, cv(folds=4, fold=fold, seed=5, repeats=3, repeat=repeat), "half_sse")
            assert np.all(np.abs(yv.sum(axis=0) - np.bincount(labels) / 4) < 1)     # floor or ceil
            rows.append(xv[:, 0].astype(int).tolist())
        assert sorted(sum(rows, [])) == list(range(len(y)))
        seen[repeat] = rows
    assert seen[0] != seen[1] != seen[2]
    # Repeat r is the split of seed + r.
    _, _, xv, _ = split_folds(x, y, cv(folds=4, fold=2, seed=6), "half_sse")
    assert xv[:, 0].astype(int).tolist() == seen[1][2]


def test_plain_split_for_regression_and_stratify_false_is_the_old_split():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(23, 2))
    order = np.random.default_rng(9).permutation(23)
    old = np.array_split(order, 5)                                   # the split before stratification
    y_reg = rng.normal(size=(23, 1))
    y_cls = np.eye(3)[np.arange(23) % 3]
    for y, extra, loss in ((y_reg, {}, "mse"), (y_cls, {"stratify": False}, "softmax_cross_entropy")):
        for fold in range(5):
            _, _, xv, _ = split_folds(x, y, cv(folds=5, fold=fold, seed=9, **extra), loss)
            np.testing.assert_array_equal(xv, x[old[fold]])
    assert class_codes(y_reg, "mse") is None


def spec(dataset_id: str, cross_validation: dict) -> job_pb2.JobSpec:
    doc = {"model": {"inputs": 3, "layers": [{"units": 4, "activation": "tanh"},
                                             {"units": 3, "activation": "softmax"}],
                     "loss": "softmax_cross_entropy", "seed": 2},
           "optimizer": {"kind": "adam", "learning_rate": 0.05},
           "training": {"epochs": 5, "batch_size": 8, "seed": 3},
           "data": {"train": {"dataset_id": dataset_id}, "cross_validation": cross_validation}}
    return json_format.ParseDict(doc, job_pb2.JobSpec())


def test_a_job_validates_a_stratified_fold_and_reports_its_confusion(local):
    labels = np.minimum(imbalanced(3)[:60], 2)
    x = np.random.default_rng(4).normal(size=(60, 3)) + labels[:, None]
    y = np.eye(3)[labels]
    ds = upload(local, npz_bytes(x=x, y=y))
    totals = y.sum(axis=0)
    held = np.zeros(3)
    for fold in range(4):
        job = local.SubmitJob(pb.SubmitJobRequest(spec=spec(ds.id, {"folds": 4, "fold": fold, "seed": 1})))
        assert wait_done(local, job.id).state == pb.SUCCEEDED
        final = local.GetResult(pb.GetResultRequest(job_id=job.id)).final
        per_class = confusion_array(final.val_confusion).sum(axis=1)          # the fold's true classes
        assert np.all(np.abs(per_class - totals / 4) < 1)
        assert confusion_array(final.train_confusion).sum() == 60 - per_class.sum()
        assert final.HasField("val_macro_f1") and not final.HasField("val_r2")
        held += per_class
    np.testing.assert_array_equal(held, totals)


@pytest.mark.parametrize("fields,field", [
    ({"folds": 3, "repeats": -1}, "data.cross_validation.repeats"),
    ({"folds": 3, "repeats": 2, "repeat": 2}, "data.cross_validation.repeat"),
    ({"folds": 3, "repeat": 1}, "data.cross_validation.repeat"),
])
def test_bad_repeats_name_the_field(local, fields, field):
    x = np.zeros((12, 3))
    y = np.eye(3)[np.arange(12) % 3]
    ds = upload(local, npz_bytes(x=x, y=y))
    with pytest.raises(grpc.RpcError) as exc:
        local.SubmitJob(pb.SubmitJobRequest(spec=spec(ds.id, fields)))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details().startswith(field + ":"), exc.value.details()
