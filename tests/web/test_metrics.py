"""/metrics after a known sequence of calls and jobs, read with the Prometheus client's own parser:
exact counts of jobs by state, queue depth by priority, RPCs by method and code, refusals, upload
bytes, durations, samples, workers started and crashed."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import npz_bytes, seeds_data, upload, xor_spec
from web_helpers import Caller, http, long_spec, start_server

from fusetrain.v1 import service_pb2 as pb

SERVICE = "fusetrain.v1.TrainingService/"


def _samples(url: str) -> dict:
    """{(sample name, frozenset of labels): value} of the dashboard's /metrics."""
    status, headers, body = http(url + "metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def _get(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _worker_pids(server_pid: int) -> list[int]:
    """The server's worker processes (spawned children running fusetrain's worker)."""
    pids = []
    for task in Path(f"/proc/{server_pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmd = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmd:
                pids.append(int(child))
    return pids


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    proc, url = start_server(tmp_path_factory.mktemp("metrics") / "data", "--workers", "1", "--max-epochs", "1000000")
    caller = Caller(proc.address)
    try:
        yield proc, url, caller
    finally:
        caller.close()
        proc.stop()


def test_metrics_count_a_known_sequence_exactly(fresh):
    proc, url, c = fresh
    x, y = seeds_data()
    data = npz_bytes(x=x, y=y)
    upload(c, data, name="seeds")
    done = [c.wait(c.SubmitJob(pb.SubmitJobRequest(spec=xor_spec())).id) for _ in range(2)]
    time.sleep(0.3)                                 # the recorder counts right after its commit
    xor_only = _samples(url)
    assert _get(xor_only, "fusetrain_training_epochs_total") == 2 * 500
    assert _get(xor_only, "fusetrain_training_samples_total") == pytest.approx(2 * 500 * 4, rel=0.01)
    with pytest.raises(Exception) as refused:
        c.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=2_000_000)))
    assert refused.value.code().name == "RESOURCE_EXHAUSTED"
    with pytest.raises(Exception) as missing:
        c.GetJob(pb.GetJobRequest(job_id="no-such-job"))
    assert missing.value.code().name == "NOT_FOUND"
    long = c.SubmitJob(pb.SubmitJobRequest(spec=long_spec()))
    while c.GetJob(pb.GetJobRequest(job_id=long.id)).epochs_done == 0:
        time.sleep(0.05)
    waiting = []                                    # the one worker is busy: these queue
    for priority in (5, 5, 0):
        spec = xor_spec()
        spec.priority = priority
        waiting.append(c.SubmitJob(pb.SubmitJobRequest(spec=spec)).id)
    queued = _samples(url)
    assert _get(queued, "fusetrain_queue_depth", priority="5") == 2
    assert _get(queued, "fusetrain_queue_depth", priority="0") == 1
    assert _get(queued, "fusetrain_jobs", state="QUEUED") == 3 and _get(queued, "fusetrain_jobs", state="RUNNING") == 1
    for job_id in waiting:                          # cancelled before they start: they never ran
        c.CancelJob(pb.CancelJobRequest(job_id=job_id))
    c.CancelJob(pb.CancelJobRequest(job_id=long.id))
    cancelled = c.wait(long.id)
    assert [j.state for j in done] == [pb.SUCCEEDED] * 2 and cancelled.state == pb.CANCELLED
    time.sleep(0.3)                                 # the recorder counts right after its commit

    m = _samples(url)
    assert {state: _get(m, "fusetrain_jobs", state=state) for state in
            ("QUEUED", "RUNNING", "CANCELLING", "SUCCEEDED", "FAILED", "CANCELLED")} == {
        "QUEUED": 0, "RUNNING": 0, "CANCELLING": 0, "SUCCEEDED": 2, "FAILED": 0, "CANCELLED": 4}
    rpc = "fusetrain_rpc_requests_total"
    assert _get(m, rpc, method=SERVICE + "SubmitJob", code="OK") == 6
    assert _get(m, rpc, method=SERVICE + "SubmitJob", code="RESOURCE_EXHAUSTED") == 1
    assert _get(m, rpc, method=SERVICE + "GetJob", code="NOT_FOUND") == 1
    assert _get(m, rpc, method=SERVICE + "UploadDataset", code="OK") == 1
    assert _get(m, rpc, method=SERVICE + "CancelJob", code="OK") == 4
    assert _get(m, "fusetrain_rpc_duration_seconds_count", method=SERVICE + "SubmitJob", code="OK") == 6
    assert _get(m, "fusetrain_limit_refusals_total", limit="training.epochs") == 1
    assert _get(m, "fusetrain_upload_bytes_total") == len(data)
    assert _get(m, "fusetrain_job_duration_seconds_count", state="SUCCEEDED") == 2
    assert _get(m, "fusetrain_job_duration_seconds_count", state="CANCELLED") == 1     # the one that ran
    assert _get(m, "fusetrain_job_queue_wait_seconds_count") == 3
    assert not any(name == "fusetrain_queue_depth" for name, _ in m)                  # nothing waits now
    assert _get(m, "fusetrain_job_compile_seconds_count") == 3
    long_epochs = _get(m, "fusetrain_training_epochs_total") - 2 * 500     # as reported while it ran
    assert 0 < long_epochs <= cancelled.epochs_done
    samples = 2 * 500 * 4 + long_epochs * 160       # XOR: 4 rows; long: 200 rows less 20% held out
    assert _get(m, "fusetrain_training_samples_total") == pytest.approx(samples, rel=0.02)
    assert _get(m, "fusetrain_worker_starts_total") == 1 and _get(m, "fusetrain_worker_crashes_total") == 0
    assert _get(m, "fusetrain_workers") == 1
    assert any(name == "fusetrain_kernel_compile_seconds" and dict(labels)["state"] == "ready"
               for name, labels in m)


def test_a_killed_worker_counts_as_a_crash_and_a_start(fresh):
    proc, url, c = fresh
    before = _samples(url)
    pids = _worker_pids(proc.proc.pid)
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        m = _samples(url)
        if _get(m, "fusetrain_worker_starts_total") > _get(before, "fusetrain_worker_starts_total"):
            break
        time.sleep(0.1)
    assert _get(m, "fusetrain_worker_crashes_total") == _get(before, "fusetrain_worker_crashes_total") + 1
    assert _get(m, "fusetrain_worker_starts_total") == _get(before, "fusetrain_worker_starts_total") + 1
