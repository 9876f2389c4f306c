"""The executor interface: where jobs run. The job manager needs only these four operations.

    submit(task) -> Future[Outcome]   queue a task; the future resolves when it ends
    cancel(job_id, force)             graceful (next epoch boundary) or forced (end the worker now)
    close(grace)                      stop: running tasks get `grace` seconds to save a checkpoint
    (await the future)                `future.result()` or `add_done_callback`

Progress (started, epochs, checkpoints) goes to the `on_progress(job_id, kind, payload)` callable
given to the executor. pool.ProcessPool implements this with spawned worker processes; a Ray
backend implements the same with remote tasks running the same `jobfn.run_job`.
"""

from __future__ import annotations

import abc
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable, Optional

from fusetrain.v1 import job_pb2
from fusetrain.wire.metrics import EPOCH_FIELDS

# Outcome.status values.
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
SUSPENDED = "SUSPENDED"   # stopped for a server shutdown; resume from `state`

# on_progress kinds.
STARTED = "started"          # payload: {"attempt", "time", "worker"}
EPOCHS = "epochs"            # payload: float64 array (epochs, len(METRIC_FIELDS))
CHECKPOINT = "checkpoint"    # payload: TrainState.arrays()

# Columns of the per-epoch metrics arrays (epochs and result["history"]): the fields of the
# EpochMetrics message, which engine.EpochMetrics has too (tests/wire/test_metrics.py).
METRIC_FIELDS = EPOCH_FIELDS

# cancel() answers.
CANCELLED_QUEUED = "queued"      # it had not started: its future is resolved CANCELLED
CANCEL_SIGNALLED = "running"     # it is running: the outcome follows
UNKNOWN = "unknown"              # nothing to cancel (finished, or never submitted)


@dataclass
class Task:
    """Everything a worker needs to run one attempt of a job (picklable, no open handles)."""

    job_id: str
    attempt: int
    spec: bytes                   # serialized fusetrain.v1.JobSpec (without what spec_data_sha holds)
    data_dir: str                 # where datasets/ and checkpoints/ live (read only)
    threads: int
    time_limit: float             # wall seconds for this attempt
    checkpoint_seconds: float
    limits: object                # config.ServiceLimits
    threads_per_worker: int
    resume_from: Optional[str] = None   # sha of a checkpoint file to resume from
    priority: int = 0             # JobSpec.priority: higher starts first, then submission order
    job: Optional[object] = None  # specs.EngineJob made at admission (None: the worker converts `spec`)
    owner: str = ""               # the token's owner: owners take turns at equal priority
    resume_state: Optional[dict] = None  # TrainState.arrays() to resume from (a retry), before resume_from
    spec_data_sha: Optional[str] = None  # the spec's inline data tensors: <data_dir>/specdata/<sha>.pb


@dataclass
class Outcome:
    status: str                   # SUCCEEDED, FAILED, CANCELLED, SUSPENDED
    reason: str = ""              # a fusetrain.v1.FailureReason name when FAILED
    message: str = ""
    result: Optional[dict] = None  # weights, history (array of METRIC_FIELDS), final, stop_reason, epochs_run, best_epoch,
                                   # compile_seconds, train_seconds, dtype
    state: Optional[dict] = None   # TrainState.arrays() when SUSPENDED
    attempt: int = 0
    started_at: Optional[float] = None


def retries_allowed(task: Task, server_max: int) -> int:
    """The server's retry count, or the job's own `training.max_retries` when that is lower."""
    training = job_pb2.JobSpec.FromString(task.spec).training
    return min(server_max, training.max_retries) if training.HasField("max_retries") else server_max


ProgressFn = Callable[[str, str, object], None]


class Executor(abc.ABC):
    name: str = "executor"

    @abc.abstractmethod
    def submit(self, task: Task) -> "Future[Outcome]":
        """Queue `task` (FIFO); never blocks on training."""

    @abc.abstractmethod
    def cancel(self, job_id: str, force: bool = False) -> str:
        """Ask a task to stop; returns CANCELLED_QUEUED, CANCEL_SIGNALLED or UNKNOWN."""

    @abc.abstractmethod
    def close(self, grace: float = 0.0) -> None:
        """Stop taking tasks; running ones are suspended (SUSPENDED outcome with a state) within
        `grace` seconds, else ended; queued ones' futures are cancelled."""

    def running(self) -> list[str]:
        """Ids of the jobs running now."""
        return []
