"""The servicer in-process (real gRPC channel, interceptor, manager and store; jobs on a thread)."""

from __future__ import annotations

import threading

import grpc
import numpy as np
import pytest
from google.protobuf import json_format, struct_pb2

from fusetrain.wire.tensors import array_to_tensor
from fusetrain.v1 import job_pb2, service_pb2 as pb

from service_helpers import long_spec, npz_bytes, seeds_data, upload, wait_done, watch, xor_spec

INVALID, EXHAUSTED = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED


def _edit(spec, path, value):
    d = json_format.MessageToDict(spec, preserving_proto_field_name=True)
    target = d
    for key in path[:-1]:
        target = target.setdefault(key, {}) if isinstance(key, str) else target[key]
    if value is None:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    return json_format.ParseDict(d, job_pb2.JobSpec())


def _nan_x():
    spec = xor_spec()
    spec.data.train.x.values[3] = float("nan")
    return spec


BAD_SPECS = [
    # (case, spec, code, field the message must start with)
    ("no model", _edit(xor_spec(), ["model"], None), INVALID, "model"),
    ("no layers", _edit(xor_spec(), ["model", "layers"], []), INVALID, "model.layers"),
    ("zero units", _edit(xor_spec(), ["model", "layers", 0, "units"], 0), INVALID, "model.layers[0].units"),
    ("unknown activation", _edit(xor_spec(), ["model", "layers", 0, "activation"], "swish"), INVALID,
     "model.layers[0].activation"),
    ("softmax hidden", _edit(xor_spec(), ["model", "layers", 0, "activation"], "softmax"), INVALID,
     "model.layers[0].activation"),
    ("unknown loss", _edit(xor_spec(), ["model", "loss"], "hinge"), INVALID, "model.loss"),
    ("unknown dtype", _edit(xor_spec(), ["model", "dtype"], "float16"), INVALID, "model.dtype"),
    ("unknown initializer", _edit(xor_spec(), ["model", "initializer"], "zeros"), INVALID, "model.initializer"),
    ("unknown optimizer", _edit(xor_spec(), ["optimizer", "kind"], "lbfgs"), INVALID, "optimizer.kind"),
    ("negative rate", _edit(xor_spec(), ["optimizer", "learning_rate"], -1), INVALID, "optimizer.learning_rate"),
    ("unknown schedule", _edit(xor_spec(), ["optimizer", "schedule"], {"kind": "cyclic"}), INVALID,
     "optimizer.schedule.kind"),
    ("zero epochs", _edit(xor_spec(), ["training", "epochs"], 0), INVALID, "training.epochs"),
    ("too many epochs", _edit(xor_spec(), ["training", "epochs"], 20_000_000), EXHAUSTED, "training.epochs"),
    ("negative batch", _edit(xor_spec(), ["training", "batch_size"], -1), INVALID, "training.batch_size"),
    ("validation 1.0", _edit(xor_spec(), ["training", "validation_fraction"], 1.0), INVALID,
     "training.validation_fraction"),
    ("too many threads", _edit(xor_spec(), ["training", "threads"], 64), EXHAUSTED, "training.threads"),
    ("time limit over", _edit(xor_spec(), ["training", "time_limit_seconds"], 1e6), EXHAUSTED,
     "training.time_limit_seconds"),
    ("time limit zero", _edit(xor_spec(), ["training", "time_limit_seconds"], -1), INVALID,
     "training.time_limit_seconds"),
    ("val_loss without validation", _edit(xor_spec(), ["training", "early_stopping"], {"patience": 3}),
     INVALID, "training.early_stopping.monitor"),
    ("too many parameters", _edit(xor_spec(), ["model", "layers"], [{"units": 60_000}, {"units": 60_000}, {"units": 1}]), EXHAUSTED,
     "model.layers"),
    ("weights shape", _edit(xor_spec(), ["model", "layers", 0, "weights"], {"shape": [2, 2], "values": [1, 2, 3, 4]}),
     INVALID, "model.layers[0].weights"),
    ("bias size", _edit(xor_spec(), ["model", "layers", 1, "bias"], {"values": [1, 2]}), INVALID,
     "model.layers[1].bias"),
    ("no data", _edit(xor_spec(), ["data"], None), INVALID, "data.train"),
    ("x columns", _edit(xor_spec(), ["data", "train", "x"], {"shape": [4, 1], "values": [0, 1, 2, 3]}), INVALID,
     "data.train.x"),
    ("y rows", _edit(xor_spec(), ["data", "train", "y"], {"shape": [3, 1], "values": [0, 1, 1]}), INVALID,
     "data.train.y"),
    ("x shape vs values", _edit(xor_spec(), ["data", "train", "x"], {"shape": [4, 2], "values": [0, 1]}),
     INVALID, "data.train.x"),
    ("x dtype", _edit(xor_spec(), ["data", "train", "x"], {"dtype": "complex64", "values": [0]}), INVALID,
     "data.train.x.dtype"),
    ("NaN in x", _nan_x(), INVALID, "data.train.x"),
    ("BCE targets", _edit(xor_spec(), ["data", "train", "y"], {"shape": [4, 1], "values": [0, 2, 1, 0]}),
     INVALID, "data.train.y"),
    ("unknown dataset", _edit(xor_spec(), ["data", "train"], {"dataset_id": "ab" * 32}), INVALID,
     "data.train.dataset_id"),
    ("dataset and inline", _edit(xor_spec(), ["data", "train", "dataset_id"], "ab" * 32), INVALID, "data.train"),
    ("bad label key", _edit(xor_spec(), ["labels"], {"no spaces": "x"}), INVALID, "labels"),
]


@pytest.mark.parametrize("case,spec,code,field", BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
def test_bad_spec_gets_its_code_and_names_the_field(local, case, spec, code, field):
    with pytest.raises(grpc.RpcError) as err:
        local.SubmitJob(pb.SubmitJobRequest(spec=spec))
    assert err.value.code() == code, err.value.details()
    assert err.value.details().startswith(field + ":"), err.value.details()


def test_bad_requests_get_their_codes(local):
    cases = [
        (lambda: local.GetJob(pb.GetJobRequest(job_id="nope")), grpc.StatusCode.NOT_FOUND, "job"),
        (lambda: local.GetResult(pb.GetResultRequest(job_id="nope")), grpc.StatusCode.NOT_FOUND, "job"),
        (lambda: local.CancelJob(pb.CancelJobRequest(job_id="nope")), grpc.StatusCode.NOT_FOUND, "job"),
        (lambda: local.DeleteJob(pb.DeleteJobRequest(job_id="nope")), grpc.StatusCode.NOT_FOUND, "job"),
        (lambda: list(watch(local, "nope")), grpc.StatusCode.NOT_FOUND, "job"),
        (lambda: local.ListJobs(pb.ListJobsRequest(page_size=5000)), INVALID, "page_size:"),
        (lambda: local.ListJobs(pb.ListJobsRequest(page_token="x")), INVALID, "page_token:"),
        (lambda: upload(local, b"not a zip file"), INVALID, "chunk:"),
        (lambda: upload(local, npz_bytes(x=np.array(["a"]))), INVALID, "chunk:"),
        (lambda: upload(local, npz_bytes(x=np.array([np.inf]))), INVALID, "chunk:"),
        (lambda: upload(local, b"\0" * (9 << 20)), EXHAUSTED, "chunk:"),
        (lambda: local.UploadDataset(iter([pb.UploadDatasetRequest(format="csv", chunk=b"1")])), INVALID,
         "format:"),
        (lambda: local.SubmitJobs(pb.SubmitJobsRequest()), INVALID, "specs:"),
        (lambda: local.SubmitJobs(pb.SubmitJobsRequest(specs=[xor_spec()], base=xor_spec())), INVALID, "specs:"),
        (lambda: local.SubmitJobs(pb.SubmitJobsRequest(specs=[xor_spec(), _edit(xor_spec(), ["model", "loss"], "x")])),
         INVALID, "specs[1].model.loss:"),
        (lambda: local.SubmitJobs(_grid(xor_spec(), "optimizer.learning_rte", [0.1])), INVALID, "grid[0].field:"),
        (lambda: local.SubmitJobs(_grid(xor_spec(), "model.layers[5].units", [3])), INVALID, "grid[0].field:"),
        (lambda: local.SubmitJobs(_grid(xor_spec(), "optimizer.learning_rate", ["fast"])), INVALID,
         "grid[0].values:"),
        (lambda: local.SubmitJobs(_grid(xor_spec(), "model.layers[0].units", [0])), INVALID,
         "base.model.layers[0].units:"),
        (lambda: local.SubmitJobs(_grid(xor_spec(), "model.seed", list(range(20_000)))), EXHAUSTED, "grid:"),
    ]
    for call, code, start in cases:
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == code, (start, err.value.details())
        assert err.value.details().startswith(start), err.value.details()


def _grid(base, field, values):
    return pb.SubmitJobsRequest(base=base, grid=[pb.GridAxis(field=field, values=[_value(v) for v in values])])


def _value(v):
    out = struct_pb2.Value()
    json_format.ParseDict(v, out)
    return out


def test_submit_watch_result_predict_delete(local):
    job = local.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()))
    assert job.state == pb.QUEUED and job.id and job.epochs_total == 500
    events = list(watch(local, job.id))
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    states = [e.state.state for e in events if e.HasField("state")]
    assert states == [pb.QUEUED, pb.RUNNING, pb.SUCCEEDED]
    epochs = [e.epoch.epoch for e in events if e.HasField("epoch")]
    assert epochs == list(range(1, 501))
    # A client that reconnects after event 100 gets exactly the rest.
    rest = list(watch(local, job.id, after=100))
    assert [e.sequence for e in rest] == list(range(101, len(events) + 1))

    done = local.GetJob(pb.GetJobRequest(job_id=job.id))
    assert done.state == pb.SUCCEEDED and done.has_result and done.attempt == 1 and done.epochs_done == 500
    result = local.GetResult(pb.GetResultRequest(job_id=job.id))
    assert result.stop_reason == "COMPLETED" and result.epochs_run == 500 and len(result.history) == 500
    assert result.final.train_accuracy == 1.0
    assert [tuple(l.weights.shape) for l in result.layers] == [(4, 2), (1, 4)]
    assert result.layers[0].weights.dtype == "float32" and len(result.layers[0].weights.data) == 32
    assert len(result.weights_sha256) == 64 and result.timings.train_seconds > 0

    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = local.Predict(pb.PredictRequest(job_id=job.id, x=array_to_tensor(x))).y
    out = np.frombuffer(y.data, dtype="<f4").reshape(tuple(y.shape))
    assert (out[:, 0] > 0.5).tolist() == [False, True, True, False]
    with pytest.raises(grpc.RpcError) as err:
        local.Predict(pb.PredictRequest(job_id=job.id, x=array_to_tensor(np.zeros((2, 3), np.float32))))
    assert err.value.code() == INVALID and err.value.details().startswith("x:")

    local.DeleteJob(pb.DeleteJobRequest(job_id=job.id))
    with pytest.raises(grpc.RpcError) as err:
        local.GetJob(pb.GetJobRequest(job_id=job.id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_queued_job_cancels_at_once_and_unfinished_result_is_a_precondition(local):
    running = local.SubmitJob(pb.SubmitJobRequest(spec=long_spec()))
    queued = local.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()))
    with pytest.raises(grpc.RpcError) as err:
        local.GetResult(pb.GetResultRequest(job_id=queued.id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as err:
        local.DeleteJob(pb.DeleteJobRequest(job_id=running.id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert local.CancelJob(pb.CancelJobRequest(job_id=queued.id)).state == pb.CANCELLED
    assert local.CancelJob(pb.CancelJobRequest(job_id=running.id)).state in (pb.CANCELLING, pb.CANCELLED)
    done = wait_done(local, running.id)
    assert done.state == pb.CANCELLED and done.has_result
    result = local.GetResult(pb.GetResultRequest(job_id=running.id))
    assert result.stop_reason == "STOPPED" and 0 < result.epochs_run < 1_000_000
    # Cancelling a finished job changes nothing.
    assert local.CancelJob(pb.CancelJobRequest(job_id=running.id)).state == pb.CANCELLED
    with pytest.raises(grpc.RpcError) as err:
        local.GetResult(pb.GetResultRequest(job_id=queued.id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_idempotent_submit_including_concurrent_duplicates(local):
    spec = xor_spec()
    answers, errors = [], []

    def submit():
        try:
            answers.append(local.SubmitJob(pb.SubmitJobRequest(spec=spec, request_id="req-1")).id)
        except grpc.RpcError as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(answers) == 8 and len(set(answers)) == 1
    assert len(local.ListJobs(pb.ListJobsRequest()).jobs) == 1
    other = xor_spec(epochs=10)
    with pytest.raises(grpc.RpcError) as err:
        local.SubmitJob(pb.SubmitJobRequest(spec=other, request_id="req-1"))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_batch_grid_labels_and_pagination(local):
    x, y = seeds_data()
    ds = upload(local, npz_bytes(x=x, y=y), name="seeds")
    assert ds.id and [a.name for a in ds.arrays] == ["x", "y"] and not ds.already_present
    assert upload(local, npz_bytes(x=x, y=y)).already_present is False or True
    again = upload(local, npz_bytes(x=x, y=y))
    assert again.id == ds.id
    from service_helpers import seeds_spec
    req = pb.SubmitJobsRequest(base=seeds_spec(ds.id, epochs=5),
                               grid=[pb.GridAxis(field="model.seed", values=[_value(s) for s in range(4)]),
                                     pb.GridAxis(field="optimizer.learningRate", values=[_value(0.1), _value(0.3)])],
                               labels={"sweep": "s1"}, request_id="batch-1")
    resp = local.SubmitJobs(req)
    assert len(resp.jobs) == 8 and resp.batch_id
    assert [(j.spec.model.seed, j.spec.optimizer.learning_rate) for j in resp.jobs] == \
        [(s, lr) for s in range(4) for lr in (0.1, 0.3)]
    assert local.SubmitJobs(req).batch_id == resp.batch_id            # idempotent batch
    req.labels["sweep"] = "s2"
    with pytest.raises(grpc.RpcError) as err:
        local.SubmitJobs(req)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    for job in resp.jobs:
        assert wait_done(local, job.id).state == pb.SUCCEEDED
    page = local.ListJobs(pb.ListJobsRequest(labels={"sweep": "s1"}, page_size=3))
    seen = [j.id for j in page.jobs]
    while page.next_page_token:
        page = local.ListJobs(pb.ListJobsRequest(labels={"sweep": "s1"}, page_size=3,
                                                 page_token=page.next_page_token))
        seen += [j.id for j in page.jobs]
    assert sorted(seen) == sorted(j.id for j in resp.jobs) and len(seen) == 8
    assert not local.ListJobs(pb.ListJobsRequest(labels={"sweep": "s1"})).jobs[0].HasField("spec")
    assert len(local.ListJobs(pb.ListJobsRequest(batch_id=resp.batch_id, states=[pb.SUCCEEDED])).jobs) == 8
    assert not local.ListJobs(pb.ListJobsRequest(batch_id=resp.batch_id, states=[pb.FAILED])).jobs


def test_queue_limit_and_info(local):
    info = local.GetServerInfo(pb.GetServerInfoRequest())
    assert "sigmoid" in info.activations and "adamw" in info.optimizers and info.limits.max_queued_jobs == 50
    local.server.manager.executor.paused = True
    try:
        local.SubmitJobs(pb.SubmitJobsRequest(specs=[xor_spec()] * 50))
        with pytest.raises(grpc.RpcError) as err:
            local.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()))
        assert err.value.code() == EXHAUSTED and err.value.details().startswith("queue:")
    finally:
        local.server.manager.executor.paused = False
        with local.server.manager.executor.cv:
            local.server.manager.executor.cv.notify_all()


def test_draining_server_is_unavailable(local):
    local.server.manager.drain()
    with pytest.raises(grpc.RpcError) as err:
        local.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_explicit_weights_frozen_layers_and_validation(local):
    spec = xor_spec(validation_fraction=0.0)
    w = [0.15, 0.2, 0.25, 0.3, 0.1, -0.1, 0.2, -0.2]
    spec.model.layers[0].weights.values.extend(w)             # shape follows from the model
    spec.model.layers[0].freeze_weights = True
    spec.model.layers[0].bias.values.extend([0.1, 0.2, 0.3, 0.4])
    spec.model.layers[0].freeze_bias = True
    spec.data.validation.CopyFrom(spec.data.train)
    job = local.SubmitJob(pb.SubmitJobRequest(spec=spec))
    assert wait_done(local, job.id).state == pb.SUCCEEDED
    result = local.GetResult(pb.GetResultRequest(job_id=job.id))
    w0 = np.frombuffer(result.layers[0].weights.data, "<f4")
    np.testing.assert_array_equal(w0, np.array(w, np.float32))
    assert result.final.HasField("val_loss") and result.history[-1].HasField("val_accuracy")
