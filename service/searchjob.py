"""The job function of a search job: sample its candidates, run engine.search, report the winner.

Called by jobfn for a spec with a `search`, with the data already loaded, normalised and split
(one set of validation rows for every candidate). The outcome's result is the winner's, as an
ordinary job's would be, plus the SearchResult table. A retry (after a crash or a restart)
samples and trains the same candidates again: the search is deterministic, so it ends with the
same winner and the same weights.
"""

from __future__ import annotations

import dataclasses
import math
import time

from google.protobuf import struct_pb2

from fusetrain import engine
from fusetrain.engine import search as es
from fusetrain.v1 import job_pb2, service_pb2 as pb

from . import executor as ex
from .payload import result_payload
from .search import DEFAULT_ETA, candidate_spec, sample
from .specs import engine_limits, to_engine


def run_search(task: ex.Task, spec: job_pb2.JobSpec, data: tuple, norm, ctx, deadline: float,
               started: float) -> ex.Outcome:
    s = spec.search
    x, y, x_val, y_val = data
    points = sample(s)
    candidates = []
    for values in points:
        job = to_engine(candidate_spec(spec, values), task.limits, task.threads_per_worker)
        candidates.append(es.Candidate(job.model, job.optimizer,
                                       dataclasses.replace(job.config, validation_fraction=0.0)))
    why = [None]

    def stop() -> bool:
        why[0] = ctx.stop_requested() or ("time" if time.monotonic() > deadline else None)
        return why[0] is not None

    run = es.asha if s.kind == "asha" else es.successive_halving
    min_epochs = s.max_epochs if s.kind == "random" else s.min_epochs
    eta = s.eta if s.kind != "random" else DEFAULT_ETA   # random: one rung, eta unused
    found = run(candidates, x, y, x_val, y_val, eta=float(eta), min_epochs=min_epochs, max_epochs=s.max_epochs,
                metric=s.metric, threads=task.threads,
                limits=engine_limits(task.limits, task.threads_per_worker), stop=stop)
    if found is None:
        if why[0] == "suspend":   # a shutdown: the next start runs the search again, to the same end
            return ex.Outcome(ex.SUSPENDED, message="suspended for shutdown", attempt=task.attempt,
                              started_at=started)
        if why[0] == "time":
            return ex.Outcome(ex.FAILED, "TIME_LIMIT", f"the search ran past the time limit of "
                                                       f"{task.time_limit:g} s", attempt=task.attempt,
                              started_at=started)
        return ex.Outcome(ex.CANCELLED, message="search cancelled", attempt=task.attempt, started_at=started)
    result = found.result
    epochs = found.epochs(found.winner)
    winner_spec = candidate_spec(spec, points[found.winner], epochs)
    table = search_result(spec, points, found, winner_spec)
    job = to_engine(winner_spec, task.limits, task.threads_per_worker)
    out = result_payload(result, result.history.array(), job, task, norm, spec, table)
    out["compile_seconds"], out["train_seconds"] = found.compile_seconds, found.train_seconds
    message = (f"{s.kind} search of {len(candidates)} candidates, {found.model_epochs} model-epochs: "
               f"candidate {found.winner} wins with {s.metric} {table.value:.6g} after {epochs} epochs")
    status, reason = (ex.SUCCEEDED, "") if result.stop_reason != engine.DIVERGED else (ex.FAILED, "DIVERGED")
    return ex.Outcome(status, reason, message, result=out, attempt=task.attempt, started_at=started)


def search_result(spec: job_pb2.JobSpec, points: list, found: es.SearchOutcome,
                  winner_spec: job_pb2.JobSpec) -> pb.SearchResult:
    """The SearchResult message: every candidate best first, the winner, the compute spent."""
    s = spec.search
    table = pb.SearchResult(kind=s.kind, metric=s.metric, winner=found.winner, model_epochs=found.model_epochs)
    table.winner_spec.CopyFrom(winner_spec)
    for i in found.order(s.metric):
        rungs = found.rungs[i]
        params = struct_pb2.Struct()
        params.update(points[i])
        table.candidates.append(pb.SearchCandidate(
            index=i, params=params, rungs=[pb.SearchRung(epochs=r.epochs, value=r.value) for r in rungs],
            epochs=found.epochs(i), value=rungs[-1].value if rungs else math.nan, diverged=found.diverged[i]))
    table.value = table.candidates[0].value
    return table
