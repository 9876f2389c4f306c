"""JobManager: the façade the servicer calls, transport-free (no grpc).

    QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED   (CANCELLING while a cancel waits)

Each concern has its own module: admission (specs, batches, queue limit, quotas), datasets
(uploads and reads), watch (event streams), predict, and the recorder (executor updates, outcomes,
recovery). This class wires them to one store and one executor and keeps the job operations that
are a few lines each: submit, read, list, result, cancel, delete. A submit is acknowledged only
after its row and QUEUED event are committed.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

from fusetrain import engine
from fusetrain.v1 import job_pb2, service_pb2 as pb

from . import executor as ex
from .admission import Admission, new_row, scoped
from .config import ServerConfig
from .datasets import Datasets
from .errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted, Unavailable
from .messages import ACTIVE, TERMINAL, job_message, state_event, state_name
from .predict import Predictor
from .recorder import Recorder, emit, recover, resolved, trace
from .specs import EngineJob
from .store import Store
from .streams import stream_limit
from .watch import Changes, Watch

log = logging.getLogger("fusetrain.jobs")

VERSION = "0.1.0"
PAGE_TOKEN = re.compile(r"[0-9]{1,18}")     # a job's seq, as ListJobs hands it out
SETTLE_SECONDS = 10.0       # a cancel's wait for an outcome the recorder has not written yet


class JobManager:
    def __init__(self, config: ServerConfig,
                 executor_factory: Optional[Callable[[ex.ProgressFn], ex.Executor]] = None):
        self.config = config
        self.limits = config.limits
        self.store = Store(config.data_dir)
        self.files = self.store.files
        self._draining = False
        self._handoff = threading.Lock()    # cancel vs. the hand-off of a committed job
        self._unsent: set = set()           # committed QUEUED jobs not yet handed to the executor
        self._spec_data_lock = threading.RLock()   # spec-data files: written vs. removed
        self.changes = Changes()
        self.recorder = Recorder(self.store, self.changes, self.limits.max_history_rows)
        self.admission = Admission(config, self.store, lambda: self.recorder.job_seconds)
        self.datasets = Datasets(self.store, self.limits)
        self.watcher = Watch(self.store, self.changes)
        self.predictor = Predictor(config, self.store)
        if executor_factory is None:
            from .pool import ProcessPool
            executor_factory = lambda progress: ProcessPool(  # noqa: E731
                config.workers, config.threads_per_worker, progress, warmup=config.warmup,
                force_grace=config.force_grace_seconds, log_level=config.log_level,
                max_retries=config.max_retries)
        self.executor = executor_factory(self.recorder.progress)
        recover(self.store, self._restart, self.changes)

    def server_info(self) -> pb.ServerInfo:
        """Version, names, limits, workers, and the kernels' warm-up across the workers."""
        lim = self.limits
        info = pb.ServerInfo(
            version=VERSION, activations=list(engine.ACTIVATIONS), losses=list(engine.LOSSES),
            optimizers=list(engine.OPTIMIZERS), initializers=list(engine.INITIALIZERS),
            schedules=list(engine.SCHEDULES), dtypes=list(engine.DTYPES),
            limits=pb.Limits(max_message_bytes=lim.max_message_bytes, max_dataset_bytes=lim.max_dataset_bytes,
                             max_parameters=lim.max_parameters, max_epochs=lim.max_epochs,
                             max_queued_jobs=lim.max_queued_jobs, max_batch_jobs=lim.max_batch_jobs,
                             max_job_seconds=lim.max_job_seconds, max_threads=self.config.threads_per_worker,
                             max_rows=lim.max_rows, max_layers=lim.max_layers, max_units=lim.max_units,
                             max_client_jobs=lim.max_client_jobs, max_labels=lim.max_labels,
                             max_dataset_decoded_bytes=lim.max_dataset_decoded_bytes,
                             max_streams=stream_limit(lim.max_streams, self.config.rpc_threads),
                             max_client_streams=lim.max_client_streams,
                             max_batch_spec_bytes=lim.max_batch_spec_bytes,
                             max_predict_rows=lim.max_predict_rows, max_predict_calls=lim.max_predict_calls,
                             max_predict_cache_bytes=lim.max_predict_cache_bytes,
                             max_reply_bytes=lim.max_reply_bytes,
                             max_job_memory_bytes=lim.max_job_memory_bytes,
                             max_upload_idle_seconds=lim.max_upload_idle_seconds,
                             max_history_rows=lim.max_history_rows),
            workers=self.config.workers, threads_per_worker=self.config.threads_per_worker,
            executor=getattr(self.executor, "name", "executor"))
        states = getattr(self.executor, "kernel_states", None)
        for k in states() if states is not None else ():
            info.kernels.add(dtype=k["dtype"], state=k["state"], workers_ready=k["workers_ready"],
                             seconds=k["seconds"], families_ready=k.get("families_ready", 0),
                             families=k.get("families", 0))
        return info

    # --------------------------------------------------------------------------- datasets

    def upload_dataset(self, requests: Iterator[pb.UploadDatasetRequest], owner: Optional[str] = None
                       ) -> pb.Dataset:
        self._check_open()
        return self.datasets.upload(requests, owner)

    def dataset(self, dataset_id: str, owner: Optional[str] = None) -> pb.Dataset:
        return self.datasets.get(dataset_id, owner)

    def list_datasets(self, prefix: str = "", owner: Optional[str] = None) -> list:
        """The caller's datasets whose id starts with `prefix`, newest first."""
        if len(prefix) > 64 or any(c not in "0123456789abcdef" for c in prefix):
            raise InvalidArgument("id_prefix", "must be at most 64 lowercase hex digits (a dataset id's start)")
        return self.datasets.list(owner, prefix)

    def delete_dataset(self, dataset_id: str, owner: Optional[str] = None) -> None:
        self.datasets.delete(dataset_id, owner)

    # ----------------------------------------------------------------------------- submit

    def submit(self, spec: job_pb2.JobSpec, request_id: str = "", owner: Optional[str] = None) -> pb.Job:
        self._check_open()
        job = self.admission.check(spec, owner=owner)
        now = time.time()
        row = new_row(spec, job, request_id, "", now, owner)
        with self._spec_data_kept([row]), self.store.tx() as tx:
            if request_id:
                existing = tx.job_by_request(row["request_id"])
                if existing is not None:
                    if existing["spec_sha"] != row["spec_sha"]:
                        raise AlreadyExists(f"request_id {request_id!r} was used for job {existing['id']} "
                                            f"with a different spec")
                    return job_message(self._whole(existing))
            self.admission.check_room(tx, 1, owner)
            tx.insert_job(row)
            self._unsent.add(row["id"])
            emit(tx, row["id"], [state_event(row["id"], pb.QUEUED, now)])
        self.changes.notify()
        trace(row["id"], "submit_committed")
        log.info("job %s QUEUED epochs=%d%s", row["id"], job.config.epochs,
                 f" request_id={request_id}" if request_id else "")
        self._start(row, job)
        return job_message(row)

    def submit_batch(self, req: pb.SubmitJobsRequest, owner: Optional[str] = None) -> pb.SubmitJobsResponse:
        self._check_open()
        specs, jobs = self.admission.check_batch(req, owner)
        request_sha = hashlib.sha256(req.SerializeToString(deterministic=True)).hexdigest()
        batch_id = "batch-" + uuid.uuid4().hex[:16]
        now = time.time()
        rows = [new_row(spec, job, "", batch_id, now, owner) for spec, job in zip(specs, jobs)]
        with self._spec_data_kept(rows), self.store.tx() as tx:
            if req.request_id:
                existing = tx.batch_by_request(scoped(req.request_id, owner))
                if existing is not None:
                    if existing["request_sha"] != request_sha:
                        raise AlreadyExists(f"request_id {req.request_id!r} was used for batch "
                                            f"{existing['id']} with a different request")
                    old = [job_message(tx.job(i)) for i in existing["job_ids"] if tx.job(i)]
                    return pb.SubmitJobsResponse(batch_id=existing["id"], jobs=old)
            self.admission.check_room(tx, len(rows), owner)
            for row in rows:
                tx.insert_job(row)
                self._unsent.add(row["id"])
                emit(tx, row["id"], [state_event(row["id"], pb.QUEUED, now)])
            tx.insert_batch(batch_id, scoped(req.request_id, owner), request_sha, [r["id"] for r in rows])
        self.changes.notify()
        log.info("batch %s QUEUED %d jobs", batch_id, len(rows))
        for row, job in zip(rows, jobs):
            self._start(row, job)
        # Each job's spec without the inline data tensors stored apart (the reply of a big grid
        # stays small; GetJob returns the whole spec).
        return pb.SubmitJobsResponse(batch_id=batch_id, jobs=[job_message(dict(r, spec_data=b"")) for r in rows])

    @contextmanager
    def _spec_data_kept(self, rows: list[dict]):
        """Write the rows' inline data tensors (each distinct one once) before their transaction;
        remove the files again that no committed row references when it fails."""
        shas = {row["spec_data_sha"]: row["spec_data"] for row in rows if row["spec_data_sha"]}
        if not shas:
            yield
            return
        # Held from the write to the commit, and by _drop_spec_data from its check to the removal,
        # so a file one submit counts on is never removed under it by a delete.
        with self._spec_data_lock:
            for sha, data in shas.items():
                self.files.write("specdata", data)
            try:
                yield
            except BaseException:
                for sha in shas:
                    self._drop_spec_data(sha)
                raise

    def _drop_spec_data(self, sha: Optional[str]) -> None:
        """Remove a spec-data file that no job references any more."""
        if not sha:
            return
        try:
            with self._spec_data_lock, self.store.tx() as tx:
                if tx.spec_data_in_use(sha):
                    return
                self.files.remove("specdata", sha)
        except Unavailable:
            log.warning("could not check whether spec data %s is still used; it is kept", sha)

    def _whole(self, row: dict) -> dict:
        """The row with its spec's inline data tensors loaded (for replies that carry the spec)."""
        return dict(row, spec_data=self.store.spec_data(row)) if row.get("spec_data_sha") else row

    def _start(self, row: dict, job: EngineJob) -> None:
        """Hand a committed QUEUED job to the executor, with the engine form made at admission."""
        task = ex.Task(job_id=row["id"], attempt=row["attempt"] + 1, spec=row["spec"],
                       spec_data_sha=row.get("spec_data_sha"),
                       data_dir=str(self.store.data_dir), threads=job.config.threads,
                       time_limit=job.time_limit, checkpoint_seconds=self.config.checkpoint_seconds,
                       limits=self.limits, threads_per_worker=self.config.threads_per_worker,
                       resume_from=row["checkpoint_sha"], priority=job.priority, job=job,
                       owner=row.get("owner") or "")
        with self._handoff:
            if row["id"] not in self._unsent:
                return                      # cancelled between its commit and now: never starts
            self._unsent.discard(row["id"])
            future = self.executor.submit(task)
        future.add_done_callback(lambda f, job_id=row["id"]: self.recorder.done(job_id, f))

    def _restart(self, row: dict) -> None:
        """Start a job recovered at start-up (its spec is converted again under today's limits)."""
        try:
            job = self.admission.engine_job(job_pb2.JobSpec.FromString(row["spec"]))
        except (engine.InvalidSpec, InvalidArgument, ResourceExhausted) as exc:
            self.recorder.done(row["id"], resolved(ex.Outcome(
                ex.FAILED, "INVALID_DATA", f"no longer valid under this server's limits: {exc}")))
            return
        self._unsent.add(row["id"])
        self._start(row, job)

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

    def row(self, job_id: str, owner: Optional[str] = None) -> dict:
        """The job's store row, for readers other than the gRPC replies (the dashboard)."""
        return self._row(job_id, owner)

    def get(self, job_id: str, owner: Optional[str] = None) -> pb.Job:
        return job_message(self._whole(self._row(job_id, owner)))

    def list(self, req: pb.ListJobsRequest, owner: Optional[str] = None) -> pb.ListJobsResponse:
        size = req.page_size or 100
        if size < 0 or size > 1000:
            raise InvalidArgument("page_size", f"must be between 1 and 1000, got {size}")
        for state in req.states:
            if state not in pb.JobState.values() or state == pb.JOB_STATE_UNSPECIFIED:
                raise InvalidArgument("states", f"unknown job state {state}")
        before = None
        if req.page_token:
            if not PAGE_TOKEN.fullmatch(req.page_token):
                raise InvalidArgument("page_token", "not a token returned by ListJobs")
            before = int(req.page_token)
        self.admission.check_labels(req.labels, "labels")
        rows = self.store.list_jobs(list(req.states), dict(req.labels), req.batch_id, before, size + 1,
                                    owner=owner)
        more = len(rows) > size
        rows = rows[:size]
        reply, total = pb.ListJobsResponse(), 0
        for i, row in enumerate(rows):
            job = job_message(self._whole(row) if req.include_spec else row, req.include_spec)
            total += job.ByteSize() + 8
            if i and total > self.limits.max_reply_bytes:
                more, rows = True, rows[:i]            # the page ends here (max_reply_bytes)
                break
            reply.jobs.append(job)
        reply.next_page_token = str(rows[-1]["seq"]) if more else ""
        return reply

    def watch(self, job_id: str, after: int, active: Callable[[], bool] = lambda: True,
              owner: Optional[str] = None) -> Iterator[list]:
        self._row(job_id, owner)
        return self.watcher.events(job_id, after, active)

    def result(self, job_id: str, owner: Optional[str] = None) -> pb.JobResult:
        row = self._row(job_id, owner)
        if not row["result_sha"]:
            if row["state"] in ACTIVE:
                raise FailedPrecondition(f"job {job_id} is {state_name(row['state'])}; its result is "
                                         f"not ready")
            raise FailedPrecondition(f"job {job_id} ended {state_name(row['state'])} without weights"
                                     + (f": {row['message']}" if row["message"] else ""))
        msg = pb.JobResult.FromString(self.store.result(row["result_sha"]))
        msg.job_id, msg.state, msg.attempt = job_id, row["state"], row["attempt"]
        if row["started_at"]:
            msg.timings.queued_seconds = max(0.0, row["started_at"] - row["created_at"])
        if row["finished_at"]:
            msg.timings.total_seconds = max(0.0, row["finished_at"] - row["created_at"])
        return msg

    def predict(self, job_id: str, x: job_pb2.Tensor, owner: Optional[str] = None) -> pb.PredictResponse:
        return self.predictor.predict(self._row(job_id, owner), x)

    # ---------------------------------------------------------------------- cancel, delete

    def cancel(self, job_id: str, force: bool = False, owner: Optional[str] = None) -> pb.Job:
        row = self._row(job_id, owner)
        if row["state"] in TERMINAL:
            return job_message(self._whole(row))
        with self._handoff:
            if job_id in self._unsent:      # committed, not handed over yet: it never starts
                self._unsent.discard(job_id)
                answer = ex.CANCELLED_QUEUED
            else:
                answer = self.executor.cancel(job_id, force)
        now = time.time()
        with self.store.tx() as tx:
            row = tx.job(job_id)
            if row is None or row["state"] in TERMINAL:
                pass
            elif answer == ex.CANCELLED_QUEUED:
                tx.update_job(job_id, state=pb.CANCELLED, finished_at=now, message="cancelled before it started")
                emit(tx, job_id, [state_event(job_id, pb.CANCELLED, now, message="cancelled before it started")])
            elif answer == ex.CANCEL_SIGNALLED and row["state"] != pb.CANCELLING:
                message = "force-cancelling" if force else "cancelling at the next epoch boundary"
                tx.update_job(job_id, state=pb.CANCELLING, message=message)
                emit(tx, job_id, [state_event(job_id, pb.CANCELLING, now, message=message,
                                              attempt=row["attempt"])])
            row = tx.job(job_id) if row is not None else None
        self.changes.notify()
        if row is not None and answer == ex.UNKNOWN and row["state"] in ACTIVE:
            row = self._settled(job_id, row)
        if row is None:
            raise NotFound(f"job {job_id!r} not found")
        log.info("job %s %s (cancel%s)", job_id, state_name(row["state"]), ", force" if force else "")
        return job_message(self._whole(row))

    def _settled(self, job_id: str, row: dict) -> Optional[dict]:
        """The row once the recorder has written the outcome the executor already has (a job the
        executor no longer holds has ended; its row may lag behind for a moment), so a cancel never
        answers QUEUED for a job that has run. Waits at most SETTLE_SECONDS."""
        end = time.monotonic() + SETTLE_SECONDS
        while row is not None and row["state"] not in TERMINAL and time.monotonic() < end:
            version = self.changes.version()
            row = self.store.job(job_id)
            if row is not None and row["state"] not in TERMINAL:
                self.changes.wait(version, timeout=max(0.0, end - time.monotonic()))
        return row

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
                tx.delete_result(row["result_sha"])
        if orphan:
            self.files.remove("results", row["result_sha"])
        if row["checkpoint_sha"]:
            self.files.remove("checkpoints", row["checkpoint_sha"])
        self._drop_spec_data(row["spec_data_sha"])
        self.predictor.forget(job_id)
        self.changes.notify()
        log.info("job %s deleted", job_id)

    # ------------------------------------------------------------------- start and stop

    def drain(self) -> None:
        """Accept no new work (health goes NOT_SERVING in the server)."""
        self._draining = True

    def close(self, grace: float = 0.0) -> None:
        """Stop: running jobs get `grace` seconds to save a checkpoint, else they re-run at the next start."""
        self._draining = True
        self.executor.close(grace)
        self.predictor.close()
        self.recorder.close()
        self.changes.close()
        self.store.close()


def _owns(owner: Optional[str], row: dict) -> bool:
    """Whether a caller (None: authentication off) may see a job."""
    return owner is None or row.get("owner", "") == owner
