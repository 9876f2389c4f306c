"""Admission: whether a job may enter the queue, decided before anything is stored or started.

A spec is checked field by field and turned into the engine's form once, here (the task carries
that form to the worker); a batch is a list of specs or a base spec and a grid; the server's queue
limit and each owner's quota are checked inside the transaction that inserts the jobs.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from typing import Callable, Optional

from fusetrain import engine
from fusetrain.v1 import job_pb2, service_pb2 as pb

from .config import ServerConfig
from . import search
from .errors import InvalidArgument, ResourceExhausted
from .grids import expand_grid, grid_size
from .specdata import split_spec
from .specs import DatasetLookup, EngineJob, check_data, check_memory, to_engine
from .store import Store, request_key

LABEL_KEY = re.compile(r"[A-Za-z0-9_.\-/]{1,63}")
MAX_LABEL_VALUE = 256


def prefixed(exc: Exception, prefix: str) -> Exception:
    """The same error with its field under `prefix` (for the items of a batch)."""
    if isinstance(exc, engine.LimitExceeded) or isinstance(exc, ResourceExhausted):
        return ResourceExhausted(prefix + exc.field, exc.message if hasattr(exc, "message") else str(exc))
    if isinstance(exc, engine.InvalidSpec):
        return InvalidArgument(prefix + exc.field, exc.message)
    if isinstance(exc, InvalidArgument):
        return InvalidArgument(prefix + exc.field, exc.message.split(": ", 1)[1])
    return exc


def scoped(request_id: str, owner: Optional[str]) -> Optional[str]:
    """A request id as stored: each owner has its own request ids (keyed by the pair)."""
    return request_key(owner, request_id)


class Admission:
    """Checks specs, batches, the queue limit and quotas against the server's limits."""

    def __init__(self, config: ServerConfig, store: Store, job_seconds: Callable[[], float]):
        self.config = config
        self.limits = config.limits
        self.store = store
        self._job_seconds = job_seconds

    def engine_job(self, spec: job_pb2.JobSpec) -> EngineJob:
        """The engine's form of a spec already admitted (recovery after a restart)."""
        return to_engine(spec, self.limits, self.config.threads_per_worker)

    def check(self, spec: job_pb2.JobSpec, lookup: Optional[DatasetLookup] = None,
              owner: Optional[str] = None) -> EngineJob:
        """Validate one spec (labels, model, optimizer, training, data); its engine form."""
        lookup = lookup or self.lookup(owner)
        self.check_labels(spec.labels, "labels")
        job = self.engine_job(spec)
        if spec.HasField("search"):
            self.check_search(spec, lookup)
        rows = check_data(spec, job, lookup, self.limits)
        train, val = rows["train"], rows["validation"]
        if spec.data.HasField("cross_validation"):
            val = train // max(1, spec.data.cross_validation.folds)
            train -= val
        check_memory(job, train, val, self.limits)
        job.rows = train
        return job

    def check_search(self, spec: job_pb2.JobSpec, lookup: DatasetLookup) -> None:
        """spec.search with its defaults written in, and every candidate it samples checked as
        a job of its own (errors named `search.candidates[i].<field>`)."""
        search.fill_defaults(spec)
        search.check(spec, self.limits.max_batch_jobs, self.limits.max_epochs)
        for i, values in enumerate(search.sample(spec.search)):
            candidate = search.candidate_spec(spec, values, spec.search.max_epochs)
            try:
                self.check(candidate, lookup)
            except (engine.InvalidSpec, InvalidArgument, ResourceExhausted) as exc:
                raise prefixed(exc, f"search.candidates[{i}].") from None

    def check_labels(self, labels, field: str) -> None:
        """A job's labels, or a ListJobs label filter: at most max_labels, keys of 1-63 characters
        A-Z a-z 0-9 _ . - /, values of at most 256 characters."""
        if len(labels) > self.limits.max_labels:
            raise InvalidArgument(field, f"{len(labels)} labels is over the limit of "
                                         f"{self.limits.max_labels} (max_labels)")
        for key, value in labels.items():
            if not LABEL_KEY.fullmatch(key):
                raise InvalidArgument(field, f"key {key[:80]!r} must be 1-63 of A-Z a-z 0-9 _ . - /")
            if len(value) > MAX_LABEL_VALUE:
                raise InvalidArgument(f"{field}.{key}", f"values are at most {MAX_LABEL_VALUE} characters")

    def lookup(self, owner: Optional[str] = None) -> DatasetLookup:
        """Dataset array shapes by id (only the owner's datasets), each read once per request."""
        seen: dict = {}

        def lookup(dataset_id: str):
            if dataset_id not in seen:
                row = self.store.dataset(dataset_id, owner)
                seen[dataset_id] = None if row is None else row["arrays"]
            return seen[dataset_id]
        return lookup

    def check_batch(self, req: pb.SubmitJobsRequest, owner: Optional[str] = None) -> tuple[list, list]:
        """(specs, engine jobs) of a SubmitJobs request: its list of specs, or its base spec
        expanded over its grid; each item's errors are named under `specs[i].` or `base.`."""
        if req.HasField("search"):
            if req.specs or req.grid or not req.HasField("base"):
                raise InvalidArgument("search", "searches over a base spec: give base, and neither specs nor a grid")
            spec = job_pb2.JobSpec()
            spec.CopyFrom(req.base)
            spec.search.CopyFrom(req.search)
            specs, prefix = [spec], ""
        elif req.specs and (req.HasField("base") or req.grid):
            raise InvalidArgument("specs", "give either a list of specs, or a base spec and a grid")
        elif req.specs:
            specs, prefix = list(req.specs), "specs[{}]."
        elif req.HasField("base"):
            n = grid_size(req.grid)
            if n > self.limits.max_batch_jobs:
                raise ResourceExhausted("grid", f"{n} combinations is over the limit of "
                                                f"{self.limits.max_batch_jobs} jobs per batch")
            expanded = n * req.base.ByteSize()
            if expanded > self.limits.max_batch_spec_bytes:
                raise ResourceExhausted("grid", f"{n} combinations of a {req.base.ByteSize()}-byte base spec "
                                                f"make {expanded} bytes of specs, over the limit of "
                                                f"{self.limits.max_batch_spec_bytes} (max_batch_spec_bytes); "
                                                f"upload the data and give a dataset_id")
            specs, prefix = expand_grid(req.base, req.grid), "base."
        else:
            raise InvalidArgument("specs", "give a list of specs, or a base spec and a grid")
        if len(specs) > self.limits.max_batch_jobs:
            raise ResourceExhausted("specs", f"{len(specs)} jobs is over the limit of "
                                             f"{self.limits.max_batch_jobs} per batch")
        lookup = self.lookup(owner)
        jobs = []
        for i, spec in enumerate(specs):
            for key, value in req.labels.items():
                spec.labels[key] = value
            try:
                jobs.append(self.check(spec, lookup))
            except (engine.InvalidSpec, InvalidArgument, ResourceExhausted) as exc:
                raise prefixed(exc, prefix.format(i)) from None
        return specs, jobs

    def check_room(self, tx, count: int, owner: Optional[str] = None) -> None:
        """The server's queue limit, then the caller's quota (all callers are one owner without
        authentication); RESOURCE_EXHAUSTED with a retry hint."""
        active = tx.count_active()
        if active + count > self.limits.max_queued_jobs:
            wait = self.retry_hint(active + count - self.limits.max_queued_jobs)
            raise ResourceExhausted("queue", f"{active} jobs are queued or running; the limit is "
                                             f"{self.limits.max_queued_jobs}; retry in about {wait:g} s",
                                    retry_after=wait)
        quota = self.limits.max_client_jobs
        if quota:
            mine = tx.count_active(owner or "")
            if mine + count > quota:
                wait = self.retry_hint(mine + count - quota)
                raise ResourceExhausted("quota", f"you have {mine} jobs queued or running and asked for "
                                                 f"{count} more; the limit per client is {quota}; retry in "
                                                 f"about {wait:g} s", retry_after=wait)

    def retry_hint(self, excess: int) -> float:
        """Seconds until about `excess` jobs have finished, from the recent job durations."""
        per_job = self._job_seconds() / max(1, self.config.workers)
        return float(min(300, max(1, math.ceil(excess * per_job))))


def new_row(spec: job_pb2.JobSpec, job: EngineJob, request_id: str, batch_id: str, now: float,
            owner: Optional[str] = None) -> dict:
    """The store row of a newly admitted job. Its inline data tensors, when large, are split off
    (specdata.py): `spec_data` holds their bytes to write as a file before the row is committed."""
    data = spec.SerializeToString(deterministic=True)
    stripped, tensors = split_spec(spec)
    return {"id": uuid.uuid4().hex[:20], "state": pb.QUEUED, "spec": stripped, "owner": owner or "",
            "spec_data": tensors, "spec_data_sha": hashlib.sha256(tensors).hexdigest() if tensors else None,
            "spec_sha": hashlib.sha256(data).hexdigest(), "request_id": scoped(request_id, owner),
            "batch_id": batch_id or None, "name": spec.name, "labels": dict(spec.labels),
            "epochs_total": job.config.epochs, "created_at": now,
            "failure_reason": 0, "message": "", "attempt": 0, "epochs_done": 0, "latest": None,
            "started_at": None, "finished_at": None, "result_sha": None, "checkpoint_sha": None,
            "next_seq": 1}
