"""The round trip's group commit (issue 13): one transaction for a short job's RUNNING, epochs and
outcome; progress-only batches without an fsync, outcomes always with one, the result in the
outcome's own transaction; no event lost or reordered; a crash between a result file and its
commit recovers. Timing-free: batches are handed to the recorder whole, a crash is a real
process exit at a known point."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from concurrent.futures import Future
from contextlib import contextmanager

import numpy as np
import pytest

from fusetrain.service import executor as ex
from fusetrain.service.recorder import Recorder, emit, recover
from fusetrain.service.store import RESULT_INLINE_BYTES, Store
from fusetrain.service.messages import state_event
from fusetrain.service.watch import Changes, Watch
from fusetrain.v1 import service_pb2 as pb

from service_helpers import watch, xor_spec

EPOCHS = 500


def add_job(store: Store, job_id: str, epochs: int = EPOCHS) -> None:
    now = time.time()
    with store.tx() as tx:
        tx.insert_job({"id": job_id, "state": pb.QUEUED, "spec": b"", "spec_sha": "", "created_at": now,
                       "epochs_total": epochs})
        emit(tx, job_id, [state_event(job_id, pb.QUEUED, now)])


def epochs_block(first: int, last: int) -> np.ndarray:
    rows = np.zeros((last - first + 1, len(ex.METRIC_FIELDS)))
    rows[:, 0] = np.arange(first, last + 1)
    rows[:, 1] = 1.0 / rows[:, 0]
    return rows


def outcome_future(result_bytes: bytes, epochs: int = EPOCHS) -> Future:
    f: Future = Future()
    f.set_result(ex.Outcome(ex.SUCCEEDED, result={
        "encoded": result_bytes, "epochs_run": epochs, "compile_seconds": 0.0, "train_seconds": 0.001,
        "stop_reason": "COMPLETED"}, attempt=1))
    return f


def result_bytes(size: int = 0) -> bytes:
    msg = pb.JobResult(stop_reason="COMPLETED", epochs_run=EPOCHS)
    if size:
        msg.blas_kernel = "x" * size
    return msg.SerializeToString()


class CountingStore(Store):
    """A Store that remembers each transaction's durability."""

    def __init__(self, data_dir):
        self.commits: list[bool] = []
        super().__init__(data_dir)

    @contextmanager
    def tx(self, durable: bool = True):
        with super().tx(durable) as tx:
            yield tx
        self.commits.append(durable)


def synchronous(store: Store) -> int:
    return store._query("PRAGMA synchronous")[0][0]


def all_events(store: Store, job_id: str) -> list:
    changes = Changes()
    return [e for batch in Watch(store, changes).events(job_id, 0) for e in batch]


@pytest.fixture
def recorder(tmp_path):
    store = CountingStore(tmp_path / "data")
    rec = Recorder(store, Changes(), history_rows=0)
    yield rec
    rec.close()
    store.close()


def test_a_short_jobs_updates_are_one_durable_commit_with_every_event_in_order(recorder):
    store = recorder.store
    add_job(store, "j1")
    store.commits.clear()
    data = result_bytes()
    recorder._record([(ex.STARTED, "j1", {"attempt": 1, "time": time.time()}),
                      (ex.EPOCHS, "j1", epochs_block(1, 200)),
                      (ex.EPOCHS, "j1", epochs_block(201, EPOCHS)),
                      ("done", "j1", outcome_future(data))])
    assert store.commits == [True]                       # one transaction, with its fsync
    assert synchronous(store) == 2                       # FULL, as every other writer expects
    events = all_events(store, "j1")
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    kinds = [e.WhichOneof("kind") for e in events]
    assert events[0].state.state == pb.QUEUED and events[1].state.state == pb.RUNNING
    assert [e.epoch.epoch for e in events if e.HasField("epoch")] == list(range(1, EPOCHS + 1))
    assert kinds[2:-1] == ["epoch"] * EPOCHS and events[-1].state.state == pb.SUCCEEDED
    row = store.job("j1")
    assert row["state"] == pb.SUCCEEDED and row["epochs_done"] == EPOCHS
    assert store.result(row["result_sha"]) == data       # in the results table, same transaction
    assert not list((store.data_dir / "results").iterdir())


def test_progress_alone_commits_without_fsync_and_the_outcome_with_one(recorder):
    store = recorder.store
    add_job(store, "j2")
    store.commits.clear()
    recorder._record([(ex.STARTED, "j2", {"attempt": 1, "time": time.time()})])
    recorder._record([(ex.EPOCHS, "j2", epochs_block(1, 10))])
    assert store.commits == [False, False] and synchronous(store) == 2
    assert store.job("j2")["state"] == pb.RUNNING        # visible at once all the same
    recorder._record([(ex.EPOCHS, "j2", epochs_block(11, EPOCHS)), ("done", "j2", outcome_future(result_bytes()))])
    assert store.commits == [False, False, True]
    events = all_events(store, "j2")
    assert [e.sequence for e in events] == list(range(1, EPOCHS + 4))
    assert [e.epoch.epoch for e in events if e.HasField("epoch")] == list(range(1, EPOCHS + 1))


def test_a_failed_non_durable_commit_leaves_the_connection_durable(recorder):
    store = recorder.store
    add_job(store, "j3")
    with pytest.raises(RuntimeError):
        with store.tx(durable=False):
            raise RuntimeError("boom")
    assert synchronous(store) == 2


def test_a_large_result_is_a_file_a_small_one_a_row(recorder):
    store = recorder.store
    add_job(store, "big")
    add_job(store, "small")
    big, small = result_bytes(RESULT_INLINE_BYTES + 1), result_bytes()
    recorder._record([("done", "big", outcome_future(big)), ("done", "small", outcome_future(small))])
    assert store.commits[-1] is True
    rows = {j: store.job(j) for j in ("big", "small")}
    assert store.files.exists("results", rows["big"]["result_sha"])
    assert not store.files.exists("results", rows["small"]["result_sha"])
    assert store.result(rows["big"]["result_sha"]) == big and store.result(rows["small"]["result_sha"]) == small


def test_delete_removes_a_stored_result_and_get_result_reads_it_before(local):
    job = local.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()))
    for _ in watch(local, job.id):
        pass
    result = local.GetResult(pb.GetResultRequest(job_id=job.id))
    assert result.epochs_run == EPOCHS and len(result.layers) == 2
    store = local.server.manager.store
    assert store._query("SELECT COUNT(*) FROM results")[0][0] == 1
    local.DeleteJob(pb.DeleteJobRequest(job_id=job.id))
    assert store._query("SELECT COUNT(*) FROM results")[0][0] == 0


CRASH = textwrap.dedent("""
    import os, sys, time
    from concurrent.futures import Future
    from fusetrain.service import executor as ex
    from fusetrain.service.recorder import Recorder, emit
    from fusetrain.service.store import Store
    from fusetrain.service.messages import state_event
    from fusetrain.service.watch import Changes
    from fusetrain.v1 import service_pb2 as pb

    store = Store(sys.argv[1])
    data = open(sys.argv[2], "rb").read()
    now = time.time()
    with store.tx() as tx:
        tx.insert_job({"id": "c1", "state": pb.QUEUED, "spec": b"", "spec_sha": "", "created_at": now,
                       "epochs_total": 5})
        emit(tx, "c1", [state_event("c1", pb.QUEUED, now)])
    rec = Recorder(store, Changes())
    rec._record([(ex.STARTED, "c1", {"attempt": 1, "time": now})])
    real_tx = store.tx
    def crash(durable=True):          # the result file is on disk: die before the outcome commits
        if durable:
            os._exit(9)
        return real_tx(durable)
    store.tx = crash
    f = Future()
    f.set_result(ex.Outcome(ex.SUCCEEDED, result={"encoded": data, "epochs_run": 5, "compile_seconds": 0.0,
                                                  "train_seconds": 0.0, "stop_reason": "COMPLETED"}, attempt=1))
    rec._record([("done", "c1", f)])
""")


def test_a_crash_between_the_result_file_and_the_commit_recovers(tmp_path):
    data_dir = tmp_path / "data"
    data = result_bytes(RESULT_INLINE_BYTES + 10)          # a file, not a row
    (tmp_path / "result.pb").write_bytes(data)
    proc = subprocess.run([sys.executable, "-c", CRASH, str(data_dir), str(tmp_path / "result.pb")],
                          capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    assert len(list((data_dir / "results").glob("*.pb"))) == 1     # written before the crash
    store = Store(data_dir)
    try:
        row = store.job("c1")
        assert row["state"] == pb.RUNNING and row["result_sha"] is None   # nothing claims success
        started = []
        recover(store, started.append, Changes())
        assert [r["id"] for r in started] == ["c1"] and store.job("c1")["state"] == pb.QUEUED
        # the attempt that runs again records the same outcome: the file is reused, not duplicated
        rec = Recorder(store, Changes())
        try:
            rec._record([(ex.STARTED, "c1", {"attempt": 2, "time": time.time()}),
                         ("done", "c1", outcome_future(data, epochs=5))])
        finally:
            rec.close()
        row = store.job("c1")
        assert row["state"] == pb.SUCCEEDED and store.result(row["result_sha"]) == data
        assert len(list((data_dir / "results").glob("*.pb"))) == 1
        states = [e.state.state for e in all_events(store, "c1") if e.HasField("state")]
        assert states == [pb.QUEUED, pb.RUNNING, pb.QUEUED, pb.RUNNING, pb.SUCCEEDED]
    finally:
        store.close()


def test_a_watched_job_gets_every_epoch_and_state_once_in_order(served):
    """Real workers: a short job's last epochs ride with its outcome; the watcher still sees all."""
    job = served.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()))
    events = list(watch(served, job.id))
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert [e.epoch.epoch for e in events if e.HasField("epoch")] == list(range(1, EPOCHS + 1))
    states = [e.state.state for e in events if e.HasField("state")]
    assert states == [pb.QUEUED, pb.RUNNING, pb.SUCCEEDED]
    assert events[-1].state.state == pb.SUCCEEDED
    result = served.GetResult(pb.GetResultRequest(job_id=job.id))
    assert result.epochs_run == EPOCHS and len(result.history) == EPOCHS
