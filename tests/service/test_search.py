"""Searches through the service: SubmitJobs with a Search, the result's table, the winner's spec
trained alone to the same weights, Predict with the winner, and errors that name the field."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from google.protobuf import json_format

from fusetrain.v1 import job_pb2, service_pb2 as pb
from fusetrain.wire.tensors import array_to_tensor

from service_helpers import npz_bytes, seeds_data, upload, wait_done


def base_spec(dataset_id: str) -> job_pb2.JobSpec:
    return json_format.ParseDict({
        "model": {"inputs": 7, "layers": [{"units": 5, "activation": "sigmoid"},
                                          {"units": 3, "activation": "sigmoid"}], "seed": 0},
        "optimizer": {"kind": "momentum", "learning_rate": 0.3},
        "training": {"epochs": 30, "batch_size": 8, "seed": 2, "validation_fraction": 0.25},
        "data": {"train": {"dataset_id": dataset_id}},
    }, job_pb2.JobSpec())


def search(kind: str = "halving", **fields) -> job_pb2.Search:
    return json_format.ParseDict({
        "kind": kind, "candidates": 9, "max_epochs": 18, "min_epochs": 2, "eta": 3, "seed": 4,
        "metric": "val_accuracy",
        "params": [{"field": "optimizer.learning_rate", "distribution": "log_uniform", "low": 0.01, "high": 1.0},
                   {"field": "optimizer.momentum", "distribution": "uniform", "low": 0.0, "high": 0.9},
                   {"field": "optimizer.weight_decay", "distribution": "log_uniform", "low": 1e-6, "high": 1e-3},
                   {"field": "model.seed", "distribution": "int", "low": 0, "high": 1000},
                   {"field": "model.layers[0].units", "distribution": "choice", "choices": [4, 8]}],
        **fields}, job_pb2.Search())


@pytest.fixture
def seeds_id(local):
    x, y = seeds_data()
    return upload(local, npz_bytes(x=x, y=y)).id


def run(stub, spec, s) -> tuple[pb.Job, pb.JobResult]:
    batch = stub.SubmitJobs(pb.SubmitJobsRequest(base=spec, search=s, labels={"suite": "search"}))
    assert len(batch.jobs) == 1
    job = wait_done(stub, batch.jobs[0].id)
    assert job.state == pb.SUCCEEDED, job.message
    return job, stub.GetResult(pb.GetResultRequest(job_id=job.id))


@pytest.mark.parametrize("kind", ["halving", "asha"])
def test_search_result_and_the_winner_alone(local, seeds_id, kind):
    job, result = run(local, base_spec(seeds_id), search(kind))
    table = result.search
    assert table.kind == kind and len(table.candidates) == 9 and job.spec.search.kind == kind
    assert job.labels["suite"] == "search"
    assert table.model_epochs == sum(c.epochs for c in table.candidates)
    assert table.model_epochs < 9 * 18
    best = table.candidates[0]
    assert best.index == table.winner and best.epochs == 18 and table.value == best.value
    top = [c.value for c in table.candidates if c.epochs == 18]
    assert top == sorted(top, reverse=True)           # val_accuracy: best first
    assert [r.epochs for r in best.rungs] == [2, 6, 18]
    assert result.final.val_accuracy == best.value and result.epochs_run == 18
    spec = table.winner_spec
    assert not spec.HasField("search") and spec.training.epochs == 18
    assert spec.optimizer.learning_rate == best.params["optimizer.learning_rate"]
    assert spec.model.layers[0].units == best.params["model.layers[0].units"]
    # The winner's spec as an ordinary job: the same weights, bit for bit.
    alone = wait_done(local, local.SubmitJob(pb.SubmitJobRequest(spec=spec)).id)
    again = local.GetResult(pb.GetResultRequest(job_id=alone.id))
    assert again.weights_sha256 == result.weights_sha256
    assert again.final.val_accuracy == result.final.val_accuracy
    # And any other candidate's spec (base + its values, for the epochs it got).
    other = [c for c in table.candidates if not c.diverged][-1]
    spec = job_pb2.JobSpec()
    spec.CopyFrom(table.winner_spec)
    for field, value in json_format.MessageToDict(other.params).items():
        if field == "optimizer.learning_rate":
            spec.optimizer.learning_rate = value
        elif field == "optimizer.momentum":
            spec.optimizer.momentum = value
        elif field == "optimizer.weight_decay":
            spec.optimizer.weight_decay = value
        elif field == "model.seed":
            spec.model.seed = int(value)
        else:
            spec.model.layers[0].units = int(value)
    spec.training.epochs = other.epochs
    short = wait_done(local, local.SubmitJob(pb.SubmitJobRequest(spec=spec)).id)
    assert local.GetResult(pb.GetResultRequest(job_id=short.id)).final.val_accuracy == other.value
    x, _ = seeds_data()
    y = local.Predict(pb.PredictRequest(job_id=job.id, x=array_to_tensor(x[:5]))).y
    assert list(y.shape) == [5, 3]


def test_random_search_trains_every_candidate_fully_and_is_reproducible(local, seeds_id):
    s = search("random", candidates=4)
    s.ClearField("min_epochs")
    s.ClearField("eta")
    first, result = run(local, base_spec(seeds_id), s)
    assert [c.epochs for c in result.search.candidates] == [18] * 4
    assert result.search.model_epochs == 72
    assert len({c.index for c in result.search.candidates}) == 4
    _, second = run(local, base_spec(seeds_id), s)
    assert second.weights_sha256 == result.weights_sha256 and second.search == result.search


@pytest.mark.parametrize("change, field", [
    (lambda b, s: setattr(s, "kind", "bayes"), "search.kind"),
    (lambda b, s: setattr(s, "metric", "f1"), "search.metric"),
    (lambda b, s: setattr(s, "eta", 1.0), "search.eta"),
    (lambda b, s: setattr(s, "min_epochs", 40), "search.min_epochs"),
    (lambda b, s: setattr(s, "candidates", 0), "search.candidates"),
    (lambda b, s: b.training.ClearField("validation_fraction"), "search"),
    (lambda b, s: setattr(s.params[0], "low", 0.0), "search.params[0].low"),
    (lambda b, s: setattr(s.params[1], "distribution", "beta"), "search.params[1].distribution"),
    (lambda b, s: setattr(s.params[1], "field", "training.epochs"), "search.params[1].field"),
    (lambda b, s: setattr(s.params[1], "field", "optimizer.learning_rate"), "search.params[1].field"),
    (lambda b, s: setattr(s.params[2], "field", "optimizer.no_such"), "search.params[2].field"),
    (lambda b, s: [c.__setattr__("number_value", 0) for c in s.params[4].choices],
     "search.candidates[0].model.layers[0].units"),
    (lambda b, s: setattr(b.optimizer.schedule, "kind", "cosine"), "optimizer.schedule.kind"),
])
def test_bad_searches_name_the_field(local, seeds_id, change, field):
    base, s = base_spec(seeds_id), search()
    change(base, s)
    with pytest.raises(grpc.RpcError) as err:
        local.SubmitJobs(pb.SubmitJobsRequest(base=base, search=s))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(field + ":"), err.value.details()


def test_search_with_a_grid_is_refused(local, seeds_id):
    with pytest.raises(grpc.RpcError) as err:
        local.SubmitJobs(pb.SubmitJobsRequest(base=base_spec(seeds_id), search=search(),
                                              grid=[pb.GridAxis(field="model.seed", values=[])]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.value.details().startswith("search:")


def test_defaults_are_written_into_the_stored_spec(local, seeds_id):
    s = job_pb2.Search(candidates=3, params=search().params[:1])
    batch = local.SubmitJobs(pb.SubmitJobsRequest(base=base_spec(seeds_id), search=s))
    stored = batch.jobs[0].spec.search
    assert (stored.kind, stored.metric, stored.max_epochs, stored.eta, stored.min_epochs) == \
        ("halving", "val_loss", 30, 3.0, 1)
    assert wait_done(local, batch.jobs[0].id).state == pb.SUCCEEDED
    np.testing.assert_equal(len(local.GetResult(pb.GetResultRequest(job_id=batch.jobs[0].id)).search.candidates), 3)
