"""What runs inside Ray for the RayExecutor: the hub actor, a job's context and the tasks themselves.

One small actor, the hub (`Hub`, 0 CPUs, on the driver's node), carries progress one way and stop
flags the other: the job function talks only to its `ctx`, as in a pool worker, and only the server
writes the store. A task fetches its files into the node's cache first (ray_files.materialise), so
no node but the server's needs the server's data directory. `job` runs one attempt of one job;
`pack` runs K small jobs together (packfn.run_pack), their reports sent in one hub call a step and
each job's outcome (OUTCOME) through the hub as soon as it ends.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Optional

from . import executor as ex

STOP_POLL_SECONDS = 0.05     # how often a running job asks the hub for a stop flag
OUTCOME = "outcome"          # a hub event of a packed job: its Outcome, before the pack's end


class Hub:
    """The actor between running jobs and the server. A plain (one-at-a-time) actor: calls from one
    caller run in the order they were sent, so a job's events arrive in order."""

    def __init__(self):
        self.events: list = []
        self.stops: dict = {}

    def begin(self, token: int):
        """A run of `token` starts: its stop flag, if one was set before."""
        return self.stops.get(token)

    def begin_many(self, tokens: list) -> dict:
        """A pack's runs start: {token: stop flag} of those with one set before."""
        return {t: self.stops[t] for t in tokens if t in self.stops}

    def report(self, token: int, kind: str, payload) -> None:
        self.events.append((token, kind, payload))

    def report_many(self, events: list) -> None:
        self.events.extend(events)

    def stop(self, token: int):
        return self.stops.get(token)

    def stop_many(self, tokens: list) -> dict:
        return {t: self.stops[t] for t in tokens if t in self.stops}

    def set_stop(self, token: int, mode: str) -> None:
        self.stops[token] = mode

    def drain(self) -> list:
        events, self.events = self.events, []
        return events

    def forget(self, tokens: list) -> None:
        for token in tokens:
            self.stops.pop(token, None)


class _Poll:
    """A hub call asked at most every STOP_POLL_SECONDS and never waited for: fresh() is
    (True, its answer) once one has arrived since the last look, else (False, None)."""

    def __init__(self, call):
        self.call, self.pending, self.asked = call, None, time.monotonic()

    def fresh(self) -> tuple:
        import ray
        if self.pending is not None:
            ready, _ = ray.wait([self.pending], timeout=0)
            if ready:
                self.pending = None
                return True, ray.get(ready[0])
        elif time.monotonic() - self.asked >= STOP_POLL_SECONDS:
            self.pending, self.asked = self.call(), time.monotonic()
        return False, None


class Context:
    """What jobfn.run_job sees of a Ray task: report() to the hub, stop_requested() from it."""

    def __init__(self, hub, token: int, stop: Optional[str]):
        self.hub, self.token, self.stop = hub, token, stop
        self.last = None                 # the ref of the last report
        self.poll = _Poll(lambda: hub.stop.remote(token))

    def report(self, kind: str, payload) -> None:
        self.last = self.hub.report.remote(self.token, kind, payload)

    def stop_requested(self):
        if self.stop is None:
            got, stop = self.poll.fresh()
            if got:
                self.stop = stop
        return self.stop


class PackContext:
    """What packfn.run_pack sees of a Ray task: reports batched into one hub call a step, the
    pack's stop flags polled from the hub (at most every STOP_POLL_SECONDS, never waited for)."""

    def __init__(self, hub, tokens: list, extra: dict):
        self.hub, self.tokens, self.extra = hub, tokens, extra
        self.events: list = []
        self.flags: dict = {}            # index -> mode, as last seen
        self.last = None                 # the ref of the last hub call
        self.poll = _Poll(lambda: hub.stop_many.remote(tokens))

    def report(self, i: int, kind: str, payload) -> None:
        if kind == ex.STARTED:
            payload = {**payload, **self.extra}
        self.events.append((self.tokens[i], kind, payload))

    def finish(self, i: int, outcome: ex.Outcome) -> None:
        self.events.append((self.tokens[i], OUTCOME, outcome))
        self.flush()

    def flush(self) -> None:
        if self.events:
            self.last, self.events = self.hub.report_many.remote(self.events), []

    def stops(self) -> dict:
        got, flags = self.poll.fresh()
        if got:
            index = {t: i for i, t in enumerate(self.tokens)}
            self.flags = {index[t]: mode for t, mode in flags.items()}
        return self.flags

    def alone(self, i: int) -> "Context":
        self.flush()
        ctx = Context(self.hub, self.tokens[i], self.flags.get(i))
        ctx.last = self.last
        return _Alone(ctx, self)


class _Alone:
    """A pack member run by itself: a Context whose last report the pack waits for."""

    def __init__(self, ctx: Context, pack: PackContext):
        self.ctx, self.pack = ctx, pack

    def report(self, kind: str, payload) -> None:
        self.ctx.report(kind, payload)
        self.pack.last = self.ctx.last

    def stop_requested(self):
        return self.ctx.stop_requested()


def _start(task: ex.Task, files: dict) -> tuple[ex.Task, dict]:
    """Fetch the files into the node's cache and set the task's threads; (task, STARTED extras)."""
    import numba
    import ray

    from .ray_files import materialise

    task = dataclasses.replace(task, data_dir=str(materialise(files)))
    numba.set_num_threads(max(1, min(task.threads, numba.config.NUMBA_NUM_THREADS)))
    return task, {"node": ray.get_runtime_context().get_node_id(), "data_dir": task.data_dir}


def pack(tasks: list, tokens: list, hub, files: dict) -> list:
    """The Ray task of a pack: attempts of K small jobs trained together (packfn.run_pack); their
    outcomes in order, each also sent to the hub (OUTCOME) as it ended."""
    import ray

    from .packfn import run_pack

    flags = ray.get(hub.begin_many.remote(tokens))
    outcomes = [None] * len(tasks)
    keep = []
    for i, token in enumerate(tokens):
        if flags.get(token) is not None:
            outcomes[i] = ex.Outcome(ex.CANCELLED, message="cancelled before it started", attempt=tasks[i].attempt)
        else:
            keep.append(i)
    if keep:
        head, extra = _start(tasks[keep[0]], files)     # `files` holds every member's files
        for i in keep:
            tasks[i] = dataclasses.replace(tasks[i], data_dir=head.data_dir)
        ctx = PackContext(hub, [tokens[i] for i in keep], extra)
        for i, outcome in zip(keep, run_pack([tasks[i] for i in keep], ctx)):
            outcomes[i] = outcome
        if ctx.last is not None:
            ray.get(ctx.last)            # every report is in the hub before the outcomes are seen
    return outcomes


def job(task: ex.Task, token: int, hub, files: dict) -> ex.Outcome:
    """The Ray task: one attempt of one job (the body a pool worker runs for a task). `files` is
    {(kind, sha): ObjectRef}: refs inside an argument, which Ray fetches only when materialise asks."""
    import ray

    from .jobfn import run_job

    stop = ray.get(hub.begin.remote(token))
    if stop is not None:
        return ex.Outcome(ex.CANCELLED, message="cancelled before it started", attempt=task.attempt)
    task, extra = _start(task, files)
    ctx = Context(hub, token, None)
    ctx.report(ex.STARTED, {"attempt": task.attempt, "time": time.time(), "worker": os.getpid(), **extra})
    outcome = run_job(task, ctx)
    ray.get(ctx.last)                    # every report is in the hub before the outcome is seen
    return outcome


def warm() -> float:
    """Load (or compile) the engine's kernels in a worker process; the seconds it took."""
    from fusetrain import engine
    t0 = time.perf_counter()
    engine.warmup()
    return time.perf_counter() - t0
