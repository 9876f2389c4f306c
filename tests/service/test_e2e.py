"""End to end: a real `fusetrain serve` child on a free 127.0.0.1 port, real gRPC clients."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest
from google.protobuf import json_format, struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fusetrain.wire.tensors import array_to_tensor
from fusetrain.v1 import service_pb2 as pb

from service_helpers import long_spec, npz_bytes, seeds_data, seeds_spec, upload, wait_done, watch, xor_spec


def test_health_and_reflection(served):
    health = health_pb2_grpc.HealthStub(served.channel)
    for service in ("", "fusetrain.v1.TrainingService"):
        assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == \
            health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(served.channel)
    answer = next(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = [s.name for s in answer.list_services_response.service]
    assert "fusetrain.v1.TrainingService" in names and "grpc.health.v1.Health" in names
    info = served.GetServerInfo(pb.GetServerInfoRequest())
    assert info.workers == 2 and info.threads_per_worker == 1 and info.executor == "process-pool"
    assert info.limits.max_message_bytes == 4 << 20 and "softmax_cross_entropy" in info.losses


def test_submit_watch_result_predict_delete(served):
    job = served.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()))
    events = list(watch(served, job.id, timeout=60))
    states = [e.state.state for e in events if e.HasField("state")]
    assert states == [pb.QUEUED, pb.RUNNING, pb.SUCCEEDED]
    assert [e.epoch.epoch for e in events if e.HasField("epoch")] == list(range(1, 501))
    tail = list(watch(served, job.id, after=events[-3].sequence))
    assert [e.sequence for e in tail] == [e.sequence for e in events[-2:]]
    result = served.GetResult(pb.GetResultRequest(job_id=job.id))
    assert result.final.train_accuracy == 1.0 and result.attempt == 1 and result.timings.total_seconds > 0
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = served.Predict(pb.PredictRequest(job_id=job.id, x=array_to_tensor(x))).y
    assert (np.frombuffer(y.data, "<f4") > 0.5).tolist() == [False, True, True, False]
    served.DeleteJob(pb.DeleteJobRequest(job_id=job.id))
    with pytest.raises(grpc.RpcError) as err:
        served.GetResult(pb.GetResultRequest(job_id=job.id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_graceful_cancel_keeps_the_weights(served):
    job = served.SubmitJob(pb.SubmitJobRequest(spec=long_spec()))
    for event in watch(served, job.id, timeout=60):
        if event.HasField("epoch") and event.epoch.epoch >= 3:
            break
    t0 = time.monotonic()
    assert served.CancelJob(pb.CancelJobRequest(job_id=job.id)).state in (pb.CANCELLING, pb.CANCELLED)
    done = wait_done(served, job.id)
    assert done.state == pb.CANCELLED and done.has_result and time.monotonic() - t0 < 5
    result = served.GetResult(pb.GetResultRequest(job_id=job.id))
    assert result.stop_reason == "STOPPED" and result.epochs_run >= 3 and len(result.layers) == 2


def test_force_cancel_ends_a_long_epoch_and_the_worker_is_replaced(served):
    # One epoch of online SGD over 60,000 rows of a 16-512-512-1 network takes many seconds.
    spec = long_spec(epochs=3, rows=60_000)
    spec.model.layers[0].units = 512
    spec.model.layers.insert(1, spec.model.layers[0].__class__(units=512, activation="relu"))
    spec.training.batch_size = 1
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60_000, 16)).astype(np.float32)
    ds = upload(served, npz_bytes(x=x, y=(x[:, :1] > 0).astype(np.float32)))
    spec.data.train.Clear()
    spec.data.train.dataset_id = ds.id
    job = served.SubmitJob(pb.SubmitJobRequest(spec=spec))
    for event in watch(served, job.id, timeout=60):
        if event.HasField("state") and event.state.state == pb.RUNNING:
            break
    time.sleep(0.5)
    t0 = time.monotonic()
    served.CancelJob(pb.CancelJobRequest(job_id=job.id, force=True))
    done = wait_done(served, job.id)
    assert done.state == pb.CANCELLED and "force" in done.message and time.monotonic() - t0 < 5
    assert not done.has_result
    # The pool replaced the worker: jobs still run.
    assert wait_done(served, served.SubmitJob(pb.SubmitJobRequest(spec=xor_spec())).id).state == pb.SUCCEEDED


def test_time_limit_stops_the_job(served):
    job = served.SubmitJob(pb.SubmitJobRequest(spec=long_spec(time_limit_seconds=0.5)))
    done = wait_done(served, job.id)
    assert done.state == pb.FAILED and done.failure_reason == pb.TIME_LIMIT and done.has_result
    assert "time limit" in done.message


def test_diverged_job_fails_with_its_last_finite_weights(served):
    spec = xor_spec()
    spec.model.loss = "half_sse"
    spec.model.layers[0].activation = "identity"
    spec.model.layers[1].activation = "identity"
    spec.optimizer.kind = "sgd"
    spec.optimizer.learning_rate = 1e6
    done = wait_done(served, served.SubmitJob(pb.SubmitJobRequest(spec=spec)).id)
    assert done.state == pb.FAILED and done.failure_reason == pb.DIVERGED and done.has_result
    result = served.GetResult(pb.GetResultRequest(job_id=done.id))
    assert result.stop_reason == "DIVERGED"
    assert np.all(np.isfinite(np.frombuffer(result.layers[0].weights.data, "<f4")))


def test_batch_of_100_jobs_on_one_uploaded_dataset(served):
    x, y = seeds_data()
    ds = upload(served, npz_bytes(x=x, y=y), name="seeds")
    seeds = [struct_pb2.Value(number_value=s) for s in range(100)]
    resp = served.SubmitJobs(pb.SubmitJobsRequest(base=seeds_spec(ds.id, epochs=20),
                                                  grid=[pb.GridAxis(field="model.seed", values=seeds)]))
    assert len(resp.jobs) == 100 and all(j.state == pb.QUEUED for j in resp.jobs)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        listed = served.ListJobs(pb.ListJobsRequest(batch_id=resp.batch_id, page_size=1000)).jobs
        if all(j.state == pb.SUCCEEDED for j in listed):
            break
        time.sleep(0.2)
    assert len(listed) == 100 and all(j.state == pb.SUCCEEDED for j in listed)
    shas = {served.GetResult(pb.GetResultRequest(job_id=j.id)).weights_sha256 for j in resp.jobs}
    assert len(shas) == 100   # a hundred different seeds, a hundred different models


def test_upload_larger_than_one_message(served):
    x = np.random.default_rng(2).normal(size=(100_000, 12)).astype(np.float32)   # 4.8 MB
    data = npz_bytes(x=x, y=x[:, :1])
    assert len(data) > 4 << 20
    ds = upload(served, data, chunk=1 << 20)
    assert ds.size_bytes == len(data) and not ds.already_present
    assert {a.name: tuple(a.shape) for a in ds.arrays} == {"x": (100_000, 12), "y": (100_000, 1)}
    assert upload(served, data).already_present
    with pytest.raises(grpc.RpcError) as err:   # one message over the limit
        served.UploadDataset(iter([pb.UploadDatasetRequest(chunk=data)]))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_idempotent_submit_with_concurrent_duplicates(served):
    ids, codes = [], []
    spec = xor_spec(epochs=50)

    def submit(request_id):
        try:
            ids.append((request_id, served.SubmitJob(pb.SubmitJobRequest(spec=spec, request_id=request_id)).id))
        except grpc.RpcError as exc:
            codes.append(exc.code())
    threads = [threading.Thread(target=submit, args=(f"dup-{i % 2}",)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not codes and len({i for r, i in ids if r == "dup-0"}) == 1 and len({i for r, i in ids}) == 2
    with pytest.raises(grpc.RpcError) as err:
        served.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=51), request_id="dup-0"))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_bad_input_over_the_wire(served):
    spec = xor_spec()
    spec.model.layers[1].units = 3
    with pytest.raises(grpc.RpcError) as err:
        served.SubmitJob(pb.SubmitJobRequest(spec=spec))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("data.train.y:")
    big = xor_spec()
    big.data.train.x.values.extend([0.0] * (600_000 - 8))
    big.data.train.x.shape[:] = [300_000, 2]
    with pytest.raises(grpc.RpcError) as err:
        served.SubmitJob(pb.SubmitJobRequest(spec=big))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    job = served.SubmitJob(pb.SubmitJobRequest(spec=long_spec(epochs=100_000)))
    with pytest.raises(grpc.RpcError) as err:
        served.GetResult(pb.GetResultRequest(job_id=job.id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as err:
        served.Predict(pb.PredictRequest(job_id=job.id, x=array_to_tensor(np.zeros((1, 16), np.float32))))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    served.CancelJob(pb.CancelJobRequest(job_id=job.id, force=True))
    assert wait_done(served, job.id).state == pb.CANCELLED
