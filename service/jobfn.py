"""The job function: one attempt of one job, from a Task to an Outcome, on the engine.

It runs wherever an executor puts it (a spawned worker process here, a Ray task later) and talks
to the outside only through `ctx`:
    ctx.report(kind, payload)   progress: executor.EPOCHS batches, executor.CHECKPOINT states
    ctx.report_last(kind, payload)  (optional) the last EPOCHS batch, sent with the outcome
    ctx.stop_requested()        None, "cancel" or "suspend", polled at every epoch boundary
No grpc, no database: it reads its dataset and checkpoint files and returns plain data.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import operator
import time
import traceback

import numpy as np

from fusetrain import engine
from fusetrain.v1 import job_pb2

from . import executor as ex
from .dataprep import fit_normalization, normalization_kind, normalize, split_folds
from .errors import ResourceExhausted
from .files import Files
from .payload import result_payload
from .searchjob import run_search
from .specs import check_memory, engine_limits, load_source, load_weights, to_engine

log = logging.getLogger("fusetrain.worker")

FLUSH_SECONDS = 0.1          # epoch metrics reach watchers at most this late
CHECK_SECONDS = 0.01         # cancel and time limit are checked at most this often
# A first attempt this small (rows x epochs x parameters) runs unwatched: no per-epoch callback,
# one compiled call for every epoch (XOR's 4 x 500 x 17 is 34,000: about half a millisecond).
# It ends well inside CHECK_SECONDS, the soonest a watched job would have seen a stop request;
# its epochs reach the store from the result's history, with its outcome.
UNWATCHED_WORK = 250_000
_CAN_CHECKPOINT = "checkpoint" in inspect.signature(engine.train).parameters

_values = operator.attrgetter(*ex.METRIC_FIELDS)


def metrics_array(metrics: list) -> np.ndarray:
    """EpochMetrics objects as a float64 array (epochs, len(METRIC_FIELDS)): cheap to send."""
    return np.array([_values(m) for m in metrics], dtype=np.float64).reshape(len(metrics),
                                                                            len(ex.METRIC_FIELDS))


# The last dataset loaded by this process: the jobs of a batch usually share one.
_dataset_cache: dict = {}


def run_job(task: ex.Task, ctx) -> ex.Outcome:
    """Train one attempt of `task.job_id`; never raises for anything the job itself did wrong."""
    started = time.time()
    deadline = time.monotonic() + task.time_limit
    try:
        return _run(task, ctx, deadline, started)
    except (engine.InvalidSpec, ResourceExhausted) as exc:
        return ex.Outcome(ex.FAILED, "INVALID_DATA", str(exc), attempt=task.attempt, started_at=started)
    except MemoryError:
        return ex.Outcome(ex.FAILED, "ENGINE_ERROR", "out of memory", attempt=task.attempt,
                          started_at=started)
    except Exception as exc:  # a bug: keep the job's record useful and the worker alive
        log.exception("job %s failed inside the engine", task.job_id)
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return ex.Outcome(ex.FAILED, "ENGINE_ERROR", last, attempt=task.attempt, started_at=started)


def prepare_data(task: ex.Task):
    """(spec, engine job, files, (x, y, row weights), (x_val, y_val, their weights), normalisation) of a
    task, loaded and checked (weights None when the data has none)."""
    spec = job_pb2.JobSpec.FromString(task.spec)
    files = Files.view(task.data_dir)      # read-only: no directory set-up in the worker
    if task.spec_data_sha:                # the inline data tensors, stored once for all their jobs
        spec.MergeFromString(files.read("specdata", task.spec_data_sha))
    # The engine form made at admission (a copy: a retry of this task must see it unchanged).
    job = (dataclasses.replace(task.job) if task.job is not None
           else to_engine(spec, task.limits, task.threads_per_worker))
    path = lambda sha: files.path("datasets", sha)  # noqa: E731
    x, y = load_source(spec.data.train, "data.train", path, cache=_dataset_cache)
    w = load_weights(spec.data.train, "data.train", path, cache=_dataset_cache)
    x_val = y_val = w_val = None
    if spec.data.HasField("validation"):
        x_val, y_val = load_source(spec.data.validation, "data.validation", path)
        w_val = load_weights(spec.data.validation, "data.validation", path)
    if spec.data.HasField("cross_validation"):
        if w is not None:   # the same rows' weights, whatever rule picks the folds
            keep, _, val, _ = split_folds(np.arange(len(x)), y, spec.data.cross_validation, job.model.loss)
            w, w_val = w[keep], w[val]
        x, y, x_val, y_val = split_folds(x, y, spec.data.cross_validation, job.model.loss)
    if job.config.validation_fraction > 0 and x_val is None and (normalization_kind(spec.model.normalization)
                                                                 or spec.HasField("search")):
        # Fit the normalisation on the training rows only (and give a search's candidates one
        # set of validation rows): hold out the very rows the engine would (its own split, same
        # seed) and hand them over as a separate validation set.
        if w is not None:
            keep, val = engine.validation_rows(job.config, len(x))
            w, w_val = w[keep], w[val]
        x, y, x_val, y_val = engine.split_validation(job.config, x, y)
        job.config = dataclasses.replace(job.config, validation_fraction=0.0)
    norm = fit_normalization(spec.model.normalization, x, job.model.dtype)
    if norm is not None:
        x = normalize(x, norm[1], norm[2], job.model.dtype)
        if x_val is not None:
            x_val = normalize(x_val, norm[1], norm[2], job.model.dtype)
    # Again in the worker, with the rows as loaded, before the engine allocates anything.
    check_memory(job, len(x), 0 if x_val is None else len(x_val), task.limits)
    return spec, job, files, (x, y, w), (x_val, y_val, w_val), norm


def _run(task: ex.Task, ctx, deadline: float, started: float) -> ex.Outcome:
    spec, job, files, (x, y, w), (x_val, y_val, w_val), norm = prepare_data(task)
    if spec.HasField("search"):
        if w is not None or w_val is not None:
            field = "data.train" if w is not None else "data.validation"
            raise engine.InvalidSpec(field, "a search does not take row weights (sample_weight, weight_array); "
                                            "class weights (training.class_weight) are fine")
        return run_search(task, spec, (x, y, x_val, y_val), norm, ctx, deadline, started)
    state = None
    if task.resume_state is not None:   # a retry after a worker died: its last checkpoint
        state = engine.TrainState.from_arrays(task.resume_state)
    elif task.resume_from:
        state = engine.TrainState.from_arrays(files.read_arrays("checkpoints", task.resume_from))

    pending: list = []
    marks = [time.monotonic(), time.monotonic()]   # last flush, last stop check
    why = [None]

    def flush() -> None:
        if pending:
            ctx.report(ex.EPOCHS, metrics_array(pending))
            pending.clear()
        marks[0] = time.monotonic()

    def callback(m) -> bool:
        # Called after every epoch: keep the common path to an append and a clock read.
        pending.append(m)
        now = time.monotonic()
        if now - marks[1] < CHECK_SECONDS:
            return False
        marks[1] = now
        if now - marks[0] >= FLUSH_SECONDS:
            flush()
        stop = ctx.stop_requested()
        if stop:
            why[0] = stop
            return True
        if now > deadline:
            why[0] = "time"
            return True
        return False

    kwargs = {}
    if _CAN_CHECKPOINT:
        kwargs = {"checkpoint": lambda s: ctx.report(ex.CHECKPOINT, s.arrays()),
                  "checkpoint_seconds": task.checkpoint_seconds}
    unwatched = state is None and len(x) * job.config.epochs * job.model.parameter_count() <= UNWATCHED_WORK
    if unwatched:
        callback, kwargs = None, {}
    result = engine.train(job.model, job.optimizer, job.config, x, y, x_val=x_val, y_val=y_val,
                          sample_weight=w, val_sample_weight=w_val, callback=callback, state=state,
                          limits=engine_limits(task.limits, task.threads_per_worker), **kwargs)
    # The history as the engine keeps it: one float64 array in METRIC_FIELDS order (not a row of
    # EpochMetrics objects each).
    rows = result.history.array() if hasattr(result.history, "array") else metrics_array(result.history)
    tail = rows if unwatched else metrics_array(pending) if pending else None
    if tail is not None and len(tail):
        # The epochs since the last flush (a short job: all of them) travel with the outcome when
        # the executor can carry them (ctx.report_last: one message, not two); else a report now.
        getattr(ctx, "report_last", ctx.report)(ex.EPOCHS, tail)
    pending.clear()
    return outcome_for(result, rows, job, task, norm, spec, why[0], started)


def outcome_for(result, rows: np.ndarray, job, task: ex.Task, norm, spec, why, started: float) -> ex.Outcome:
    """The outcome of an attempt whose training returned `result` (with history `rows`); `why`
    says what stopped it, when something did: "cancel", "suspend" or "time"."""
    out = result_payload(result, rows, job, task, norm, spec)
    outcome = lambda status, reason="", message="": ex.Outcome(  # noqa: E731
        status, reason, message or result.message, result=out, attempt=task.attempt, started_at=started)
    if result.stop_reason == engine.DIVERGED:
        if not all(np.isfinite(w).all() and np.isfinite(b).all() for w, b in out["weights"]):
            # Weights that are not finite predict nothing: keep none, and say so.
            return ex.Outcome(ex.FAILED, "DIVERGED", f"{result.message}; those weights are not finite, "
                              f"so no weights were kept", attempt=task.attempt, started_at=started)
        return outcome(ex.FAILED, "DIVERGED")
    if result.stop_reason == engine.STOPPED:
        if why == "suspend":
            return ex.Outcome(ex.SUSPENDED, message="suspended for shutdown", state=result.state.arrays(),
                              attempt=task.attempt, started_at=started)
        if why == "time":
            return outcome(ex.FAILED, "TIME_LIMIT", f"stopped after epoch {result.epochs_run}: over the "
                                                    f"time limit of {task.time_limit:g} s")
        return outcome(ex.CANCELLED, message=f"cancelled after epoch {result.epochs_run}")
    return outcome(ex.SUCCEEDED)
