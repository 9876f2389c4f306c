"""Dropout, sample and class weights and the plateau schedule through the service (in-process servicer)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from google.protobuf import json_format
from service_helpers import npz_bytes, upload, wait_done

from fusetrain import engine
from fusetrain.wire.tensors import array_to_tensor, tensor_to_array
from fusetrain.v1 import job_pb2, service_pb2 as pb

MODEL = engine.ModelSpec(6, [engine.LayerSpec(12, "relu", dropout=0.2), engine.LayerSpec(3, "softmax")],
                         loss="softmax_cross_entropy", seed=2)
OPTIMIZER = engine.OptimizerSpec("momentum", learning_rate=0.3, schedule=engine.ScheduleSpec(
    kind="plateau", factor=0.5, patience=2, threshold=0.0))


def rows(n: int = 90):
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(n // 2, int), np.arange(n - n // 2) % 2 + 1]
    x = (rng.normal(size=(n, 6)) + labels[:, None]).astype(np.float32)
    return x, np.eye(3, dtype=np.float32)[labels], rng.uniform(0.5, 2.0, n)


def job(data: dict, **training) -> job_pb2.JobSpec:
    return json_format.ParseDict({
        "model": {"inputs": 6, "layers": [{"units": 12, "activation": "relu", "dropout": 0.2},
                                          {"units": 3, "activation": "softmax"}],
                  "loss": "softmax_cross_entropy", "seed": 2},
        "optimizer": {"kind": "momentum", "learning_rate": 0.3,
                      "schedule": {"kind": "plateau", "factor": 0.5, "patience": 2, "threshold": 0.0}},
        "training": {"epochs": 25, "batch_size": 16, "seed": 3, "validation_fraction": 0.3, **training},
        "data": {"train": data},
    }, job_pb2.JobSpec())


def result_weights(result):
    return [(tensor_to_array(layer.weights, "w"), tensor_to_array(layer.bias, "b")) for layer in result.layers]


def test_a_job_with_every_feature_matches_the_engine(local):
    x, y, w = rows()
    ds = upload(local, npz_bytes(x=x, y=y, w=w))
    spec = job({"dataset_id": ds.id, "weight_array": "w"}, class_weight={"balanced": True})
    submitted = local.SubmitJob(pb.SubmitJobRequest(spec=spec))
    assert wait_done(local, submitted.id).state == pb.SUCCEEDED
    result = local.GetResult(pb.GetResultRequest(job_id=submitted.id))
    config = engine.TrainConfig(epochs=25, batch_size=16, seed=3, validation_fraction=0.3, class_weight="balanced",
                                threads=1)
    direct = engine.train(MODEL, OPTIMIZER, config, x, y, sample_weight=w)
    for (a, b), (c, d) in zip(direct.weights, result_weights(result)):
        assert a.tobytes() == c.tobytes() and b.tobytes() == d.tobytes()
    rates = [m.learning_rate for m in result.history]
    assert rates == direct.history.column("learning_rate").tolist() and min(rates) < 0.3
    assert result.final.val_accuracy == pytest.approx(direct.final["val_accuracy"])
    # Predict runs the whole network, without dropout.
    out = local.Predict(pb.PredictRequest(job_id=submitted.id, x=array_to_tensor(x[:7])))
    np.testing.assert_array_equal(tensor_to_array(out.y, "y"), engine.predict(MODEL, direct.weights, x[:7]))


def test_inline_sample_weights_and_explicit_class_weights(local):
    x, y, w = rows(30)
    data = {"x": json_format.MessageToDict(array_to_tensor(x)), "y": json_format.MessageToDict(array_to_tensor(y)),
            "sample_weight": {"values": w.tolist()}}
    spec = job(data, validation_fraction=0.0, epochs=6, class_weight={"weights": [1, 2, 3]})
    spec.optimizer.schedule.monitor = "train_loss"
    submitted = local.SubmitJob(pb.SubmitJobRequest(spec=spec))
    assert wait_done(local, submitted.id).state == pb.SUCCEEDED
    result = local.GetResult(pb.GetResultRequest(job_id=submitted.id))
    optimizer = engine.OptimizerSpec("momentum", learning_rate=0.3, schedule=engine.ScheduleSpec(
        kind="plateau", factor=0.5, patience=2, threshold=0.0, monitor="train_loss"))
    config = engine.TrainConfig(epochs=6, batch_size=16, seed=3, threads=1, class_weight=[1, 2, 3])
    direct = engine.train(MODEL, optimizer, config, x, y, sample_weight=w)
    for (a, _), (c, _) in zip(direct.weights, result_weights(result)):
        assert a.tobytes() == c.tobytes()
    assert result.final.train_loss == pytest.approx(direct.final["train_loss"], rel=1e-12)
    bad = job(dict(data, sample_weight={"values": w[:-1].tolist()}), validation_fraction=0.0)
    bad.optimizer.schedule.monitor = "train_loss"
    with pytest.raises(grpc.RpcError) as exc:
        local.SubmitJob(pb.SubmitJobRequest(spec=bad))
    assert exc.value.details().startswith("data.train.sample_weight:"), exc.value.details()


@pytest.mark.parametrize("edit,field", [
    (lambda s: setattr(s.model.layers[1], "dropout", 0.5), "model.layers[1].dropout"),
    (lambda s: setattr(s.model.layers[0], "dropout", 1.0), "model.layers[0].dropout"),
    (lambda s: setattr(s.training, "validation_fraction", 0.0), "optimizer.schedule.monitor"),
    (lambda s: setattr(s.optimizer.schedule, "kind", "cosine"), "optimizer.schedule.factor"),
    (lambda s: setattr(s.optimizer.schedule, "patience", 0), "optimizer.schedule.patience"),
    (lambda s: setattr(s.data.train, "weight_array", "weights"), "data.train.weight_array"),
    (lambda s: s.training.class_weight.SetInParent(), "training.class_weight"),
    (lambda s: s.training.class_weight.weights.extend([1, -1, 1]), "training.class_weight[1]"),
    (lambda s: setattr(s.data.train, "weight_array", "short"), "data.train.weight_array"),
])
def test_bad_specs_name_the_field(local, edit, field):
    x, y, w = rows(20)
    ds = upload(local, npz_bytes(x=x, y=y, w=w, short=w[:5]))
    spec = job({"dataset_id": ds.id})
    edit(spec)
    with pytest.raises(grpc.RpcError) as exc:
        local.SubmitJob(pb.SubmitJobRequest(spec=spec))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details().startswith(field + ":"), exc.value.details()
