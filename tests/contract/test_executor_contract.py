"""The Executor contract, run against every backend (local process pool; Ray under `make test-ray`).

Each test drives the executor directly (submit -> future, on_progress, cancel, close) with the same
tasks on both backends, and compares results with the same job function run in this process.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fusetrain.service import executor as ex

from contract_helpers import assert_same_result, dataset_task, reference, task
from service_helpers import long_spec, seeds_data, seeds_spec, xor_spec


def _long_epochs_spec(rows: int = 20_000):
    """Three epochs of online SGD through 16-512-512-1: each epoch takes seconds."""
    spec = long_spec(epochs=3, rows=rows)
    spec.model.layers[0].units = 512
    spec.model.layers.insert(1, spec.model.layers[0].__class__(units=512, activation="relu"))
    spec.training.batch_size = 1
    return spec


def test_submit_reports_progress_and_matches_the_reference(backend):
    name, executor, rec = backend
    t = task(xor_spec())
    outcome = executor.submit(t).result(timeout=120)
    assert outcome.status == ex.SUCCEEDED and outcome.attempt == 1, outcome
    kinds = rec.kinds(t.job_id)
    assert kinds[0] == ex.STARTED and set(kinds[1:]) == {ex.EPOCHS}
    assert rec.started(t.job_id)[0]["attempt"] == 1
    epochs = np.concatenate([p for k, p in rec.events[t.job_id] if k == ex.EPOCHS])
    assert epochs[:, 0].tolist() == list(range(1, 501))      # every epoch, in order, before the outcome
    assert outcome.result["final"]["train_accuracy"] == 1.0 and outcome.result["encoded"]
    assert_same_result(outcome, reference(t))


def test_graceful_cancel_stops_at_an_epoch_boundary_with_weights(backend):
    name, executor, rec = backend
    t = task(long_spec())
    future = executor.submit(t)
    rec.wait_for(lambda: rec.epochs(t.job_id) >= 3)
    assert t.job_id in executor.running()
    t0 = time.monotonic()
    assert executor.cancel(t.job_id) == ex.CANCEL_SIGNALLED
    outcome = future.result(timeout=30)
    assert outcome.status == ex.CANCELLED and time.monotonic() - t0 < 5
    assert outcome.result is not None and outcome.result["stop_reason"] == "STOPPED"
    assert outcome.result["epochs_run"] >= 3


def test_force_cancel_ends_a_long_epoch(backend):
    name, executor, rec = backend
    t = task(_long_epochs_spec())
    future = executor.submit(t)
    rec.wait_for(lambda: rec.started(t.job_id))
    time.sleep(0.3)
    t0 = time.monotonic()
    assert executor.cancel(t.job_id, force=True) == ex.CANCEL_SIGNALLED
    outcome = future.result(timeout=30)
    assert outcome.status == ex.CANCELLED and "force" in outcome.message and outcome.result is None
    assert time.monotonic() - t0 < 5
    # The backend still runs jobs afterwards.
    assert executor.submit(task(xor_spec())).result(timeout=120).status == ex.SUCCEEDED


def test_cancel_a_queued_job(backend):
    name, executor, rec = backend
    busy = [task(long_spec()) for _ in range(2)]
    futures = [executor.submit(t) for t in busy]
    for t in busy:
        rec.wait_for(lambda t=t: rec.epochs(t.job_id) >= 1)
    queued = task(xor_spec())
    future = executor.submit(queued)
    assert executor.cancel(queued.job_id) == ex.CANCELLED_QUEUED
    outcome = future.result(timeout=5)
    assert outcome.status == ex.CANCELLED and outcome.result is None
    assert executor.cancel(queued.job_id) == ex.UNKNOWN
    for t in busy:
        executor.cancel(t.job_id, force=True)
    assert {f.result(timeout=30).status for f in futures} == {ex.CANCELLED}


def test_killed_worker_fails_only_its_job_with_worker_crashed(backend):
    name, executor, rec = backend
    t = task(long_spec())
    future = executor.submit(t)
    rec.wait_for(lambda: rec.epochs(t.job_id) >= 1)
    os.kill(rec.started(t.job_id)[0]["worker"], signal.SIGKILL)
    outcome = future.result(timeout=60)
    assert outcome.status == ex.FAILED and outcome.reason == "WORKER_CRASHED", outcome
    assert executor.submit(task(xor_spec())).result(timeout=120).status == ex.SUCCEEDED


def test_time_limit(backend):
    name, executor, rec = backend
    outcome = executor.submit(task(long_spec(), time_limit=0.5)).result(timeout=60)
    assert outcome.status == ex.FAILED and outcome.reason == "TIME_LIMIT" and outcome.result is not None


def test_batch_of_jobs_identical_to_the_reference(backend):
    name, executor, rec = backend
    tasks = [task(seeds_spec(epochs=20, seed=seed)) for seed in range(24)]
    futures = [executor.submit(t) for t in tasks]
    outcomes = [f.result(timeout=300) for f in futures]
    assert all(o.status == ex.SUCCEEDED for o in outcomes)
    for t, o in zip(tasks, outcomes):
        assert_same_result(o, reference(t))
    first_layers = {o.result["weights"][0][0].tobytes() for o in outcomes}
    assert len(first_layers) == len(tasks)     # different seeds, different models


def test_a_job_runs_again_from_its_checkpoint_after_its_worker_died(backend):
    """With max_retries=1 a killed worker's job runs again (attempt 2) from the last checkpoint the
    dead worker sent, and ends with the weights of an uninterrupted run. Timing-free: the job is
    endless (a million epochs), killed once a checkpoint has arrived and cancelled once the second
    attempt has trained past that checkpoint; the reference is the same job planned for exactly
    the epochs it ran."""
    name, executor, rec = backend
    executor._max_retries = 1
    try:
        t = replace(task(long_spec()), checkpoint_seconds=0.2)
        future = executor.submit(t)
        rec.wait_for(lambda: rec.checkpoints(t.job_id) >= 1)
        os.kill(rec.started(t.job_id)[0]["worker"], signal.SIGKILL)
        rec.wait_for(lambda: len(rec.started(t.job_id)) == 2)
        second = len(rec.events[t.job_id]) - 1
        rec.wait_for(lambda: sum(len(p) for k, p in rec.events[t.job_id][second:] if k == ex.EPOCHS) >= 3)
        assert executor.cancel(t.job_id) == ex.CANCEL_SIGNALLED
        outcome = future.result(timeout=60)
    finally:
        executor._max_retries = 0
    assert outcome.status == ex.CANCELLED and outcome.attempt == 2, outcome
    assert [s["attempt"] for s in rec.started(t.job_id)] == [1, 2]
    events = rec.events[t.job_id]
    first_epoch = next(p[0, 0] for k, p in events[second:] if k == ex.EPOCHS and len(p))
    assert first_epoch > 1        # the second attempt went on from the checkpoint, not from epoch 1
    planned = long_spec(epochs=outcome.result["epochs_run"])
    assert_same_result(outcome, reference(replace(t, spec=planned.SerializeToString())), same_status=False)


@pytest.mark.parametrize("server_max,job_max", [(0, None), (1, 0)], ids=["server-0", "job-lowers-to-0"])
def test_a_job_fails_when_its_retries_are_spent(backend, server_max, job_max):
    name, executor, rec = backend
    spec = long_spec()
    if job_max is not None:
        spec.training.max_retries = job_max     # a JobSpec may lower the server's count
    executor._max_retries = server_max
    try:
        t = task(spec)
        future = executor.submit(t)
        rec.wait_for(lambda: rec.epochs(t.job_id) >= 1)
        os.kill(rec.started(t.job_id)[0]["worker"], signal.SIGKILL)
        outcome = future.result(timeout=120)
    finally:
        executor._max_retries = 0
    assert outcome.status == ex.FAILED and outcome.reason == "WORKER_CRASHED" and outcome.attempt == 1
    assert len(rec.started(t.job_id)) == 1


def test_priority_then_owners_taking_turns(backend):
    """With both workers busy, queued jobs start by priority, then owners take turns (the local
    pool's order, on every backend). One worker stays busy; the other is freed one job at a time
    (graceful cancel), so exactly one queued job can start each time."""
    name, executor, rec = backend
    busy = [task(long_spec()) for _ in range(2)]
    futures = {t.job_id: executor.submit(t) for t in busy}
    for t in busy:
        rec.wait_for(lambda t=t: rec.epochs(t.job_id) >= 1)
    queued = {}
    for label, owner, priority in [("x1", "x", 0), ("x2", "x", 0), ("x3", "x", 0), ("y1", "y", 0), ("hi", "x", 5)]:
        t = replace(task(long_spec()), owner=owner, priority=priority)
        queued[t.job_id] = label
        futures[t.job_id] = executor.submit(t)
    order, current = [], busy[1].job_id
    for _ in queued:
        assert executor.cancel(current) == ex.CANCEL_SIGNALLED
        assert futures[current].result(timeout=30).status == ex.CANCELLED
        rec.wait_for(lambda: any(rec.started(j) for j in queued if queued[j] not in order))
        started = [j for j in queued if rec.started(j) and queued[j] not in order]
        assert len(started) == 1, started
        current = started[0]
        order.append(queued[current])
    assert order == ["hi", "x1", "y1", "x2", "x3"]
    for job_id in (current, busy[0].job_id):
        executor.cancel(job_id, force=True)
        assert futures[job_id].result(timeout=30).status == ex.CANCELLED


def test_files_reach_the_job_without_a_shared_disk(backend):
    """A job reads its dataset file; on Ray through the object store into the node's own cache
    (never the server's data directory), put once for a batch of jobs."""
    name, executor, rec = backend
    x, y = seeds_data()
    tasks = [dataset_task(x, y, seeds_spec(epochs=20, seed=seed)) for seed in range(4)]
    puts = getattr(getattr(executor, "files", None), "puts", 0)
    outcomes = [f.result(timeout=120) for f in [executor.submit(t) for t in tasks]]
    for t, o in zip(tasks, outcomes):
        assert o.status == ex.SUCCEEDED, o
        assert_same_result(o, reference(t))
    if name == "ray":
        assert executor.files.puts - puts == 1          # one dataset, four jobs
        for t in tasks:
            data_dir = rec.started(t.job_id)[0]["data_dir"]
            assert data_dir != t.data_dir and (Path(data_dir) / "datasets").is_dir()


def test_close_suspends_running_jobs_with_their_state(backend):
    """Runs last in the module: close() hands back running jobs as SUSPENDED with a state."""
    name, executor, rec = backend
    t = task(long_spec())
    future = executor.submit(t)
    queued = [executor.submit(task(long_spec())) for _ in range(3)]
    rec.wait_for(lambda: rec.epochs(t.job_id) >= 2)
    executor.close(grace=10.0)
    outcome = future.result(timeout=1)
    assert outcome.status == ex.SUSPENDED and outcome.state is not None
    assert all(f.cancelled() or f.result().status in (ex.SUSPENDED, ex.CANCELLED) for f in queued)
