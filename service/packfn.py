"""A pack: K small jobs of one architecture on one data set, trained together by engine.ManyRun.

Each job keeps its own id, events, stop flag, time limit, checkpoints and outcome. The pack trains
in steps (the epochs of a step doubling from one until a step takes STEP_SECONDS) and between
steps sends each job's new epochs, checkpoints them every checkpoint_seconds, and ends the jobs
whose stop flag is set (cancel, suspend) or whose time limit has passed, each with the outcome it
would have had alone (ManyRun's results are bit-identical to `train`). A job that does not match
the pack's first after all (other data or model, or an error reading it) runs alone afterwards
with jobfn.run_job, which also reports its error the usual way.

What it sees of the outside, `ctx`:
    ctx.report(i, kind, payload)   progress of tasks[i] (executor.STARTED, EPOCHS, CHECKPOINT)
    ctx.finish(i, outcome)         tasks[i] ended before the pack does
    ctx.stops()                    {i: "cancel" | "suspend"} for the stop flags set so far
    ctx.flush()                    send what was reported (after each step)
    ctx.alone(i)                   a jobfn context (report, stop_requested) for tasks[i] run alone
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import numpy as np

from fusetrain import engine

from . import executor as ex
from .jobfn import outcome_for, prepare_data, run_job
from .specs import engine_limits

log = logging.getLogger("fusetrain.worker")

STEP_SECONDS = 0.1           # a step's length once grown: how late a stop flag is seen, at most


def run_pack(tasks: list, ctx) -> list:
    """Train tasks (attempts of packable jobs, packing.pack_key equal) together; their outcomes,
    in order (those ended early were given to ctx.finish too)."""
    started = time.time()
    outcomes: list = [None] * len(tasks)
    members, first, alone = [], None, []
    for i, task in enumerate(tasks):
        try:
            spec, job, _, (x, y, w), _, norm = prepare_data(task)
        except Exception:   # noqa: BLE001 - run_job reports it as it would for the job alone
            alone.append(i)
            continue
        if first is None:
            first = (dataclasses.replace(job.model, seed=0), job.config.epochs, x, y, w)
        elif not _fits(first, job, x, y, w):
            alone.append(i)
            continue
        members.append((i, task, spec, job, norm))
    if members:
        try:
            _train(members, first, ctx, outcomes, started)
        except Exception:   # noqa: BLE001 - ManyRun refused them together: each alone says why
            log.exception("a pack of %d jobs could not train together; running them one by one", len(members))
            alone += [i for i, *_ in members if outcomes[i] is None]
    for i in sorted(alone):
        ctx.report(i, ex.STARTED, _started(tasks[i], 1))
        outcomes[i] = run_job(tasks[i], ctx.alone(i))
        ctx.finish(i, outcomes[i])
    return outcomes


def _started(task: ex.Task, packed: int) -> dict:
    return {"attempt": task.attempt, "time": time.time(), "worker": os.getpid(), "packed": packed}


def _fits(first, job, x, y, w) -> bool:
    model, epochs, x0, y0, w0 = first
    return (dataclasses.replace(job.model, seed=0) == model and job.config.epochs == epochs
            and _same(x, x0) and _same(y, y0) and _same(w, w0))


def _same(a, b) -> bool:
    return a is b or (a is not None and b is not None and a.shape == b.shape and a.dtype == b.dtype
                      and np.array_equal(a, b))


def _train(members: list, first, ctx, outcomes: list, started: float) -> None:
    _, _, x, y, w = first
    tasks = [m[1] for m in members]
    jobs = [m[3] for m in members]
    run = engine.ManyRun(jobs[0].model, [j.optimizer for j in jobs], [j.config for j in jobs], x, y,
                         seeds=[j.model.seed for j in jobs], threads=tasks[0].threads,
                         limits=engine_limits(tasks[0].limits, tasks[0].threads_per_worker), sample_weight=w)
    for i, task, *_ in members:
        ctx.report(i, ex.STARTED, _started(task, len(members)))
    ctx.flush()
    now = time.monotonic()
    deadlines = [now + t.time_limit for t in tasks]
    every = min(t.checkpoint_seconds for t in tasks)
    checkpoint_at = now + every
    active = set(range(len(members)))

    def end(m: int, why) -> None:
        i, task, spec, job, norm = members[m]
        result = run.result(m)
        outcomes[i] = outcome_for(result, result.history.array(), job, task, norm, spec, why, started)
        active.discard(m)
        if why is not None or result.stop_reason == engine.DIVERGED:
            ctx.finish(i, outcomes[i])

    epochs = 1
    while True:
        stops, now = ctx.stops(), time.monotonic()
        for m in sorted(active):
            why = stops.get(members[m][0]) or ("time" if now > deadlines[m] else None)
            if why is not None:
                end(m, why)
        live = set(run.live())
        todo = [m for m in sorted(active) if m in live]
        if not todo:
            break
        t0 = time.perf_counter()
        rows = run.advance(min(run.epochs, int(run.at[todo[0]]) + epochs), todo)
        if time.perf_counter() - t0 < STEP_SECONDS / 2:
            epochs *= 2
        for m, r in rows.items():
            ctx.report(members[m][0], ex.EPOCHS, r)
        for m in todo:
            if run.diverged[m]:
                end(m, None)
        if time.monotonic() >= checkpoint_at and run.live():
            for m in sorted(active & set(run.live())):
                ctx.report(members[m][0], ex.CHECKPOINT, run.state(m).arrays())
            checkpoint_at = time.monotonic() + every
        ctx.flush()
    for m in sorted(active):
        end(m, None)
    ctx.flush()
