"""The recorder: one thread that writes the executor's progress and outcomes to the store, and the
recovery of unfinished jobs at start-up.

Progress and outcomes arrive on an inbox; the recorder takes everything waiting there as one
batch (group commit: a short job's RUNNING, its epochs and its outcome in one transaction when
they arrive together), writes the batch's files first (checkpoints and results larger than
store.RESULT_INLINE_BYTES, each fsynced, then one directory fsync per kind for the batch), then
one transaction, then wakes the watchers. A smaller result goes into the store's results table in
the outcome's own transaction. A batch of progress only (RUNNING, epoch blocks) commits without
an fsync (the next durable commit covers it); a batch with an outcome or a checkpoint commits
durably, so SUCCEEDED is never visible before its result is durable. At start-up, jobs left
RUNNING by a crash are queued again (attempt count kept, resuming from their last checkpoint);
jobs left CANCELLING end CANCELLED.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from concurrent.futures import Future
from typing import Callable

from fusetrain.v1 import service_pb2 as pb

from . import executor as ex, history, metrics
from .messages import TERMINAL, epoch_metrics, pack_epoch_block, result_message, state_event, state_name
from .store import RESULT_INLINE_BYTES, Store, pack_events
from .watch import Changes

log = logging.getLogger("fusetrain.jobs")

_TRACE_FD = None
_SECONDS_COL = ex.METRIC_FIELDS.index("seconds")
_PER_SECOND_COL = ex.METRIC_FIELDS.index("samples_per_second")


def _trace_fd():
    global _TRACE_FD
    if _TRACE_FD is None:
        path = os.environ.get("FUSETRAIN_TRACE")
        _TRACE_FD = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if path else -1
    return _TRACE_FD


def trace(job_id: str, stage: str, when: float = 0.0) -> None:
    """With FUSETRAIN_TRACE=FILE set: append "job_id stage wall-clock-seconds" to FILE (one
    unbuffered write; benchmarks/service_bench.py reads it to say where a round trip's time goes).
    Without it: nothing."""
    fd = _TRACE_FD if _TRACE_FD is not None else _trace_fd()
    if fd >= 0:
        os.write(fd, f"{job_id} {stage} {when or time.time():.6f}\n".encode())


_OUTCOME_STATE = {ex.SUCCEEDED: pb.SUCCEEDED, ex.FAILED: pb.FAILED, ex.CANCELLED: pb.CANCELLED}
INBOX_BATCH = 1000          # executor updates written in one transaction at most


def emit(tx, job_id: str, events: list) -> None:
    """Append JobEvents to a job's history (their sequence numbers are set here)."""
    first = tx.reserve_sequences(job_id, len(events))
    payloads = []
    for i, event in enumerate(events):
        event.sequence = first + i
        payloads.append(event.SerializeToString())
    tx.add_events(job_id, first, len(payloads), 0, pack_events(payloads))


def resolved(outcome: ex.Outcome) -> Future:
    """A future that already holds `outcome` (for an outcome decided without the executor)."""
    f: Future = Future()
    f.set_result(outcome)
    return f


class Recorder:
    """The thread that turns executor updates into committed rows, events and files."""

    def __init__(self, store: Store, changes: Changes, history_rows: int = 0):
        self.store = store
        self.history_rows = history_rows    # max_history_rows: epoch events kept per job (history.py)
        self.files = store.files
        self.changes = changes
        self.job_seconds = 1.0          # moving average of finished jobs' run time (retry hints)
        self._inbox: queue.Queue = queue.Queue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fusetrain-recorder", daemon=True)
        self._thread.start()

    def progress(self, job_id: str, kind: str, payload) -> None:
        """The executor's on_progress callable."""
        self._inbox.put((kind, job_id, payload))

    def done(self, job_id: str, future: Future) -> None:
        """Record the outcome in `future` once it resolves."""
        trace(job_id, "outcome_queued")
        self._inbox.put(("done", job_id, future))

    def close(self) -> None:
        """Write what is in the inbox, then stop; a store that keeps failing is given up on."""
        self._inbox.put(None)
        self._thread.join(timeout=10)
        self._stopping.set()            # a recorder still retrying against a broken store gives up
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < INBOX_BATCH:
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._inbox.put(None)
                    break
                batch.append(item)
            self._record_retrying(batch)

    def _record_retrying(self, batch: list) -> None:
        """Record a batch; while the store fails (disk full, locked, I/O errors) try again with
        back-off, so outcomes are not dropped. Each try is all or nothing (files are content-
        addressed, the transaction rolls back). At close, what is left is recovered at the next
        start (RUNNING jobs are queued again)."""
        delay = 0.05
        while True:
            try:
                self._record(batch)
                return
            except Exception as exc:  # noqa: BLE001
                if self._stopping.is_set():
                    log.error("could not record %d executor updates at shutdown (%s); the next start "
                              "recovers their jobs", len(batch), exc)
                    return
                log.warning("could not record %d executor updates (%s); retrying in %.1f s",
                            len(batch), exc, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, 2.0)

    def _record(self, batch: list) -> None:
        # Files first (outside the transaction; one directory fsync per kind for the whole batch),
        # then one transaction for the whole batch: durable when it holds an outcome or a checkpoint.
        prepared, synced, inline = [], [], {}
        for kind, job_id, payload in batch:
            if kind == "done":
                if payload.cancelled():
                    continue
                outcome: ex.Outcome = payload.result()
                result_sha = checkpoint_sha = None
                if outcome.result is not None:
                    encoded = outcome.result.get("encoded") or result_message(outcome.result).SerializeToString()
                    if len(encoded) <= RESULT_INLINE_BYTES:
                        result_sha = hashlib.sha256(encoded).hexdigest()
                        inline[result_sha] = encoded
                    else:
                        result_sha = self.files.write("results", encoded, sync_dir=False)
                        synced.append("results")
                if outcome.state is not None:
                    checkpoint_sha = self.files.write_arrays("checkpoints", outcome.state, sync_dir=False)
                    synced.append("checkpoints")
                prepared.append((kind, job_id, (outcome, result_sha, checkpoint_sha)))
            elif kind == ex.CHECKPOINT:
                prepared.append((kind, job_id, self.files.write_arrays("checkpoints", payload, sync_dir=False)))
                synced.append("checkpoints")
            else:
                prepared.append((kind, job_id, payload))
        self.files.sync_dirs(synced)
        durable = any(kind in ("done", ex.CHECKPOINT) for kind, _, _ in prepared)
        stale, lines, observed = [], [], []       # observed: metrics, counted once committed
        now = time.time()
        tracing = (_TRACE_FD if _TRACE_FD is not None else _trace_fd()) >= 0
        if tracing:
            for kind, job_id, _ in prepared:
                if kind == "done":
                    trace(job_id, "commit_begin", now)
        with self.store.tx(durable=durable) as tx:
            for kind, job_id, payload in prepared:
                row = tx.job(job_id)
                if row is None or row["state"] in TERMINAL:
                    if kind == ex.CHECKPOINT:
                        stale.append(payload)
                    continue
                if kind == ex.STARTED:
                    state = pb.RUNNING if row["state"] == pb.QUEUED else row["state"]
                    tx.update_job(job_id, state=state, attempt=payload["attempt"], started_at=payload["time"])
                    if state == pb.RUNNING:
                        emit(tx, job_id, [state_event(job_id, pb.RUNNING, payload["time"],
                                                      attempt=payload["attempt"])])
                        lines.append(f"job {job_id} RUNNING attempt={payload['attempt']} "
                                     f"queued={payload['time'] - row['created_at']:.3f}s")
                        observed.append((metrics.job_started, payload["time"] - row["created_at"]))
                elif kind == ex.EPOCHS and len(payload):
                    observed.append((metrics.epochs_trained, payload, _SECONDS_COL, _PER_SECOND_COL))
                    tx.update_job(job_id, epochs_done=int(payload[-1, 0]),
                                  latest=epoch_metrics(payload[-1]).SerializeToString())
                    rows = payload[history.kept(payload[:, 0], row["epochs_total"], self.history_rows)]
                    if len(rows):                   # past max_history_rows epochs: every k-th
                        first = tx.reserve_sequences(job_id, len(rows))
                        tx.add_events(job_id, first, len(rows), 1, pack_epoch_block(rows, now))
                elif kind == ex.CHECKPOINT:
                    if row["checkpoint_sha"] and row["checkpoint_sha"] != payload:
                        stale.append(row["checkpoint_sha"])
                    tx.update_job(job_id, checkpoint_sha=payload)
                elif kind == "done":
                    if payload[1] in inline:        # the result, in the outcome's transaction
                        tx.put_result(payload[1], inline[payload[1]])
                    lines.append(self._finish(tx, row, *payload, now=now, stale=stale, observed=observed))
        if tracing:
            for kind, job_id, _ in prepared:
                if kind == "done":
                    trace(job_id, "committed")
        for sha in stale:
            self.files.remove("checkpoints", sha)
        self.changes.notify()
        for fn, *args in observed:
            fn(*args)
        for line in lines:
            log.info("%s", line)

    def _finish(self, tx, row: dict, outcome: ex.Outcome, result_sha, checkpoint_sha, now: float,
                stale: list, observed: list) -> str:
        job_id = row["id"]
        if outcome.status == ex.SUSPENDED:
            if row["checkpoint_sha"] and row["checkpoint_sha"] != checkpoint_sha:
                stale.append(row["checkpoint_sha"])
            epoch = int(outcome.state["scalars"][1]) if outcome.state is not None else 0
            message = f"suspended at epoch {epoch} for a shutdown; resumes at the next start"
            tx.update_job(job_id, state=pb.QUEUED, checkpoint_sha=checkpoint_sha, message=message)
            emit(tx, job_id, [state_event(job_id, pb.QUEUED, now, message=message, attempt=row["attempt"])])
            return f"job {job_id} QUEUED (suspended at epoch {epoch})"
        state = _OUTCOME_STATE[outcome.status]
        reason = pb.FailureReason.Value(outcome.reason) if outcome.reason else 0
        if row["state"] == pb.CANCELLING and outcome.status == ex.FAILED and outcome.result is None:
            # A worker that died (or was ended) while the job was being cancelled: what the
            # client asked for happened.
            state, reason = pb.CANCELLED, 0
            outcome = ex.Outcome(ex.CANCELLED, message=f"cancelled ({outcome.message or outcome.reason})",
                                 attempt=outcome.attempt)
        fields = {"state": state, "failure_reason": reason, "message": outcome.message,
                  "finished_at": now, "result_sha": result_sha, "checkpoint_sha": None}
        timing = ""
        if outcome.result is not None:
            r = outcome.result
            fields["epochs_done"] = r["epochs_run"]
            timing = (f" compile={r['compile_seconds']:.3f}s train={r['train_seconds']:.3f}s "
                      f"epochs={r['epochs_run']} stop={r['stop_reason']}")
        if outcome.attempt:
            fields["attempt"] = max(outcome.attempt, row["attempt"])
        if row["checkpoint_sha"]:
            stale.append(row["checkpoint_sha"])
        tx.update_job(job_id, **fields)
        emit(tx, job_id, [state_event(job_id, state, now, reason, outcome.message,
                                      fields.get("attempt", row["attempt"]))])
        started = row["started_at"] or now
        observed.append((metrics.job_finished, state_name(state), now - started,
                         outcome.result["compile_seconds"] if outcome.result is not None else None))
        self.job_seconds = 0.9 * self.job_seconds + 0.1 * max(0.0, now - started)
        why = f" reason={outcome.reason}" if outcome.reason else ""
        return (f"job {job_id} {state_name(state)}{why} attempt={fields.get('attempt', row['attempt'])} "
                f"queued={started - row['created_at']:.3f}s total={now - row['created_at']:.3f}s{timing}"
                + (f" message={outcome.message!r}" if outcome.message and state != pb.SUCCEEDED else ""))


def recover(store: Store, start: Callable[[dict], None], changes: Changes) -> None:
    """Queue again what a crash or restart left unfinished; nothing stays RUNNING. `start(row)`
    hands a queued job to the executor."""
    rows = store.unfinished_jobs()
    now = time.time()
    restart = []
    with store.tx() as tx:
        for row in rows:
            job_id = row["id"]
            if row["state"] == pb.CANCELLING:
                message = "cancelled: the server stopped before the job reached an epoch boundary"
                tx.update_job(job_id, state=pb.CANCELLED, finished_at=now, message=message)
                emit(tx, job_id, [state_event(job_id, pb.CANCELLED, now, message=message)])
                continue
            if row["state"] == pb.RUNNING:
                how = "resumes from its last checkpoint" if row["checkpoint_sha"] else "runs again"
                message = f"queued again after a restart: attempt {row['attempt']} did not finish; {how}"
                tx.update_job(job_id, state=pb.QUEUED, message=message)
                emit(tx, job_id, [state_event(job_id, pb.QUEUED, now, message=message, attempt=row["attempt"])])
                log.info("job %s QUEUED again after a restart (attempt %d, %s)", job_id, row["attempt"], how)
            restart.append(row)
    changes.notify()
    for row in restart:
        start(row)
    if restart:
        log.info("recovered %d unfinished jobs", len(restart))
