"""Input normalisation, k-fold cross-validation and GetDataset, through the in-process servicer."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from google.protobuf import json_format
from service_helpers import npz_bytes, upload, wait_done

from fusetrain import engine
from fusetrain.engine.metrics import class_codes
from fusetrain.service.dataprep import fit_normalization, fold_rows, normalize
from fusetrain.wire.tensors import array_to_tensor, tensor_to_array
from fusetrain.v1 import job_pb2, service_pb2 as pb


def data(rows: int = 60):
    rng = np.random.default_rng(0)
    labels = np.arange(rows) % 3
    x = (rng.normal(size=(rows, 3)) + 2 * labels[:, None]) * [1.0, 100.0, 0.01] + [5.0, -50.0, 0.0]
    return x, np.eye(3)[labels]


def spec(dataset_id: str, **extra) -> job_pb2.JobSpec:
    doc = {"model": {"inputs": 3, "layers": [{"units": 4, "activation": "tanh"},
                                             {"units": 3, "activation": "softmax"}],
                     "loss": "softmax_cross_entropy", "seed": 2},
           "optimizer": {"kind": "adam", "learning_rate": 0.05},
           "training": {"epochs": 20, "batch_size": 8, "seed": 3},
           "data": {"train": {"dataset_id": dataset_id}}}
    for path, value in extra.items():
        node = doc
        *parents, last = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return json_format.ParseDict(doc, job_pb2.JobSpec())


def test_fit_normalization_math():
    x = np.array([[0.0, 5.0, 1.0], [10.0, 5.0, 3.0]])
    kind, shift, scale = fit_normalization(job_pb2.Normalization(kind="minmax"), x, "float64")
    np.testing.assert_array_equal(shift, [0, 5, 1])
    np.testing.assert_array_equal(scale, [0.1, 1, 0.5])          # a constant column keeps scale 1
    _, shift, scale = fit_normalization(job_pb2.Normalization(kind="standardize"), x, "float32")
    assert shift.dtype == np.float32
    np.testing.assert_allclose(normalize(x, shift, scale, "float32").std(axis=0), [1, 0, 1], atol=1e-6)
    _, shift, scale = fit_normalization(job_pb2.Normalization(kind="minmax", all_columns=True),
                                        np.array([[0, 255], [3, 7]], dtype=np.uint8), "float32")
    assert shift.tolist() == [0] and scale.tolist() == [np.float32(1 / 255)]
    explicit = job_pb2.Normalization(kind="minmax", shift=array_to_tensor(np.array([1.0])),
                                     scale=array_to_tensor(np.array([2.0])))
    assert fit_normalization(explicit, x, "float64")[1:] == ([1.0], [2.0])
    assert fit_normalization(job_pb2.Normalization(), x, "float64") is None


def test_folds_partition_the_rows():
    parts = [fold_rows(23, 5, k, seed=1) for k in range(5)]
    held = np.concatenate([val for _, val in parts])
    assert sorted(held.tolist()) == list(range(23))
    for train, val in parts:
        assert set(train.tolist()) | set(val.tolist()) == set(range(23)) and not set(train) & set(val)


def test_normalised_job_matches_the_engine_and_predict_applies_it(local):
    x, y = data()
    ds = upload(local, npz_bytes(x=x, y=y))
    job = local.SubmitJob(pb.SubmitJobRequest(spec=spec(ds.id, **{"model.normalization": {"kind": "standardize"}})))
    assert wait_done(local, job.id).state == pb.SUCCEEDED
    result = local.GetResult(pb.GetResultRequest(job_id=job.id))
    assert result.normalization.kind == "standardize"
    shift = tensor_to_array(result.normalization.shift, "shift")
    scale = tensor_to_array(result.normalization.scale, "scale")
    assert shift.dtype == np.float32 and shift.shape == (3,)
    np.testing.assert_allclose(shift, x.mean(axis=0), rtol=1e-6)
    # The same training on pre-normalised inputs in the engine alone: identical weights.
    model = engine.ModelSpec(3, [engine.LayerSpec(4, "tanh"), engine.LayerSpec(3, "softmax")],
                             loss="softmax_cross_entropy", seed=2)
    direct = engine.train(model, engine.OptimizerSpec("adam", learning_rate=0.05),
                          engine.TrainConfig(epochs=20, batch_size=8, seed=3, threads=1),
                          normalize(x, shift, scale, "float32"), y)
    got = [tensor_to_array(layer.weights, "w") for layer in result.layers]
    for (w, _), g in zip(direct.weights, got):
        assert w.tobytes() == g.tobytes()
    # Predict takes raw inputs.
    out = local.Predict(pb.PredictRequest(job_id=job.id, x=array_to_tensor(x[:5])))
    want = engine.predict(model, direct.weights, normalize(x[:5], shift, scale, "float32"))
    np.testing.assert_array_equal(tensor_to_array(out.y, "y"), want)


def test_cross_validation_holds_out_one_fold(local):
    x, y = data(50)
    ds = upload(local, npz_bytes(x=x, y=y))
    job = local.SubmitJob(pb.SubmitJobRequest(spec=spec(
        ds.id, **{"data.cross_validation": {"folds": 5, "fold": 2, "seed": 7},
                  "model.normalization": {"kind": "minmax"}})))
    assert wait_done(local, job.id).state == pb.SUCCEEDED
    result = local.GetResult(pb.GetResultRequest(job_id=job.id))
    assert result.final.HasField("val_accuracy")
    train, val = fold_rows(50, 5, 2, 7, class_codes(y, "softmax_cross_entropy"))    # stratified: class targets
    shift = tensor_to_array(result.normalization.shift, "shift")
    np.testing.assert_allclose(shift, x[train].min(axis=0).astype(np.float32))    # fitted on the training folds
    model = engine.ModelSpec(3, [engine.LayerSpec(4, "tanh"), engine.LayerSpec(3, "softmax")],
                             loss="softmax_cross_entropy", seed=2)
    weights = [(tensor_to_array(layer.weights, "w"), tensor_to_array(layer.bias, "b")) for layer in result.layers]
    scale = tensor_to_array(result.normalization.scale, "scale")
    acc = engine.evaluate(model, weights, normalize(x[val], shift, scale, "float32"), y[val])["accuracy"]
    assert result.final.val_accuracy == pytest.approx(acc)


def test_validation_fraction_rows_stay_out_of_the_normalization(local):
    x, y = data(80)
    ds = upload(local, npz_bytes(x=x, y=y))
    job = local.SubmitJob(pb.SubmitJobRequest(spec=spec(
        ds.id, **{"training.validation_fraction": 0.25, "model.normalization": {"kind": "minmax"}})))
    assert wait_done(local, job.id).state == pb.SUCCEEDED
    result = local.GetResult(pb.GetResultRequest(job_id=job.id))
    config = engine.TrainConfig(epochs=20, batch_size=8, seed=3, validation_fraction=0.25)
    x_train, y_train, x_val, y_val = engine.split_validation(config, x, y)
    shift = tensor_to_array(result.normalization.shift, "shift")
    scale = tensor_to_array(result.normalization.scale, "scale")
    np.testing.assert_allclose(shift, x_train.min(axis=0).astype(np.float32))      # the training rows only
    assert not np.allclose(shift, x.min(axis=0).astype(np.float32))
    # Same weights as the engine holding out those rows itself from pre-normalised data.
    model = engine.ModelSpec(3, [engine.LayerSpec(4, "tanh"), engine.LayerSpec(3, "softmax")],
                             loss="softmax_cross_entropy", seed=2)
    direct = engine.train(model, engine.OptimizerSpec("adam", learning_rate=0.05), config,
                          normalize(x, shift, scale, "float32"), y)
    for (w, _), layer in zip(direct.weights, result.layers):
        assert w.tobytes() == tensor_to_array(layer.weights, "w").tobytes()
    assert result.final.val_accuracy == pytest.approx(direct.final["val_accuracy"])


@pytest.mark.parametrize("extra,field", [
    ({"model.normalization": {"kind": "zscore"}}, "model.normalization.kind"),
    ({"model.normalization": {"kind": "minmax", "shift": {"values": [1, 2]}, "scale": {"values": [1, 2]}}},
     "model.normalization.shift"),
    ({"data.cross_validation": {"folds": 1}}, "data.cross_validation.folds"),
    ({"data.cross_validation": {"folds": 3, "fold": 3}}, "data.cross_validation.fold"),
    ({"data.cross_validation": {"folds": 3}, "training.validation_fraction": 0.2}, "data.cross_validation"),
    ({"data.train": {"file": {"path": "iris.csv"}}}, "data.train.file"),
])
def test_bad_normalization_folds_and_local_files(local, extra, field):
    x, y = data(10)
    ds = upload(local, npz_bytes(x=x, y=y))
    with pytest.raises(grpc.RpcError) as exc:
        local.SubmitJob(pb.SubmitJobRequest(spec=spec(ds.id, **extra)))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details().startswith(field + ":"), exc.value.details()


def test_get_dataset(local):
    x, y = data(10)
    blob = npz_bytes(x=x, y=y)
    import hashlib
    sha = hashlib.sha256(blob).hexdigest()
    with pytest.raises(grpc.RpcError) as exc:
        local.GetDataset(pb.GetDatasetRequest(dataset_id=sha))
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    upload(local, blob)
    ds = local.GetDataset(pb.GetDatasetRequest(dataset_id=sha))
    assert ds.id == sha and ds.already_present and [a.name for a in ds.arrays] == ["x", "y"]
