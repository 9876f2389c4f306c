"""The contract for small jobs of one kind, which Ray trains K to a task (packfn) and the local pool
one by one: each keeps its own events, cancel, retry and result, bit-identical to running alone.

On Ray the tests also check that the jobs did share a task (the STARTED payload's `packed`).
Timing-free: endless jobs are cancelled once they have shown the progress a test needs.
"""

from __future__ import annotations

import os
import signal
from dataclasses import replace

import numpy as np

from fusetrain.service import executor as ex
from fusetrain.v1 import job_pb2

from contract_helpers import admitted, assert_same_result, reference, task
from service_helpers import long_spec, seeds_data, seeds_spec

ENDLESS = 1_000_000
ROWS = len(seeds_data()[0])


def endless(seed: int, **kwargs) -> ex.Task:
    """A seeds job of a million epochs that admission counted as one row: small enough to pack."""
    return admitted(task(seeds_spec(epochs=ENDLESS, seed=seed, learning_rate=0.1 + 0.05 * seed), **kwargs), rows=1)


def planned(t: ex.Task, epochs: int) -> ex.Task:
    """The same job planned for exactly `epochs` epochs (the reference of a stopped run)."""
    spec = job_pb2.JobSpec.FromString(t.spec)
    spec.training.epochs = epochs
    return replace(t, spec=spec.SerializeToString(), job=None, attempt=1, resume_state=None)


def started_packed(rec, job_id) -> int:
    return rec.started(job_id)[-1].get("packed", 1)


def queued_behind(executor, rec, small: list) -> list:
    """Submit `small` while two long jobs hold both CPUs, then end those: the small jobs all queue
    before any starts (on Ray, three or more of one kind on two CPUs start in packs). Their futures."""
    blockers = [task(long_spec()) for _ in range(2)]
    held = [executor.submit(t) for t in blockers]
    for t in blockers:
        rec.wait_for(lambda t=t: rec.epochs(t.job_id) >= 1)
    futures = [executor.submit(t) for t in small]
    for t, f in zip(blockers, held):
        executor.cancel(t.job_id)
        assert f.result(timeout=30).status == ex.CANCELLED
    return futures


def three_queued(executor, rec, make):
    """Three small jobs of one kind queued behind two long ones: on Ray the first two start as one
    pack (three queued, two CPUs: K = 2)."""
    small = [make(i) for i in range(3)]
    return small, queued_behind(executor, rec, small)


def test_a_batch_of_small_jobs_gives_each_its_own_events_and_result(backend):
    name, executor, rec = backend
    tasks = [admitted(task(seeds_spec(epochs=150, seed=seed, learning_rate=0.1 * (1 + seed % 4))), rows=ROWS)
             for seed in range(16)]
    outcomes = [f.result(timeout=300) for f in queued_behind(executor, rec, tasks)]
    for t, o in zip(tasks, outcomes):
        assert o.status == ex.SUCCEEDED and o.attempt == 1, o
        assert_same_result(o, reference(replace(t, job=None)))
        kinds = rec.kinds(t.job_id)
        assert kinds[0] == ex.STARTED and set(kinds[1:]) == {ex.EPOCHS}
        epochs = np.concatenate([p for k, p in rec.events[t.job_id] if k == ex.EPOCHS])
        assert epochs[:, 0].tolist() == list(range(1, 151))      # each job's own epochs, in order
        assert np.array_equal(epochs[:, 1], o.result["history"][:, 1])
    if name == "ray":   # packs of half the queue (8, then 4, 2...); the last one or two alone
        assert max(started_packed(rec, t.job_id) for t in tasks) == 8
        assert sum(started_packed(rec, t.job_id) > 1 for t in tasks) >= len(tasks) - 2


def test_cancelling_one_packed_job_leaves_the_others_training(backend):
    name, executor, rec = backend
    (a, b, c), futures = three_queued(executor, rec, endless)
    for t in (a, b):
        rec.wait_for(lambda t=t: rec.epochs(t.job_id) >= 1)
    if name == "ray":
        assert started_packed(rec, a.job_id) == started_packed(rec, b.job_id) == 2
        assert rec.started(a.job_id)[0]["worker"] == rec.started(b.job_id)[0]["worker"]
    assert executor.cancel(a.job_id) == ex.CANCEL_SIGNALLED
    first = futures[0].result(timeout=30)
    assert first.status == ex.CANCELLED and first.result["stop_reason"] == "STOPPED"
    assert_same_result(first, reference(planned(a, first.result["epochs_run"])), same_status=False)
    # b goes on past where a stopped: it was not stopped with it
    rec.wait_for(lambda: rec.epochs(b.job_id) > first.result["epochs_run"] + 2, timeout=60)
    assert not futures[1].done()
    for t, f in ((b, futures[1]), (c, futures[2])):
        executor.cancel(t.job_id)
        outcome = f.result(timeout=30)
        assert outcome.status == ex.CANCELLED
        if outcome.result is not None:     # c may not have started yet
            assert_same_result(outcome, reference(planned(t, outcome.result["epochs_run"])), same_status=False)


def test_packed_jobs_whose_worker_died_run_again_from_their_own_checkpoints(backend):
    """max_retries=1: the worker of a (packed) job is killed once it and its pack-mate have each
    sent a checkpoint; each runs again as attempt 2 from its own checkpoint (on Ray both jobs of
    the pack, each in a task of its own) and, cancelled after three more epochs, has the weights
    of the job planned for exactly the epochs it ran."""
    name, executor, rec = backend
    executor._max_retries = 1
    try:
        (a, b, c), futures = three_queued(executor, rec, lambda i: replace(endless(i), checkpoint_seconds=0.2))
        for t in (a, b):
            rec.wait_for(lambda t=t: rec.checkpoints(t.job_id) >= 1)
        killed = rec.started(a.job_id)[0]["worker"]
        hit = [t for t in (a, b, c) if rec.started(t.job_id) and rec.started(t.job_id)[0]["worker"] == killed]
        os.kill(killed, signal.SIGKILL)
        if name == "ray":
            assert hit == [a, b]
        executor.cancel(c.job_id)          # its CPU (or worker) goes to the second retry
        seconds = {}
        for t in hit:
            rec.wait_for(lambda t=t: len(rec.started(t.job_id)) == 2, timeout=60)
            seconds[t.job_id] = len(rec.events[t.job_id]) - 1
        for t in hit:
            second = seconds[t.job_id]
            rec.wait_for(lambda t=t, s=second: sum(len(p) for k, p in rec.events[t.job_id][s:] if k == ex.EPOCHS) >= 3)
        outcomes = {}
        for t, f in zip((a, b, c), futures):
            executor.cancel(t.job_id)
            outcomes[t.job_id] = f.result(timeout=60)
        assert outcomes[c.job_id].status == ex.CANCELLED
    finally:
        executor._max_retries = 0
    for t in hit:
        outcome = outcomes[t.job_id]
        assert outcome.status == ex.CANCELLED and outcome.attempt == 2, outcome
        events = rec.events[t.job_id][seconds[t.job_id]:]
        assert next(p[0, 0] for k, p in events if k == ex.EPOCHS and len(p)) > 1   # from its checkpoint
        assert_same_result(outcome, reference(planned(t, outcome.result["epochs_run"])), same_status=False)
