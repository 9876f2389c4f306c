"""Storage faults: the database locked by another process, the database full, the disk full for
files. Each gives UNAVAILABLE (never INTERNAL), changes nothing, and the service recovers when the
fault clears; the store passes SQLite's integrity check afterwards."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
import time

import grpc
import pytest

from reliability_helpers import in_process_server, stub_for
from service_helpers import npz_bytes, upload, wait_done, xor_spec

import numpy as np

from fusetrain.v1 import service_pb2 as pb


@pytest.fixture
def served(tmp_path):
    server = in_process_server(tmp_path / "data")
    server.manager.store._conn.execute("PRAGMA busy_timeout=300")   # fail fast while locked
    channel, stub, _ = stub_for(server.address)
    stub.server = server
    yield stub
    channel.close()
    server.stop(grace=1)


def _code(call):
    try:
        call()
        return "OK", ""
    except grpc.RpcError as exc:
        return exc.code().name, exc.details()


def _integrity(stub) -> str:
    return sqlite3.connect(stub.server.manager.store.data_dir / "fusetrain.db").execute(
        "PRAGMA integrity_check").fetchone()[0]


def test_database_locked_by_another_process(served):
    before = served.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()))
    assert wait_done(served, before.id).state == pb.SUCCEEDED
    db = served.server.manager.store.data_dir / "fusetrain.db"
    locker = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys\n"
        f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
        "c.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n"
        "c.execute('ROLLBACK')\n")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        t = time.perf_counter()
        code, details = _code(lambda: served.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(), request_id="r1")))
        assert code == "UNAVAILABLE" and "locked" in details and "try again" in details, details
        assert time.perf_counter() - t < 5
        # reads go on (WAL): the earlier job is still there
        assert served.GetJob(pb.GetJobRequest(job_id=before.id)).state == pb.SUCCEEDED
    finally:
        locker.communicate("\n", timeout=10)
    job = served.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(), request_id="r1"))    # recovered
    assert wait_done(served, job.id).state == pb.SUCCEEDED
    assert len(served.ListJobs(pb.ListJobsRequest()).jobs) == 2
    assert _integrity(served) == "ok"


def test_database_full_then_recovers(served):
    conn = served.server.manager.store._conn
    done = served.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()))
    wait_done(served, done.id)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")                  # no room for one more page
    try:
        codes = set()
        for i in range(30):                                           # fill whatever room is left
            spec = xor_spec()
            spec.name = "x" * 3000
            codes.add(_code(lambda: served.SubmitJob(pb.SubmitJobRequest(spec=spec)))[0])
            if "UNAVAILABLE" in codes:
                break
        assert "UNAVAILABLE" in codes and codes <= {"OK", "UNAVAILABLE"}, codes
        code, details = _code(lambda: served.SubmitJob(pb.SubmitJobRequest(spec=spec)))
        assert code == "UNAVAILABLE" and "full" in details, details
    finally:
        conn.execute("PRAGMA max_page_count=1073741823")
    job = served.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()))
    assert wait_done(served, job.id).state == pb.SUCCEEDED
    assert served.GetResult(pb.GetResultRequest(job_id=done.id)).weights_sha256
    assert _integrity(served) == "ok"


def test_disk_full_for_files_then_recovers(served, tmp_path, monkeypatch):
    files = served.server.manager.files
    full = tmp_path / "full"
    os.symlink("/dev/full", full)                                     # writes fail with ENOSPC
    real_temp, real_write = files.temp, files.write
    monkeypatch.setattr(files, "temp", lambda: (os.open(full, os.O_WRONLY), str(full)))
    data = npz_bytes(x=np.zeros((4, 2), np.float32), y=np.zeros((4, 1), np.float32))
    code, details = _code(lambda: upload(served, data))
    assert code == "UNAVAILABLE" and "No space left" in details, details
    monkeypatch.setattr(files, "temp", real_temp)
    assert upload(served, data).id                                    # recovered

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    # Results up to RESULT_INLINE_BYTES go into the store's own table: make this one a file.
    from fusetrain.service import recorder
    monkeypatch.setattr(recorder, "RESULT_INLINE_BYTES", 0)
    monkeypatch.setattr(files, "write", no_space)                      # results cannot be written
    job = served.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()))
    time.sleep(1.0)
    assert served.GetJob(pb.GetJobRequest(job_id=job.id)).state in (pb.QUEUED, pb.RUNNING)
    monkeypatch.setattr(files, "write", real_write)                    # space again: the outcome lands
    assert wait_done(served, job.id, timeout=30).state == pb.SUCCEEDED
    result = served.GetResult(pb.GetResultRequest(job_id=job.id))
    assert result.weights_sha256 and _integrity(served) == "ok"
