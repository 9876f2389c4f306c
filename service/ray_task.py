"""What runs inside Ray for the RayExecutor: the hub actor, a job's context and the job task itself.

One small actor, the hub (`Hub`, 0 CPUs, on the driver's node), carries progress one way and stop
flags the other: the job function talks only to its `ctx`, as in a pool worker, and only the server
writes the store. A task fetches its files into the node's cache first (ray_files.materialise), so
no node but the server's needs the server's data directory.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Optional

from . import executor as ex

STOP_POLL_SECONDS = 0.05     # how often a running job asks the hub for a stop flag


class Hub:
    """The actor between running jobs and the server. A plain (one-at-a-time) actor: calls from one
    caller run in the order they were sent, so a job's events arrive in order."""

    def __init__(self):
        self.events: list = []
        self.stops: dict = {}

    def begin(self, token: int):
        """A run of `token` starts: its stop flag, if one was set before."""
        return self.stops.get(token)

    def report(self, token: int, kind: str, payload) -> None:
        self.events.append((token, kind, payload))

    def stop(self, token: int):
        return self.stops.get(token)

    def set_stop(self, token: int, mode: str) -> None:
        self.stops[token] = mode

    def drain(self) -> list:
        events, self.events = self.events, []
        return events

    def forget(self, tokens: list) -> None:
        for token in tokens:
            self.stops.pop(token, None)


class Context:
    """What jobfn.run_job sees of a Ray task: report() to the hub, stop_requested() from it."""

    def __init__(self, hub, token: int, stop: Optional[str]):
        self.hub, self.token, self.stop = hub, token, stop
        self.last = None                 # the ref of the last report
        self.pending = None              # an outstanding hub.stop call
        self.asked = time.monotonic()

    def report(self, kind: str, payload) -> None:
        self.last = self.hub.report.remote(self.token, kind, payload)

    def stop_requested(self):
        import ray
        if self.stop is not None:
            return self.stop
        if self.pending is not None:
            ready, _ = ray.wait([self.pending], timeout=0)
            if ready:
                self.stop, self.pending = ray.get(ready[0]), None
        elif time.monotonic() - self.asked >= STOP_POLL_SECONDS:
            self.pending, self.asked = self.hub.stop.remote(self.token), time.monotonic()
        return self.stop


def job(task: ex.Task, token: int, hub, files: dict) -> ex.Outcome:
    """The Ray task: one attempt of one job (the body a pool worker runs for a task). `files` is
    {(kind, sha): ObjectRef}: refs inside an argument, which Ray fetches only when materialise asks."""
    import numba
    import ray

    from .jobfn import run_job
    from .ray_files import materialise

    stop = ray.get(hub.begin.remote(token))
    if stop is not None:
        return ex.Outcome(ex.CANCELLED, message="cancelled before it started", attempt=task.attempt)
    task = dataclasses.replace(task, data_dir=str(materialise(files)))
    numba.set_num_threads(max(1, min(task.threads, numba.config.NUMBA_NUM_THREADS)))
    ctx = Context(hub, token, None)
    ctx.report(ex.STARTED, {"attempt": task.attempt, "time": time.time(), "worker": os.getpid(),
                            "node": ray.get_runtime_context().get_node_id(), "data_dir": task.data_dir})
    outcome = run_job(task, ctx)
    ray.get(ctx.last)                    # every report is in the hub before the outcome is seen
    return outcome


def warm() -> float:
    """Load (or compile) the engine's kernels in a worker process; the seconds it took."""
    from fusetrain import engine
    t0 = time.perf_counter()
    engine.warmup()
    return time.perf_counter() - t0
