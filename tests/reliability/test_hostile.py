"""Hostile but protocol-valid requests (issue 11's findings), each against an in-process server on
127.0.0.1: the status code, a message that names the field or limit, and a server that still
answers health and GetServerInfo afterwards."""

from __future__ import annotations

import io
import math
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from reliability_helpers import ALICE, BOB, in_process_server, stub_for
from service_helpers import upload, wait_done, watch, xor_spec

from fusetrain.service.config import ServiceLimits
from fusetrain.wire.tensors import tensor_to_array
from fusetrain.v1 import job_pb2, service_pb2 as pb, service_pb2_grpc as pb_grpc


@pytest.fixture
def server(tmp_path):
    s = in_process_server(tmp_path / "data")
    yield s
    s.stop(grace=1)


@pytest.fixture
def stub(server):
    channel, stub, _ = stub_for(server.address)
    stub.server, stub.channel = server, channel
    yield stub
    channel.close()


def refused(call, code: grpc.StatusCode, *words: str) -> str:
    """Make the call; assert it fails with `code` and a message holding each of `words`."""
    with pytest.raises(grpc.RpcError) as exc:
        call()
    assert exc.value.code() == code, exc.value.details()
    for word in words:
        assert word in exc.value.details(), exc.value.details()
    return exc.value.details()


def assert_healthy(stub) -> None:
    health = health_pb2_grpc.HealthStub(stub.channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == \
        health_pb2.HealthCheckResponse.SERVING
    assert stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=5).version


# ------------------------------------------------------------------------------ 9: page tokens

@pytest.mark.parametrize("token", ["\u00b2", "9" * 5000, "9" * 20, "-1", "1e3", " 12"])
def test_bad_page_token_is_invalid_argument(stub, token):
    refused(lambda: stub.ListJobs(pb.ListJobsRequest(page_token=token)),
            grpc.StatusCode.INVALID_ARGUMENT, "page_token")
    assert_healthy(stub)


# ----------------------------------------------------------------------------- 10: label filters

@pytest.mark.parametrize("labels, field", [
    ({"a\x00b": "x"}, "labels"),
    ({f"k{i}": "v" for i in range(1200)}, "labels"),
    ({"task": "v" * 300}, "labels.task"),
    ({"bad key": "x"}, "labels"),
])
def test_bad_label_filter_is_invalid_argument(stub, labels, field):
    refused(lambda: stub.ListJobs(pb.ListJobsRequest(labels=labels)),
            grpc.StatusCode.INVALID_ARGUMENT, field)
    assert_healthy(stub)


def test_good_label_filter_still_filters(stub):
    job = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=5)))
    assert [j.id for j in stub.ListJobs(pb.ListJobsRequest(labels={"task": "xor"})).jobs] == [job.id]
    assert not stub.ListJobs(pb.ListJobsRequest(labels={"task": "other"})).jobs
    wait_done(stub, job.id)


# ------------------------------------------------------------------------ 11: NaN in grid values

@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_grid_value_is_invalid_argument(stub, value):
    axis = pb.GridAxis(field="optimizer.learning_rate",
                       values=[struct_pb2.Value(number_value=0.1), struct_pb2.Value(number_value=value)])
    details = refused(lambda: stub.SubmitJobs(pb.SubmitJobsRequest(base=xor_spec(), grid=[axis])),
                      grpc.StatusCode.INVALID_ARGUMENT, "grid[0].values[1]")
    assert "finite" in details
    nested = struct_pb2.Value()
    nested.list_value.values.add().number_value = value
    axis = pb.GridAxis(field="model.layers[0]", values=[nested])
    refused(lambda: stub.SubmitJobs(pb.SubmitJobsRequest(base=xor_spec(), grid=[axis])),
            grpc.StatusCode.INVALID_ARGUMENT, "grid[0].values[0]")
    assert not stub.ListJobs(pb.ListJobsRequest()).jobs          # nothing was queued
    assert_healthy(stub)


# ------------------------------------------------------------------------ 12: spec number ranges

@pytest.mark.parametrize("initializer", ["uniform", "normal"])
def test_huge_init_scale_is_refused_at_submit(stub, initializer):
    spec = xor_spec()
    spec.model.initializer, spec.model.init_scale = initializer, 1e308
    refused(lambda: stub.SubmitJob(pb.SubmitJobRequest(spec=spec)),
            grpc.StatusCode.INVALID_ARGUMENT, "model.init_scale")
    assert not stub.ListJobs(pb.ListJobsRequest()).jobs
    assert_healthy(stub)


# ---------------------------------------------------------------------- 8: request ids per owner

def test_request_ids_of_owners_never_collide(tmp_path):
    """Owner 'alice/x' with request id 'r9' and owner 'alice' with 'x/r9' are two requests."""
    tokens = tmp_path / "tokens"
    tokens.write_text(f"alice/x {ALICE}\nalice {BOB}\n")
    server = in_process_server(tmp_path / "data", token_file=tokens)
    try:
        ca, slashed, s_md = stub_for(server.address, ALICE)
        cb, plain, p_md = stub_for(server.address, BOB)
        with ca, cb:
            first = slashed.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=5), request_id="r9"),
                                      metadata=s_md)
            second = plain.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=7), request_id="x/r9"),
                                     metadata=p_md)
            assert second.id != first.id and second.spec.training.epochs == 7
            assert second.request_id == "x/r9" and first.request_id == "r9"
            again = plain.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=7), request_id="x/r9"),
                                    metadata=p_md)
            assert again.id == second.id                       # still idempotent per owner
            b1 = slashed.SubmitJobs(pb.SubmitJobsRequest(specs=[xor_spec(epochs=3)], request_id="b1"),
                                    metadata=s_md)
            b2 = plain.SubmitJobs(pb.SubmitJobsRequest(specs=[xor_spec(epochs=4)], request_id="x/b1"),
                                  metadata=p_md)
            assert b1.batch_id != b2.batch_id and b2.jobs[0].spec.training.epochs == 4
            for stub, md, ids in ((slashed, s_md, [first.id, b1.jobs[0].id]),
                                  (plain, p_md, [second.id, b2.jobs[0].id])):
                for job_id in ids:
                    for _ in stub.WatchJob(pb.WatchJobRequest(job_id=job_id), metadata=md, timeout=60):
                        pass
    finally:
        server.stop(grace=1)


# ------------------------------------------------------------------------------- 6: cancel race

def test_cancel_between_commit_and_hand_off_wins(stub):
    """A CancelJob that lands after a submit's commit and before its hand-off to the executor
    cancels the job: it answers CANCELLED and the job never starts."""
    manager = stub.server.manager
    original, answers = manager._start, []

    def racing(row, job):
        answers.append(manager.cancel(row["id"]))        # the cancel arrives in the window
        original(row, job)
    manager._start = racing
    try:
        job = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()))
        batch = stub.SubmitJobs(pb.SubmitJobsRequest(specs=[xor_spec(), xor_spec(epochs=3)]))
    finally:
        manager._start = original
    assert [a.state for a in answers] == [pb.CANCELLED] * 3
    for job_id in [job.id] + [j.id for j in batch.jobs]:
        states = [e.state.state for e in watch(stub, job_id) if e.HasField("state")]
        assert states == [pb.QUEUED, pb.CANCELLED], states
    follow = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=5)))
    assert wait_done(stub, follow.id).state == pb.SUCCEEDED          # the executor is not stuck
    assert_healthy(stub)


def test_cancel_of_a_job_that_already_ran_answers_its_outcome(stub):
    """The executor has the job's outcome but the recorder has not written it yet: the cancel used
    to answer the stale QUEUED. It now answers the outcome, and the job is not cancelled."""
    from fusetrain.service import executor as ex
    from fusetrain.service.recorder import resolved
    manager = stub.server.manager
    manager.executor.paused = True
    original = manager.executor.cancel
    try:
        job = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()))

        def already_ended(job_id, force=False):
            # The job ended in its worker a moment ago: its outcome is on the way to the recorder.
            outcome = resolved(ex.Outcome(ex.FAILED, "ENGINE_ERROR", "ended before the cancel", attempt=1))
            threading.Timer(0.3, manager.recorder.done, (job_id, outcome)).start()
            return ex.UNKNOWN
        manager.executor.cancel = already_ended
        answer = stub.CancelJob(pb.CancelJobRequest(job_id=job.id))
    finally:
        manager.executor.cancel = original
        manager.executor.paused = False
        with manager.executor.cv:
            manager.executor.cv.notify_all()
    assert answer.state == pb.FAILED and answer.message == "ended before the cancel", answer
    states = [e.state.state for e in watch(stub, job.id) if e.HasField("state")]
    assert states == [pb.QUEUED, pb.FAILED], states
    assert_healthy(stub)


# ------------------------------------------------------------------- 7: DIVERGED and its weights

@pytest.mark.parametrize("field, value", [("learning_rate", 1e308), ("weight_decay", 1e308)])
def test_diverged_job_keeps_no_non_finite_weights(stub, field, value):
    spec = xor_spec(epochs=50)
    spec.optimizer.kind = "sgd"
    setattr(spec.optimizer, field, value)
    done = wait_done(stub, stub.SubmitJob(pb.SubmitJobRequest(spec=spec)).id)
    assert done.state == pb.FAILED and done.failure_reason == pb.DIVERGED
    if done.has_result:                              # weights kept: the last finite ones
        result = stub.GetResult(pb.GetResultRequest(job_id=done.id))
        for layer in result.layers:
            for t in (layer.weights, layer.bias):
                assert np.isfinite(tensor_to_array(t, "w")).all()
    else:                                            # none kept, and the job says so
        assert "no weights were kept" in done.message
        details = refused(lambda: stub.Predict(pb.PredictRequest(
            job_id=done.id, x=job_pb2.Tensor(shape=[1, 2], values=[0, 1]))),
            grpc.StatusCode.FAILED_PRECONDITION, "no trained weights")
        assert done.id in details
    assert_healthy(stub)


# ------------------------------------------------------------------- 1: WatchJob replay is paged

def _long_history(stub, rows: int) -> str:
    """A finished job whose history holds `rows` stored event rows after its final state."""
    from fusetrain.service.messages import state_event
    from fusetrain.service.recorder import emit

    job = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=2)))
    wait_done(stub, job.id)
    manager = stub.server.manager
    with manager.store.tx() as tx:
        for i in range(rows):
            emit(tx, job.id, [state_event(job.id, pb.SUCCEEDED, 0.0, message=f"replay {i}")])
    return job.id


class _RowSpy:
    """Wraps Store.events: the number of rows each read returned."""

    def __init__(self, store):
        self.store, self.read, self.pages = store, store.events, []

    def __enter__(self):
        def spy(*args, **kwargs):
            out = self.read(*args, **kwargs)
            self.pages.append(len(out))
            return out
        self.store.events = spy
        return self

    def __exit__(self, *exc):
        self.store.events = self.read


def test_watch_replay_reads_the_store_in_pages(stub):
    job_id = _long_history(stub, 3000)
    with _RowSpy(stub.server.manager.store) as spy:
        events = list(watch(stub, job_id))
    assert len(events) > 3000 and [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert sum(spy.pages) >= 3000 and max(spy.pages) <= 64, max(spy.pages)
    assert_healthy(stub)


def test_watch_stops_reading_when_the_client_leaves(stub):
    job_id = _long_history(stub, 3000)
    manager, ended = stub.server.manager, threading.Event()
    events = manager.watcher.events

    def tracked(*args, **kwargs):
        try:
            yield from events(*args, **kwargs)
        finally:
            ended.set()
    manager.watcher.events = tracked
    try:
        with _RowSpy(manager.store) as spy:
            call = stub.WatchJob(pb.WatchJobRequest(job_id=job_id))
            next(call)
            call.cancel()
            assert ended.wait(60)                   # the server's stream ended ...
    finally:
        manager.watcher.events = events
    assert sum(spy.pages) < 1000, sum(spy.pages)    # ... having read a few pages, not the history
    assert_healthy(stub)


# --------------------------------------------------------------------------- 2: NPZ bombs

@pytest.fixture
def small_decode(tmp_path):
    limits = ServiceLimits(max_dataset_bytes=8 << 20)
    limits.max_dataset_decoded_bytes = 16 << 20
    server = in_process_server(tmp_path / "data", limits=limits)
    channel, stub, _ = stub_for(server.address)
    stub.server, stub.channel = server, channel
    yield stub
    channel.close()
    server.stop(grace=1)


def _compressed(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def test_npz_bomb_is_refused_from_its_headers(small_decode):
    bomb = _compressed(x=np.zeros((40_000_000, 1), np.float32), y=np.zeros((40_000_000, 1), np.float32))
    assert len(bomb) < 1 << 20                      # under 1 MB sent, 320 MB decoded
    decoded = []
    original = np.load
    np.load = lambda *a, **k: decoded.append(a) or original(*a, **k)
    try:
        details = refused(lambda: upload(small_decode, bomb), grpc.StatusCode.RESOURCE_EXHAUSTED,
                          "max_dataset_decoded_bytes", str(16 << 20))
    finally:
        np.load = original
    assert decoded == []                            # nothing was decoded to find out
    assert "decompresses to" in details
    limits = small_decode.GetServerInfo(pb.GetServerInfoRequest()).limits
    assert limits.max_dataset_decoded_bytes == 16 << 20
    assert_healthy(small_decode)


def test_npz_finiteness_is_checked_chunk_by_chunk(small_decode):
    x = np.zeros((1_000_000, 2), np.float32)
    x[700_000, 1] = np.nan
    details = refused(lambda: upload(small_decode, _compressed(x=x, y=np.zeros((1_000_000, 1), np.float32))),
                      grpc.StatusCode.INVALID_ARGUMENT, "'x'", "NaN", "index 700000")
    assert details
    fine = upload(small_decode, _compressed(x=np.ones((1000, 2), np.float32), y=np.ones((1000, 1), np.float32)))
    assert {a.name: list(a.shape) for a in fine.arrays} == {"x": [1000, 2], "y": [1000, 1]}
    assert_healthy(small_decode)


# ------------------------------------------------------------------ 4: streams cannot hold every thread

def test_open_streams_are_capped_and_health_still_answers(tmp_path):
    """With 8 RPC threads, 4 streams may be open; a fifth is refused, and health, unary calls and
    the refusal itself are answered while the four hold their threads."""
    server = in_process_server(tmp_path / "data", rpc_threads=8)
    channel, stub, _ = stub_for(server.address)
    stub.server, stub.channel = server, channel
    executor = server.manager.executor
    executor.paused = True                          # the job stays QUEUED: its watchers stay open
    calls = []
    try:
        job = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()))
        for _ in range(4):
            calls.append(stub.WatchJob(pb.WatchJobRequest(job_id=job.id), timeout=60))
            next(calls[-1])                          # open and served
        details = refused(lambda: next(stub.WatchJob(pb.WatchJobRequest(job_id=job.id), timeout=60)),
                          grpc.StatusCode.RESOURCE_EXHAUSTED, "max_streams", "4")
        assert "streams are open" in details
        info = stub.GetServerInfo(pb.GetServerInfoRequest())
        assert info.limits.max_streams == 4 and info.limits.max_client_streams == 8
        refused(lambda: upload(stub, b"PK" * 10), grpc.StatusCode.RESOURCE_EXHAUSTED, "max_streams")
        assert_healthy(stub)
        assert stub.GetJob(pb.GetJobRequest(job_id=job.id)).state == pb.QUEUED
        calls.pop().cancel()                         # a slot frees when its client leaves ...
        for _ in range(100):
            if server.stream_slots.open_streams() < 4:
                break
            threading.Event().wait(0.05)
        again = stub.WatchJob(pb.WatchJobRequest(job_id=job.id), timeout=60)
        calls.append(again)
        assert next(again).events                    # ... and the next stream is served
    finally:
        for call in calls:
            call.cancel()
        executor.paused = False
        with executor.cv:
            executor.cv.notify_all()
        channel.close()
        server.stop(grace=1)


def test_stream_slots_per_owner():
    from fusetrain.service.errors import ResourceExhausted
    from fusetrain.service.streams import StreamSlots
    slots = StreamSlots(total=3, per_owner=2)
    with slots.hold("alice"), slots.hold("alice"):
        with pytest.raises(ResourceExhausted, match="max_client_streams"):
            with slots.hold("alice"):
                pass
        with slots.hold("bob"):
            with pytest.raises(ResourceExhausted, match="max_streams"):
                with slots.hold("carol"):
                    pass
    assert slots.open_streams() == 0
    with slots.hold(None), slots.hold(None):      # without tokens only the total applies
        with slots.hold(None):
            pass


# ----------------------------------------------------------------- 3: grid amplification (capped)

def test_grid_of_a_big_base_is_refused_before_expanding(stub):
    """A 3 MB base spec with 600 grid values: 1.8 GB of specs before the fix (MemoryError)."""
    spec = xor_spec()
    spec.data.train.x.CopyFrom(job_pb2.Tensor(dtype="float32", shape=[250_000, 2], data=bytes(2_000_000)))
    spec.data.train.y.CopyFrom(job_pb2.Tensor(dtype="float32", shape=[250_000, 1], data=bytes(1_000_000)))
    axis = pb.GridAxis(field="model.seed", values=[struct_pb2.Value(number_value=i) for i in range(600)])
    request = pb.SubmitJobsRequest(base=spec, grid=[axis])
    details = refused(lambda: stub.SubmitJobs(request), grpc.StatusCode.RESOURCE_EXHAUSTED,
                      "max_batch_spec_bytes", str(64 << 20))
    assert "600 combinations" in details
    assert not stub.ListJobs(pb.ListJobsRequest()).jobs
    assert stub.GetServerInfo(pb.GetServerInfoRequest()).limits.max_batch_spec_bytes == 64 << 20
    assert_healthy(stub)


def _db_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in data_dir.glob("fusetrain.db*"))


def test_grid_stores_its_base_data_once(stub):
    """A 3 MB base spec with 20 grid values: +60 MB of database before the fix (every job's row
    held the whole spec); now the inline data is one file and each row holds the rest."""
    data_dir = stub.server.manager.store.data_dir
    spec = xor_spec(epochs=1)
    rows = 250_000
    x = np.tile(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32), (rows // 4, 1))
    y = np.logical_xor(x[:, :1], x[:, 1:]).astype(np.float32)
    spec.data.train.x.CopyFrom(job_pb2.Tensor(dtype="float32", shape=list(x.shape), data=x.tobytes()))
    spec.data.train.y.CopyFrom(job_pb2.Tensor(dtype="float32", shape=list(y.shape), data=y.tobytes()))
    seeds = list(range(20))
    axis = pb.GridAxis(field="model.seed", values=[struct_pb2.Value(number_value=i) for i in seeds])
    before = _db_bytes(data_dir)
    batch = stub.SubmitJobs(pb.SubmitJobsRequest(base=spec, grid=[axis]))
    grown = _db_bytes(data_dir) - before
    assert grown < 1_000_000, f"the database grew by {grown} bytes for 20 jobs of one 3 MB base"
    files = list((data_dir / "specdata").iterdir())
    assert len(files) == 1 and 3_000_000 <= files[0].stat().st_size < 3_100_000
    assert batch.ByteSize() < 100_000                     # the reply holds each spec without the data
    for seed, listed in zip(seeds, batch.jobs):
        whole = stub.GetJob(pb.GetJobRequest(job_id=listed.id)).spec
        expected = job_pb2.JobSpec()
        expected.CopyFrom(spec)
        expected.model.seed = seed
        assert whole == expected                          # GetJob: the spec as expanded, data included
    for listed in batch.jobs:                             # the workers read the data from the file
        assert wait_done(stub, listed.id).state == pb.SUCCEEDED
    for listed in batch.jobs[:-1]:
        stub.DeleteJob(pb.DeleteJobRequest(job_id=listed.id))
    assert files[0].exists()                              # one job still uses it
    stub.DeleteJob(pb.DeleteJobRequest(job_id=batch.jobs[-1].id))
    assert not files[0].exists()
    assert_healthy(stub)


# ------------------------------------------------------------ 14: a crash while CANCELLING

def test_worker_crash_while_cancelling_ends_cancelled(stub):
    from fusetrain.service import executor as ex
    from fusetrain.service.recorder import resolved
    manager = stub.server.manager
    manager.executor.paused = True
    try:
        job = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()))
        with manager.store.tx() as tx:                      # as if a cancel had been signalled
            tx.update_job(job.id, state=pb.CANCELLING)
        manager.recorder.done(job.id, resolved(ex.Outcome(
            ex.FAILED, "WORKER_CRASHED", "the worker process died (exit code -9)", attempt=1)))
        done = wait_done(stub, job.id)
    finally:
        manager.executor.paused = False
        with manager.executor.cv:
            manager.executor.cv.notify_all()
    assert done.state == pb.CANCELLED and done.failure_reason == 0, done
    assert "cancelled" in done.message and "died" in done.message
    assert_healthy(stub)


# ------------------------------------------------------- 13: Predict, its cache, ListJobs replies

def _finished_xor(stub) -> str:
    job = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=20)))
    assert wait_done(stub, job.id).state == pb.SUCCEEDED
    return job.id


def test_predict_rows_are_capped(stub):
    job_id = _finished_xor(stub)
    x = job_pb2.Tensor(dtype="float32", shape=[100_001, 2], data=bytes(800_008))
    refused(lambda: stub.Predict(pb.PredictRequest(job_id=job_id, x=x)), grpc.StatusCode.RESOURCE_EXHAUSTED,
            "max_predict_rows", "100000")
    ok = stub.Predict(pb.PredictRequest(job_id=job_id, x=job_pb2.Tensor(
        dtype="float32", shape=[100_000, 2], data=bytes(800_000))))
    assert list(ok.y.shape) == [100_000, 1]
    assert stub.GetServerInfo(pb.GetServerInfoRequest()).limits.max_predict_rows == 100_000
    assert_healthy(stub)


def test_predict_calls_are_bounded_and_off_the_rpc_threads(stub):
    job_id = _finished_xor(stub)
    predictor, gate, threads = stub.server.manager.predictor, threading.Event(), []
    run = predictor._run

    def held(row, x):
        threads.append(threading.current_thread().name)
        gate.wait(60)
        return run(row, x)
    predictor._run = held
    request = pb.PredictRequest(job_id=job_id, x=job_pb2.Tensor(shape=[1, 2], values=[0, 1]))
    waiting = [stub.Predict.future(request, timeout=60) for _ in range(4)]    # max_predict_calls
    try:
        for _ in range(200):
            if predictor._calls._value == 0:        # all four slots taken
                break
            threading.Event().wait(0.05)
        refused(lambda: stub.Predict(request, timeout=60), grpc.StatusCode.RESOURCE_EXHAUSTED,
                "max_predict_calls", "4")
        assert_healthy(stub)
    finally:
        gate.set()
        predictor._run = run
    assert all(len(f.result().y.data) for f in waiting)
    assert threads and all(name.startswith("fusetrain-predict") for name in threads)


def test_predict_cache_is_capped_in_bytes(stub):
    predictor = stub.server.manager.predictor
    ids = [_finished_xor(stub) for _ in range(3)]
    one_model = (4 * 2 + 4 + 1 * 4 + 1) * 4                    # XOR 2-4-1 float32 weights and biases
    stub.server.config.limits.max_predict_cache_bytes = 2 * one_model
    for job_id in ids:
        stub.Predict(pb.PredictRequest(job_id=job_id, x=job_pb2.Tensor(shape=[1, 2], values=[0, 1])))
        assert predictor.cached_bytes() <= 2 * one_model
    assert predictor.cached_bytes() == 2 * one_model


def test_list_jobs_replies_fit_a_default_client(stub):
    """20 jobs of 480 kB specs: 9.6 MB as one page before the fix, which a default client
    (4 MiB receive limit) refuses; now pages end at max_reply_bytes and paging reaches all."""
    stub.server.manager.executor.paused = True
    try:
        x = np.zeros((40_000, 2), np.float32)
        y = np.zeros((40_000, 1), np.float32)
        ids = set()
        for _ in range(20):
            spec = xor_spec(epochs=1)
            spec.data.train.x.CopyFrom(job_pb2.Tensor(dtype="float32", shape=[40_000, 2], data=x.tobytes()))
            spec.data.train.y.CopyFrom(job_pb2.Tensor(dtype="float32", shape=[40_000, 1], data=y.tobytes()))
            ids.add(stub.SubmitJob(pb.SubmitJobRequest(spec=spec)).id)
        channel = grpc.insecure_channel(stub.server.address)        # default 4 MiB receive limit
        plain = pb_grpc.TrainingServiceStub(channel)
        seen, token, pages = set(), "", 0
        with channel:
            while True:
                page = plain.ListJobs(pb.ListJobsRequest(include_spec=True, page_size=1000, page_token=token))
                assert page.ByteSize() <= 4 << 20
                seen |= {j.id for j in page.jobs}
                pages += 1
                token = page.next_page_token
                if not token:
                    break
        assert seen == ids and pages >= 3
    finally:
        stub.server.manager.executor.paused = False
        with stub.server.manager.executor.cv:
            stub.server.manager.executor.cv.notify_all()
    assert_healthy(stub)


# ------------------------------------------------------------------- 5: a job's memory, estimated

def test_job_that_cannot_fit_in_memory_is_refused_at_submit(stub):
    """1-65536-1, 5,000 inline rows, full batch: a 40 kB spec that drove a worker to 4.6 GB."""
    spec = xor_spec(epochs=5)
    spec.model.inputs = 1
    spec.model.layers[0].units = 65_536
    x = np.linspace(0, 1, 5000, dtype=np.float32).reshape(-1, 1)
    spec.data.train.x.CopyFrom(job_pb2.Tensor(dtype="float32", shape=[5000, 1], data=x.tobytes()))
    spec.data.train.y.CopyFrom(job_pb2.Tensor(dtype="float32", shape=[5000, 1], data=(x > 0.5).astype(np.float32).tobytes()))
    details = refused(lambda: stub.SubmitJob(pb.SubmitJobRequest(spec=spec)),
                      grpc.StatusCode.RESOURCE_EXHAUSTED, "max_job_memory_bytes", str(2 << 30))
    assert "MiB" in details
    spec.training.batch_size = 32                      # the same network in small batches fits
    job = stub.SubmitJob(pb.SubmitJobRequest(spec=spec))
    assert stub.GetJob(pb.GetJobRequest(job_id=job.id)).state in (pb.QUEUED, pb.RUNNING, pb.SUCCEEDED)
    stub.CancelJob(pb.CancelJobRequest(job_id=job.id, force=True))
    assert stub.GetServerInfo(pb.GetServerInfoRequest()).limits.max_job_memory_bytes == 2 << 30
    assert_healthy(stub)


def test_memory_estimate_counts_activations_parameters_and_data():
    from fusetrain.engine import LayerSpec, ModelSpec, OptimizerSpec, TrainConfig
    from fusetrain.engine.memory import job_bytes, parameters
    model = ModelSpec(inputs=10, layers=[LayerSpec(units=20), LayerSpec(units=3)], dtype="float64")
    assert parameters(model) == 20 * 11 + 3 * 21
    small = job_bytes(model, OptimizerSpec(kind="sgd"), TrainConfig(epochs=1, batch_size=10), rows=1000)
    full = job_bytes(model, OptimizerSpec(kind="sgd"), TrainConfig(epochs=1, batch_size=0), rows=1000)
    assert full - small == 2 * (1000 - 10) * 23 * 8 + (1000 - 10) * 13 * 8     # activations, batch
    adam = job_bytes(model, OptimizerSpec(kind="adam"), TrainConfig(epochs=1, batch_size=10), rows=1000)
    assert adam - small == 2 * (2 - 1) * parameters(model) * 8                  # one more slot, twice


# --------------------------------------------------------------- 14: datasets are owner-scoped

def test_datasets_are_owner_scoped(tmp_path):
    from service_helpers import npz_bytes
    tokens = tmp_path / "tokens"
    tokens.write_text(f"alice {ALICE}\nbob {BOB}\n")
    server = in_process_server(tmp_path / "data", token_file=tokens)
    data = npz_bytes(x=np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32),
                     y=np.array([[0], [1], [1], [0]], np.float32))
    try:
        ca, alice, a_md = stub_for(server.address, ALICE)
        cb, bob, b_md = stub_for(server.address, BOB)
        with ca, cb:
            mine = alice.UploadDataset(iter([pb.UploadDatasetRequest(name="alice-secret", chunk=data)]),
                                       metadata=a_md)
            assert not mine.already_present
            refused(lambda: bob.GetDataset(pb.GetDatasetRequest(dataset_id=mine.id), metadata=b_md),
                    grpc.StatusCode.NOT_FOUND, "not found")
            spec = xor_spec(epochs=5)
            spec.data.ClearField("train")
            spec.data.train.dataset_id = mine.id
            refused(lambda: bob.SubmitJob(pb.SubmitJobRequest(spec=spec), metadata=b_md),
                    grpc.StatusCode.INVALID_ARGUMENT, "data.train.dataset_id")
            theirs = bob.UploadDataset(iter([pb.UploadDatasetRequest(name="bobs", chunk=data)]), metadata=b_md)
            assert theirs.id == mine.id and not theirs.already_present and theirs.name == "bobs"
            again = bob.UploadDataset(iter([pb.UploadDatasetRequest(name="bobs", chunk=data)]), metadata=b_md)
            assert again.already_present
            assert alice.GetDataset(pb.GetDatasetRequest(dataset_id=mine.id), metadata=a_md).name == "alice-secret"
            job = bob.SubmitJob(pb.SubmitJobRequest(spec=spec), metadata=b_md)
            for _ in bob.WatchJob(pb.WatchJobRequest(job_id=job.id), metadata=b_md, timeout=60):
                pass
            assert bob.GetJob(pb.GetJobRequest(job_id=job.id), metadata=b_md).state == pb.SUCCEEDED
    finally:
        server.stop(grace=1)


def test_delete_dataset_is_owner_scoped_and_refused_while_in_use(tmp_path):
    from service_helpers import npz_bytes
    tokens = tmp_path / "tokens"
    tokens.write_text(f"alice {ALICE}\nbob {BOB}\n")
    server = in_process_server(tmp_path / "data", token_file=tokens)
    data = npz_bytes(x=np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32),
                     y=np.array([[0], [1], [1], [0]], np.float32))
    executor = server.manager.executor
    try:
        ca, alice, a_md = stub_for(server.address, ALICE)
        cb, bob, b_md = stub_for(server.address, BOB)
        with ca, cb:
            ds = alice.UploadDataset(iter([pb.UploadDatasetRequest(name="a", chunk=data)]), metadata=a_md)
            refused(lambda: bob.DeleteDataset(pb.DeleteDatasetRequest(dataset_id=ds.id), metadata=b_md),
                    grpc.StatusCode.NOT_FOUND, "not found")
            bob.UploadDataset(iter([pb.UploadDatasetRequest(name="b", chunk=data)]), metadata=b_md)
            spec = xor_spec(epochs=5)
            spec.data.ClearField("train")
            spec.data.train.dataset_id = ds.id
            executor.paused = True
            job = alice.SubmitJob(pb.SubmitJobRequest(spec=spec), metadata=a_md)
            refused(lambda: alice.DeleteDataset(pb.DeleteDatasetRequest(dataset_id=ds.id), metadata=a_md),
                    grpc.StatusCode.FAILED_PRECONDITION, "queued or running job")
            alice.CancelJob(pb.CancelJobRequest(job_id=job.id), metadata=a_md)
            alice.DeleteDataset(pb.DeleteDatasetRequest(dataset_id=ds.id), metadata=a_md)
            refused(lambda: alice.GetDataset(pb.GetDatasetRequest(dataset_id=ds.id), metadata=a_md),
                    grpc.StatusCode.NOT_FOUND, "not found")
            path = server.manager.files.path("datasets", ds.id)
            assert bob.GetDataset(pb.GetDatasetRequest(dataset_id=ds.id), metadata=b_md).name == "b"
            assert Path(path).exists()                          # bob still holds the bytes
            bob.DeleteDataset(pb.DeleteDatasetRequest(dataset_id=ds.id), metadata=b_md)
            assert not Path(path).exists()
            assert bob.GetServerInfo(pb.GetServerInfoRequest(), metadata=b_md).version
    finally:
        executor.paused = False
        with executor.cv:
            executor.cv.notify_all()
        server.stop(grace=1)


# ------------------------------------------------------------------ 4: an upload that goes idle

def test_an_idle_upload_is_ended_and_frees_its_stream(tmp_path):
    limits = ServiceLimits(max_dataset_bytes=8 << 20)
    limits.max_upload_idle_seconds = 0.5
    limits.max_streams = 1                   # one stream slot: the idle upload must give it back
    server = in_process_server(tmp_path / "data", limits=limits)
    channel, stub, _ = stub_for(server.address)
    stub.server, stub.channel = server, channel
    gate = threading.Event()

    def trickle():                           # one chunk, then silence (the client stays connected)
        yield pb.UploadDatasetRequest(name="slow", chunk=b"PK")
        gate.wait(10)

    try:
        refused(lambda: stub.UploadDataset(trickle(), timeout=10), grpc.StatusCode.RESOURCE_EXHAUSTED,
                "max_upload_idle_seconds", "0.5 s")
        gate.set()
        assert_healthy(stub)
        info = stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=5)
        assert info.limits.max_upload_idle_seconds == 0.5
        x = np.zeros((4, 2), np.float32)
        buf = io.BytesIO()
        np.savez(buf, x=x, y=x[:, :1])
        assert upload(stub, buf.getvalue()).id    # the slot is free again
    finally:
        gate.set()
        channel.close()
        server.stop(grace=1)


# ---------------------------------------------------------- 13: the history of a very long job

def test_a_long_jobs_history_is_thinned_past_its_limit(tmp_path):
    limits = ServiceLimits(max_dataset_bytes=8 << 20, max_epochs=10_000_000)
    limits.max_history_rows = 500
    server = in_process_server(tmp_path / "data", limits=limits)
    channel, stub, _ = stub_for(server.address)
    stub.channel = channel
    try:
        assert stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=5).limits.max_history_rows == 500
        long_job = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=20_000)))
        short_job = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=300)))
        for job in (long_job, short_job):
            assert wait_done(stub, job.id).state == pb.SUCCEEDED
        long_result = stub.GetResult(pb.GetResultRequest(job_id=long_job.id))
        epochs = [m.epoch for m in long_result.history]
        stride = math.ceil(20_000 / 498)                  # every 41st epoch, the first and the last
        assert epochs == [1] + list(range(stride, 20_000, stride)) + [20_000] and len(epochs) <= 500
        assert long_result.epochs_run == 20_000
        # WatchJob replays the same epochs: the store kept no more of them.
        watched = [e.epoch.epoch for e in watch(stub, long_job.id) if e.HasField("epoch")]
        assert watched == epochs
        short = stub.GetResult(pb.GetResultRequest(job_id=short_job.id))
        assert [m.epoch for m in short.history] == list(range(1, 301))    # under the limit: every epoch
        assert [e.epoch.epoch for e in watch(stub, short_job.id) if e.HasField("epoch")] == list(range(1, 301))
        assert_healthy(stub)
    finally:
        channel.close()
        server.stop(grace=1)


def test_a_negative_retry_count_is_refused(stub):
    spec = xor_spec()
    spec.training.max_retries = -1
    refused(lambda: stub.SubmitJob(pb.SubmitJobRequest(spec=spec)), grpc.StatusCode.INVALID_ARGUMENT,
            "training.max_retries")
    assert_healthy(stub)


def test_an_abandoned_upload_is_no_server_error(stub, caplog):
    # A client that leaves mid-upload is nobody's error: no traceback in the server's log (an
    # attacker could otherwise fill it at its own pace), and the server goes on.
    caplog.set_level("INFO", logger="fusetrain.servicer")
    gate = threading.Event()

    def chunks():
        yield pb.UploadDatasetRequest(name="left", chunk=b"PK")
        gate.wait(10)

    call = stub.UploadDataset.future(chunks(), timeout=30)
    try:
        with pytest.raises(grpc.FutureTimeoutError):
            call.result(timeout=0.5)         # the server is reading the stream
        call.cancel()
    finally:
        gate.set()
    end = time.monotonic() + 10
    while time.monotonic() < end and not any("client left" in r.getMessage() for r in caplog.records):
        time.sleep(0.05)
    assert any("client left" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelname == "ERROR"], [r.getMessage() for r in caplog.records]
    assert_healthy(stub)
