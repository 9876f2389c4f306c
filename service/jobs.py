"""JobManager: the job lifecycle, transport-free (no grpc). The servicer is a thin shell over it.

    QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED   (CANCELLING while a cancel waits)

A submit is acknowledged only after its row and QUEUED event are committed. Progress and outcomes
from the executor arrive on an inbox; one recorder thread writes them (files first, then one
transaction per batch of updates) and then wakes the watchers. At start-up, jobs left RUNNING by
a crash are queued again (attempt count kept, resuming from their last checkpoint) and queued
jobs are handed to the executor in submission order.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import queue
import re
import threading
import time
import uuid
from typing import Callable, Iterator, Optional

from fusetrain import engine
from fusetrain.v1 import job_pb2, service_pb2 as pb

from . import executor as ex
from .config import ServerConfig
from .dataprep import normalize
from .datasets import inspect_npz
from .errors import (AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted,
                     Unavailable)
from .messages import (ACTIVE, TERMINAL, epoch_events, epoch_metrics, job_message, pack_epoch_block,
                       result_message, result_normalization, result_weights, state_event, state_name,
                       timestamp)
from .specs import EngineJob, check_data, engine_limits, expand_grid, grid_size, tensor_to_array, to_engine
from .store import Store, pack_events, storage_unavailable, unpack_events

log = logging.getLogger("fusetrain.jobs")

VERSION = "0.1.0"
WATCH_BATCH = 1000
_LABEL_KEY = re.compile(r"^[A-Za-z0-9_.\-/]{1,63}$")
_OUTCOME_STATE = {ex.SUCCEEDED: pb.SUCCEEDED, ex.FAILED: pb.FAILED, ex.CANCELLED: pb.CANCELLED}


def _prefixed(exc: Exception, prefix: str) -> Exception:
    """The same error with its field under `prefix` (for the items of a batch)."""
    if isinstance(exc, engine.LimitExceeded) or isinstance(exc, ResourceExhausted):
        return ResourceExhausted(prefix + exc.field, exc.message if hasattr(exc, "message") else str(exc))
    if isinstance(exc, engine.InvalidSpec):
        return InvalidArgument(prefix + exc.field, exc.message)
    if isinstance(exc, InvalidArgument):
        return InvalidArgument(prefix + exc.field, exc.message.split(": ", 1)[1])
    return exc


class JobManager:
    def __init__(self, config: ServerConfig,
                 executor_factory: Optional[Callable[[ex.ProgressFn], ex.Executor]] = None):
        self.config = config
        self.limits = config.limits
        self.store = Store(config.data_dir)
        self.files = self.store.files
        self._inbox: queue.Queue = queue.Queue()
        self._changed = threading.Condition()
        self._version = 0
        self._draining = False
        self._closed = False
        self._predict_cache: dict = {}
        self._job_seconds = 1.0         # moving average of finished jobs' run time (retry hints)
        self._stopping = threading.Event()
        if executor_factory is None:
            from .pool import ProcessPool
            executor_factory = lambda progress: ProcessPool(  # noqa: E731
                config.workers, config.threads_per_worker, progress, warmup=config.warmup,
                force_grace=config.force_grace_seconds, log_level=config.log_level)
        self.executor = executor_factory(self._progress)
        self._recorder = threading.Thread(target=self._record_loop, name="fusetrain-recorder", daemon=True)
        self._recorder.start()
        self._recover()

    # ----------------------------------------------------------------------------- info

    def server_info(self) -> pb.ServerInfo:
        lim = self.limits
        return pb.ServerInfo(
            version=VERSION, activations=list(engine.ACTIVATIONS), losses=list(engine.LOSSES),
            optimizers=list(engine.OPTIMIZERS), initializers=list(engine.INITIALIZERS),
            schedules=list(engine.SCHEDULES), dtypes=list(engine.DTYPES),
            limits=pb.Limits(max_message_bytes=lim.max_message_bytes, max_dataset_bytes=lim.max_dataset_bytes,
                             max_parameters=lim.max_parameters, max_epochs=lim.max_epochs,
                             max_queued_jobs=lim.max_queued_jobs, max_batch_jobs=lim.max_batch_jobs,
                             max_job_seconds=lim.max_job_seconds, max_threads=self.config.threads_per_worker,
                             max_rows=lim.max_rows, max_layers=lim.max_layers, max_units=lim.max_units,
                             max_client_jobs=lim.max_client_jobs),
            workers=self.config.workers, threads_per_worker=self.config.threads_per_worker,
            executor=getattr(self.executor, "name", "executor"))

    # --------------------------------------------------------------------------- datasets

    def upload_dataset(self, requests: Iterator[pb.UploadDatasetRequest]) -> pb.Dataset:
        self._check_open()
        name, size, digest = "", 0, hashlib.sha256()
        try:
            fd, tmp = self.files.temp()
        except OSError as exc:
            raise storage_unavailable(exc) from None
        try:
            with os.fdopen(fd, "wb") as f:
                for i, req in enumerate(requests):
                    if i == 0:
                        name = req.name
                        if req.format not in ("", "npz"):
                            raise InvalidArgument("format", f"unknown format {req.format!r}; expected npz")
                    size += len(req.chunk)
                    if size > self.limits.max_dataset_bytes:
                        raise ResourceExhausted("chunk", f"the dataset is over the limit of "
                                                         f"{self.limits.max_dataset_bytes} bytes")
                    digest.update(req.chunk)
                    f.write(req.chunk)
                f.flush()
                os.fsync(f.fileno())
            if size == 0:
                raise InvalidArgument("chunk", "no bytes were uploaded")
            sha = digest.hexdigest()
            known = self.store.dataset(sha)
            if known is not None:
                os.unlink(tmp)
                return self._dataset_message(known, already=True)
            arrays = inspect_npz(tmp, self.limits.max_rows * self.limits.max_units)
            self.files.commit_temp("datasets", tmp, sha)
        except BaseException as exc:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            if isinstance(exc, OSError):        # disk full, I/O error: nothing was stored
                raise storage_unavailable(exc) from None
            raise
        row = {"id": sha, "name": name, "size_bytes": size, "arrays": arrays, "created_at": time.time()}
        with self.store.tx() as tx:
            tx.insert_dataset(row)
        log.info("dataset %s uploaded (%d bytes, arrays %s)", sha[:12], size,
                 ", ".join(f"{k}{tuple(v['shape'])}" for k, v in arrays.items()))
        return self._dataset_message(row, already=False)

    def dataset(self, dataset_id: str) -> pb.Dataset:
        row = self.store.dataset(dataset_id) if dataset_id else None
        if row is None:
            raise NotFound(f"dataset {dataset_id!r} not found")
        return self._dataset_message(row, already=True)

    @staticmethod
    def _dataset_message(row: dict, already: bool) -> pb.Dataset:
        return pb.Dataset(id=row["id"], name=row["name"], size_bytes=row["size_bytes"],
                          arrays=[pb.Array(name=k, dtype=v["dtype"], shape=v["shape"])
                                  for k, v in sorted(row["arrays"].items())],
                          already_present=already, created_at=timestamp(row["created_at"]))

    # ----------------------------------------------------------------------------- submit

    def _validate(self, spec: job_pb2.JobSpec, lookup) -> EngineJob:
        for key, value in spec.labels.items():
            if not _LABEL_KEY.match(key):
                raise InvalidArgument("labels", f"key {key!r} must be 1-63 of A-Z a-z 0-9 _ . - /")
            if len(value) > 256:
                raise InvalidArgument(f"labels.{key}", "values are at most 256 characters")
        job = to_engine(spec, self.limits, self.config.threads_per_worker)
        check_data(spec, job, lookup, self.limits)
        return job

    def _lookup(self) -> Callable[[str], Optional[dict]]:
        seen: dict = {}

        def lookup(dataset_id: str):
            if dataset_id not in seen:
                row = self.store.dataset(dataset_id)
                seen[dataset_id] = None if row is None else row["arrays"]
            return seen[dataset_id]
        return lookup

    def _new_row(self, spec: job_pb2.JobSpec, job: EngineJob, request_id: str, batch_id: str,
                 now: float, owner: Optional[str] = None) -> dict:
        data = spec.SerializeToString(deterministic=True)
        return {"id": uuid.uuid4().hex[:20], "state": pb.QUEUED, "spec": data, "owner": owner or "",
                "spec_sha": hashlib.sha256(data).hexdigest(), "request_id": _scoped(request_id, owner),
                "batch_id": batch_id or None, "name": spec.name, "labels": dict(spec.labels),
                "epochs_total": job.config.epochs, "created_at": now,
                "failure_reason": 0, "message": "", "attempt": 0, "epochs_done": 0, "latest": None,
                "started_at": None, "finished_at": None, "result_sha": None, "checkpoint_sha": None,
                "next_seq": 1}

    def submit(self, spec: job_pb2.JobSpec, request_id: str = "", owner: Optional[str] = None) -> pb.Job:
        self._check_open()
        job = self._validate(spec, self._lookup())
        now = time.time()
        row = self._new_row(spec, job, request_id, "", now, owner)
        with self.store.tx() as tx:
            if request_id:
                existing = tx.job_by_request(row["request_id"])
                if existing is not None:
                    if existing["spec_sha"] != row["spec_sha"]:
                        raise AlreadyExists(f"request_id {request_id!r} was used for job {existing['id']} "
                                            f"with a different spec")
                    return job_message(existing)
            self._check_room(tx, 1, owner)
            tx.insert_job(row)
            self._emit(tx, row["id"], [state_event(row["id"], pb.QUEUED, now)])
        self._notify()
        log.info("job %s QUEUED epochs=%d%s", row["id"], job.config.epochs,
                 f" request_id={request_id}" if request_id else "")
        self._start(row, job)
        return job_message(row)

    def submit_batch(self, req: pb.SubmitJobsRequest, owner: Optional[str] = None) -> pb.SubmitJobsResponse:
        self._check_open()
        if req.specs and (req.HasField("base") or req.grid):
            raise InvalidArgument("specs", "give either a list of specs, or a base spec and a grid")
        if req.specs:
            specs, prefix = list(req.specs), "specs[{}]."
        elif req.HasField("base"):
            n = grid_size(req.grid)
            if n > self.limits.max_batch_jobs:
                raise ResourceExhausted("grid", f"{n} combinations is over the limit of "
                                                f"{self.limits.max_batch_jobs} jobs per batch")
            specs, prefix = expand_grid(req.base, req.grid), "base."
        else:
            raise InvalidArgument("specs", "give a list of specs, or a base spec and a grid")
        if len(specs) > self.limits.max_batch_jobs:
            raise ResourceExhausted("specs", f"{len(specs)} jobs is over the limit of "
                                             f"{self.limits.max_batch_jobs} per batch")
        lookup = self._lookup()
        jobs = []
        for i, spec in enumerate(specs):
            for key, value in req.labels.items():
                spec.labels[key] = value
            try:
                jobs.append(self._validate(spec, lookup))
            except (engine.InvalidSpec, InvalidArgument, ResourceExhausted) as exc:
                raise _prefixed(exc, prefix.format(i)) from None
        request_sha = hashlib.sha256(req.SerializeToString(deterministic=True)).hexdigest()
        batch_id = "batch-" + uuid.uuid4().hex[:16]
        now = time.time()
        rows = [self._new_row(spec, job, "", batch_id, now, owner) for spec, job in zip(specs, jobs)]
        with self.store.tx() as tx:
            if req.request_id:
                existing = tx.batch_by_request(_scoped(req.request_id, owner))
                if existing is not None:
                    if existing["request_sha"] != request_sha:
                        raise AlreadyExists(f"request_id {req.request_id!r} was used for batch "
                                            f"{existing['id']} with a different request")
                    old = [job_message(tx.job(i)) for i in existing["job_ids"] if tx.job(i)]
                    return pb.SubmitJobsResponse(batch_id=existing["id"], jobs=old)
            self._check_room(tx, len(rows), owner)
            for row in rows:
                tx.insert_job(row)
                self._emit(tx, row["id"], [state_event(row["id"], pb.QUEUED, now)])
            tx.insert_batch(batch_id, _scoped(req.request_id, owner), request_sha, [r["id"] for r in rows])
        self._notify()
        log.info("batch %s QUEUED %d jobs", batch_id, len(rows))
        for row, job in zip(rows, jobs):
            self._start(row, job)
        return pb.SubmitJobsResponse(batch_id=batch_id, jobs=[job_message(r) for r in rows])

    def _check_room(self, tx, count: int, owner: Optional[str] = None) -> None:
        """The server's queue limit, then the caller's quota (all callers are one owner without
        authentication); RESOURCE_EXHAUSTED with a retry hint."""
        active = tx.count_active()
        if active + count > self.limits.max_queued_jobs:
            wait = self._retry_hint(active + count - self.limits.max_queued_jobs)
            raise ResourceExhausted("queue", f"{active} jobs are queued or running; the limit is "
                                             f"{self.limits.max_queued_jobs}; retry in about {wait:g} s",
                                    retry_after=wait)
        quota = self.limits.max_client_jobs
        if quota:
            mine = tx.count_active(owner or "")
            if mine + count > quota:
                wait = self._retry_hint(mine + count - quota)
                raise ResourceExhausted("quota", f"you have {mine} jobs queued or running and asked for "
                                                 f"{count} more; the limit per client is {quota}; retry in "
                                                 f"about {wait:g} s", retry_after=wait)

    def _retry_hint(self, excess: int) -> float:
        """Seconds until about `excess` jobs have finished, from the recent job durations."""
        per_job = self._job_seconds / max(1, self.config.workers)
        return float(min(300, max(1, math.ceil(excess * per_job))))

    def _start(self, row: dict, job: EngineJob) -> None:
        task = ex.Task(job_id=row["id"], attempt=row["attempt"] + 1, spec=row["spec"],
                       data_dir=str(self.store.data_dir), threads=job.config.threads,
                       time_limit=job.time_limit, checkpoint_seconds=self.config.checkpoint_seconds,
                       limits=self.limits, threads_per_worker=self.config.threads_per_worker,
                       resume_from=row["checkpoint_sha"], priority=job.priority)
        future = self.executor.submit(task)
        future.add_done_callback(lambda f, job_id=row["id"]: self._inbox.put(("done", job_id, f)))

    def _check_open(self) -> None:
        if self._draining:
            raise Unavailable("the server is shutting down and accepts no new work")

    # ------------------------------------------------------------------------------ reads

    def _row(self, job_id: str, owner: Optional[str] = None) -> dict:
        """The job's row; NotFound when it does not exist or belongs to another owner."""
        row = self.store.job(job_id) if job_id else None
        if row is None or not _owns(owner, row):
            raise NotFound(f"job {job_id!r} not found")
        return row

    def get(self, job_id: str, owner: Optional[str] = None) -> pb.Job:
        return job_message(self._row(job_id, owner))

    def list(self, req: pb.ListJobsRequest, owner: Optional[str] = None) -> pb.ListJobsResponse:
        size = req.page_size or 100
        if size < 0 or size > 1000:
            raise InvalidArgument("page_size", f"must be between 1 and 1000, got {size}")
        for state in req.states:
            if state not in pb.JobState.values() or state == pb.JOB_STATE_UNSPECIFIED:
                raise InvalidArgument("states", f"unknown job state {state}")
        before = None
        if req.page_token:
            if not req.page_token.isdigit():
                raise InvalidArgument("page_token", "not a token returned by ListJobs")
            before = int(req.page_token)
        rows = self.store.list_jobs(list(req.states), dict(req.labels), req.batch_id, before, size + 1,
                                    owner=owner)
        more = len(rows) > size
        rows = rows[:size]
        return pb.ListJobsResponse(jobs=[job_message(r, req.include_spec) for r in rows],
                                   next_page_token=str(rows[-1]["seq"]) if more else "")

    def watch(self, job_id: str, after: int, active: Callable[[], bool] = lambda: True,
              owner: Optional[str] = None) -> Iterator[list]:
        """Lists of the events after sequence `after`, as they become ready, until the job's final
        state has been sent (at most WATCH_BATCH events a list)."""
        self._row(job_id, owner)
        if after < 0:
            raise InvalidArgument("after_sequence", "must be 0 or more")
        last = after
        while active():
            with self._changed:
                version = self._version
            ready = []
            for first, kind, payload in self.store.events(job_id, last):
                if kind == 1:
                    events = epoch_events(job_id, first, payload)
                else:
                    events = [pb.JobEvent.FromString(p) for p in unpack_events(payload)]
                ready.extend(e for e in events if e.sequence > last)
                if ready:
                    last = ready[-1].sequence
            for start in range(0, len(ready), WATCH_BATCH):
                yield ready[start:start + WATCH_BATCH]
            row = self.store.job(job_id)
            if row is None:
                return
            if row["state"] in TERMINAL and last >= row["next_seq"] - 1:
                return
            with self._changed:
                self._changed.wait_for(lambda: self._version != version or self._closed, timeout=0.5)
            if self._closed:
                return

    def result(self, job_id: str, owner: Optional[str] = None) -> pb.JobResult:
        row = self._row(job_id, owner)
        if not row["result_sha"]:
            if row["state"] in ACTIVE:
                raise FailedPrecondition(f"job {job_id} is {state_name(row['state'])}; its result is "
                                         f"not ready")
            raise FailedPrecondition(f"job {job_id} ended {state_name(row['state'])} without weights"
                                     + (f": {row['message']}" if row["message"] else ""))
        msg = pb.JobResult.FromString(self.files.read("results", row["result_sha"]))
        msg.job_id, msg.state, msg.attempt = job_id, row["state"], row["attempt"]
        if row["started_at"]:
            msg.timings.queued_seconds = max(0.0, row["started_at"] - row["created_at"])
        if row["finished_at"]:
            msg.timings.total_seconds = max(0.0, row["finished_at"] - row["created_at"])
        return msg

    def predict(self, job_id: str, x: job_pb2.Tensor, owner: Optional[str] = None) -> pb.PredictResponse:
        row = self._row(job_id, owner)
        if not row["result_sha"]:
            raise FailedPrecondition(f"job {job_id} is {state_name(row['state'])} and has no trained "
                                     f"weights to predict with")
        cached = self._predict_cache.get(job_id)
        if cached is None or cached[0] != row["result_sha"]:
            spec = job_pb2.JobSpec.FromString(row["spec"])
            model = to_engine(spec, self.limits, self.config.threads_per_worker).model
            result = pb.JobResult.FromString(self.files.read("results", row["result_sha"]))
            weights, norm = result_weights(result), result_normalization(result)
            if len(self._predict_cache) > 64:
                self._predict_cache.clear()
            cached = self._predict_cache[job_id] = (row["result_sha"], model, weights, norm)
        _, model, weights, norm = cached
        inputs = tensor_to_array(x, "x", max_elements=self.limits.max_rows * self.limits.max_units)
        if norm is not None:
            if inputs.ndim != 2 or inputs.shape[1] != model.inputs:
                raise InvalidArgument("x", f"must have shape (rows, {model.inputs}), got {list(inputs.shape)}")
            inputs = normalize(inputs, norm[0], norm[1], model.dtype)
        try:
            y = engine.predict(model, weights, inputs,
                               limits=engine_limits(self.limits, self.config.threads_per_worker))
        except engine.InvalidSpec as exc:
            raise InvalidArgument("x", exc.message) from None
        from .specs import array_to_tensor
        return pb.PredictResponse(y=array_to_tensor(y))

    # ---------------------------------------------------------------------- cancel, delete

    def cancel(self, job_id: str, force: bool = False, owner: Optional[str] = None) -> pb.Job:
        row = self._row(job_id, owner)
        if row["state"] in TERMINAL:
            return job_message(row)
        answer = self.executor.cancel(job_id, force)
        now = time.time()
        with self.store.tx() as tx:
            row = tx.job(job_id)
            if row is None or row["state"] in TERMINAL:
                pass
            elif answer == ex.CANCELLED_QUEUED:
                tx.update_job(job_id, state=pb.CANCELLED, finished_at=now, message="cancelled before it started")
                self._emit(tx, job_id, [state_event(job_id, pb.CANCELLED, now,
                                                    message="cancelled before it started")])
            elif answer == ex.CANCEL_SIGNALLED and row["state"] != pb.CANCELLING:
                message = "force-cancelling" if force else "cancelling at the next epoch boundary"
                tx.update_job(job_id, state=pb.CANCELLING, message=message)
                self._emit(tx, job_id, [state_event(job_id, pb.CANCELLING, now, message=message,
                                                    attempt=row["attempt"])])
            row = tx.job(job_id) if row is not None else None
        self._notify()
        if row is None:
            raise NotFound(f"job {job_id!r} not found")
        log.info("job %s %s (cancel%s)", job_id, state_name(row["state"]), ", force" if force else "")
        return job_message(row)

    def delete(self, job_id: str, owner: Optional[str] = None) -> None:
        with self.store.tx() as tx:
            row = tx.job(job_id) if job_id else None
            if row is None or not _owns(owner, row):
                raise NotFound(f"job {job_id!r} not found")
            if row["state"] in ACTIVE:
                raise FailedPrecondition(f"job {job_id} is {state_name(row['state'])}; cancel it first")
            tx.delete_job(job_id)
            orphan = row["result_sha"] and not tx.result_in_use(row["result_sha"])
        if orphan:
            self.files.remove("results", row["result_sha"])
        if row["checkpoint_sha"]:
            self.files.remove("checkpoints", row["checkpoint_sha"])
        self._predict_cache.pop(job_id, None)
        self._notify()
        log.info("job %s deleted", job_id)

    # ------------------------------------------------------------------ executor updates

    def _progress(self, job_id: str, kind: str, payload) -> None:
        self._inbox.put((kind, job_id, payload))

    def _record_loop(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < 1000:
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
        # Files first (outside the transaction), then one transaction for the whole batch.
        prepared = []
        for kind, job_id, payload in batch:
            if kind == "done":
                if payload.cancelled():
                    continue
                outcome: ex.Outcome = payload.result()
                result_sha = checkpoint_sha = None
                if outcome.result is not None:
                    encoded = outcome.result.get("encoded") or result_message(outcome.result).SerializeToString()
                    result_sha = self.files.write("results", encoded)
                if outcome.state is not None:
                    checkpoint_sha = self.files.write_arrays("checkpoints", outcome.state)
                prepared.append((kind, job_id, (outcome, result_sha, checkpoint_sha)))
            elif kind == ex.CHECKPOINT:
                prepared.append((kind, job_id, self.files.write_arrays("checkpoints", payload)))
            else:
                prepared.append((kind, job_id, payload))
        stale, lines = [], []
        now = time.time()
        with self.store.tx() as tx:
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
                        self._emit(tx, job_id, [state_event(job_id, pb.RUNNING, payload["time"],
                                                            attempt=payload["attempt"])])
                        lines.append(f"job {job_id} RUNNING attempt={payload['attempt']} "
                                     f"queued={payload['time'] - row['created_at']:.3f}s")
                elif kind == ex.EPOCHS and len(payload):
                    count = payload.shape[0]
                    tx.update_job(job_id, epochs_done=int(payload[-1, 0]),
                                  latest=epoch_metrics(payload[-1]).SerializeToString())
                    first = tx.reserve_sequences(job_id, count)
                    tx.add_events(job_id, first, count, 1, pack_epoch_block(payload, now))
                elif kind == ex.CHECKPOINT:
                    if row["checkpoint_sha"] and row["checkpoint_sha"] != payload:
                        stale.append(row["checkpoint_sha"])
                    tx.update_job(job_id, checkpoint_sha=payload)
                elif kind == "done":
                    lines.append(self._finish(tx, row, *payload, now=now, stale=stale))
        for sha in stale:
            self.files.remove("checkpoints", sha)
        self._notify()
        for line in lines:
            log.info("%s", line)

    def _finish(self, tx, row: dict, outcome: ex.Outcome, result_sha, checkpoint_sha, now: float,
                stale: list) -> str:
        job_id = row["id"]
        if outcome.status == ex.SUSPENDED:
            if row["checkpoint_sha"] and row["checkpoint_sha"] != checkpoint_sha:
                stale.append(row["checkpoint_sha"])
            epoch = int(outcome.state["scalars"][1]) if outcome.state is not None else 0
            message = f"suspended at epoch {epoch} for a shutdown; resumes at the next start"
            tx.update_job(job_id, state=pb.QUEUED, checkpoint_sha=checkpoint_sha, message=message)
            self._emit(tx, job_id, [state_event(job_id, pb.QUEUED, now, message=message,
                                                attempt=row["attempt"])])
            return f"job {job_id} QUEUED (suspended at epoch {epoch})"
        state = _OUTCOME_STATE[outcome.status]
        reason = pb.FailureReason.Value(outcome.reason) if outcome.reason else 0
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
        self._emit(tx, job_id, [state_event(job_id, state, now, reason, outcome.message,
                                            fields.get("attempt", row["attempt"]))])
        started = row["started_at"] or now
        self._job_seconds = 0.9 * self._job_seconds + 0.1 * max(0.0, now - started)
        why = f" reason={outcome.reason}" if outcome.reason else ""
        return (f"job {job_id} {state_name(state)}{why} attempt={fields.get('attempt', row['attempt'])} "
                f"queued={started - row['created_at']:.3f}s total={now - row['created_at']:.3f}s{timing}"
                + (f" message={outcome.message!r}" if outcome.message and state != pb.SUCCEEDED else ""))

    @staticmethod
    def _emit(tx, job_id: str, events: list) -> None:
        first = tx.reserve_sequences(job_id, len(events))
        payloads = []
        for i, event in enumerate(events):
            event.sequence = first + i
            payloads.append(event.SerializeToString())
        tx.add_events(job_id, first, len(payloads), 0, pack_events(payloads))

    def _notify(self) -> None:
        with self._changed:
            self._version += 1
            self._changed.notify_all()

    # ------------------------------------------------------------------- start and stop

    def _recover(self) -> None:
        """Queue again what a crash or restart left unfinished; nothing stays RUNNING."""
        rows = self.store.unfinished_jobs()
        now = time.time()
        restart = []
        with self.store.tx() as tx:
            for row in rows:
                job_id = row["id"]
                if row["state"] == pb.CANCELLING:
                    message = "cancelled: the server stopped before the job reached an epoch boundary"
                    tx.update_job(job_id, state=pb.CANCELLED, finished_at=now, message=message)
                    self._emit(tx, job_id, [state_event(job_id, pb.CANCELLED, now, message=message)])
                    continue
                if row["state"] == pb.RUNNING:
                    how = "resumes from its last checkpoint" if row["checkpoint_sha"] else "runs again"
                    message = f"queued again after a restart: attempt {row['attempt']} did not finish; {how}"
                    tx.update_job(job_id, state=pb.QUEUED, message=message)
                    self._emit(tx, job_id, [state_event(job_id, pb.QUEUED, now, message=message,
                                                        attempt=row["attempt"])])
                    log.info("job %s QUEUED again after a restart (attempt %d, %s)", job_id,
                             row["attempt"], how)
                restart.append(row)
        for row in restart:
            spec = job_pb2.JobSpec.FromString(row["spec"])
            try:
                job = to_engine(spec, self.limits, self.config.threads_per_worker)
            except (engine.InvalidSpec, InvalidArgument, ResourceExhausted) as exc:
                self._inbox.put(("done", row["id"], _resolved(ex.Outcome(
                    ex.FAILED, "INVALID_DATA", f"no longer valid under this server's limits: {exc}"))))
                continue
            self._start(row, job)
        if restart:
            log.info("recovered %d unfinished jobs", len(restart))

    def drain(self) -> None:
        """Accept no new work (health goes NOT_SERVING in the server)."""
        self._draining = True

    def close(self, grace: float = 0.0) -> None:
        """Stop: running jobs get `grace` seconds to save a checkpoint, else they re-run at the next start."""
        self._draining = True
        self.executor.close(grace)
        self._inbox.put(None)
        self._recorder.join(timeout=10)
        self._stopping.set()            # a recorder still retrying against a broken store gives up
        self._recorder.join(timeout=30)
        self._closed = True
        self._notify()
        self.store.close()


def _scoped(request_id: str, owner: Optional[str]) -> Optional[str]:
    """A request id as stored: each owner has its own request ids."""
    if not request_id:
        return None
    return f"{owner}/{request_id}" if owner else request_id


def _owns(owner: Optional[str], row: dict) -> bool:
    """Whether a caller (None: authentication off) may see a job."""
    return owner is None or row.get("owner", "") == owner


def _resolved(outcome: ex.Outcome):
    from concurrent.futures import Future
    f: Future = Future()
    f.set_result(outcome)
    return f
