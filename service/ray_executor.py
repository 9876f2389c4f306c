"""RayExecutor: the Executor on a Ray cluster; each job attempt is one Ray task running jobfn.run_job.

    server process (the Ray driver)                 Ray workers (any node)
    submit(task) -> _job.remote(task, token, hub)   _job: hub.begin, STARTED, run_job(task, ctx)
    _loop: ray.wait(refs), hub.drain() -> on_progress   ctx.report    -> hub.report   (fire and forget)
           resolve futures (after draining the hub)     ctx.stop_requested -> hub.stop (polled)
    cancel: hub.set_stop (graceful) | ray.cancel(force=True)

One small actor, the hub (`_Hub`, 0 CPUs, on the driver's node), carries progress one way and stop
flags the other: the job function talks only to its `ctx`, as in a pool worker, and only the server
writes the store. A task reserves `num_cpus` = the job's thread count; the engine sets Numba's and
BLAS's thread counts from the job inside the task. Ray is imported when a RayExecutor is made (after
the private cluster's token is in the environment: Ray reads it once) and in Ray's workers.

Worker or node death: Ray runs the task again up to `max_retries` times (the hub counts the starts,
so each run reports its attempt number); after that the job FAILS with WORKER_CRASHED.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Optional

from . import executor as ex

log = logging.getLogger("fusetrain.ray")

POLL_SECONDS = 0.02          # how often the driver collects progress and finished tasks
STOP_POLL_SECONDS = 0.05     # how often a running job asks the hub for a stop flag
LOCAL = ("", "local")
ray = rex = None             # imported by RayExecutor()        # --ray-address values that start a private single-node Ray
_THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class _Hub:
    """The actor between running jobs and the server. A plain (one-at-a-time) actor: calls from one
    caller run in the order they were sent, so a job's events arrive in order."""

    def __init__(self):
        self.events: list = []
        self.stops: dict = {}
        self.starts: dict = {}

    def begin(self, token: int):
        """A run of `token` starts: how many runs it has had (1 the first time), and its stop flag."""
        self.starts[token] = self.starts.get(token, 0) + 1
        return self.starts[token], self.stops.get(token)

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
            self.starts.pop(token, None)


class _Context:
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


def _job(task: ex.Task, token: int, hub) -> ex.Outcome:
    """The Ray task: one run of one job attempt (the body a pool worker runs for a task)."""
    import numba
    import ray

    from .jobfn import run_job

    runs, stop = ray.get(hub.begin.remote(token))
    task.attempt += runs - 1             # Ray ran it again after a worker or node died
    if stop is not None:
        return ex.Outcome(ex.CANCELLED, message="cancelled before it started", attempt=task.attempt)
    numba.set_num_threads(max(1, min(task.threads, numba.config.NUMBA_NUM_THREADS)))
    ctx = _Context(hub, token, None)
    ctx.report(ex.STARTED, {"attempt": task.attempt, "time": time.time(), "worker": os.getpid(),
                            "node": ray.get_runtime_context().get_node_id()})
    outcome = run_job(task, ctx)
    ray.get(ctx.last)                    # every report is in the hub before the outcome is seen
    return outcome


def _warm() -> float:
    """Load (or compile) the engine's kernels in a worker process; the seconds it took."""
    from fusetrain import engine
    t0 = time.perf_counter()
    engine.warmup()
    return time.perf_counter() - t0


@dataclass
class _Run:
    """One submitted attempt and what the driver knows of it."""

    task: ex.Task
    token: int
    future: Future
    ref: object = None
    started: bool = False
    deadline: Optional[float] = None
    kill_outcome: Optional[ex.Outcome] = None
    abandoned: bool = False          # its future was resolved already (cancelled before it started)


class RayExecutor(ex.Executor):
    name = "ray"

    def __init__(self, on_progress: ex.ProgressFn, address: str = "local", workers: int = 1,
                 threads_per_worker: int = 1, max_retries: int = 0, force_grace: float = 5.0,
                 warmup: bool = True, object_store_bytes: int = 512 << 20):
        """`address`: "local" starts a private single-node Ray on 127.0.0.1 with
        `workers * threads_per_worker` CPUs (stopped by close()); anything else is given to
        ray.init(address=...) ("auto", "HOST:6379", "ray://HOST:10001")."""
        self._on_progress = on_progress
        self._force_grace = force_grace
        self._max_retries = max_retries
        self._lock = threading.RLock()
        self._runs: dict[str, _Run] = {}           # job id -> run, while its future is unresolved
        self._by_ref: dict = {}                    # ObjectRef -> run, while the task is in Ray
        self._tokens = itertools.count(1)
        self._closing = False
        self._stopped = threading.Event()
        self._wake = threading.Event()
        self._ready = threading.Event()
        env = {k: str(threads_per_worker) for k in _THREAD_VARS}
        if os.environ.get("NUMBA_CACHE_DIR"):
            env["NUMBA_CACHE_DIR"] = os.environ["NUMBA_CACHE_DIR"]
        runtime_env = {"env_vars": env}
        t0 = time.perf_counter()
        self.private = address in LOCAL
        if self.private and not os.environ.get("RAY_AUTH_MODE") and "ray" not in sys.modules:
            # Ray 2.60 listens on every interface: a private cluster gets a token of its own
            # (in this process's environment, inherited by Ray's processes; nothing written to disk).
            os.environ["RAY_AUTH_MODE"] = "token"
            os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
        global ray, rex
        import ray
        from ray import exceptions as rex
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        if self.private:
            ray.init(num_cpus=max(1, workers * threads_per_worker), include_dashboard=False,
                     _node_ip_address="127.0.0.1", object_store_memory=object_store_bytes,
                     runtime_env=runtime_env, namespace="fusetrain", log_to_driver=True,
                     configure_logging=False)
        else:
            ray.init(address=address, runtime_env=runtime_env, namespace="fusetrain", log_to_driver=True,
                     configure_logging=False)
        self.start_seconds = time.perf_counter() - t0
        resources = ray.cluster_resources()
        log.info("ray %s: %s cluster with %g CPUs on %d node(s), connected in %.2f s", ray.__version__,
                 "a private" if self.private else f"the {address}", resources.get("CPU", 0),
                 len([n for n in ray.nodes() if n.get("Alive")]), self.start_seconds)
        self._hub = ray.remote(num_cpus=0)(_Hub).options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(),
                                                               soft=False)).remote()
        self._job = ray.remote(_job)
        self._thread = threading.Thread(target=self._loop, name="fusetrain-ray", daemon=True)
        self._thread.start()
        threading.Thread(target=self._warm, args=(int(resources.get("CPU", 1)) if warmup else 0,),
                         name="fusetrain-ray-warm", daemon=True).start()

    # ------------------------------------------------------------------------- interface

    def submit(self, task: ex.Task) -> Future:
        future: Future = Future()
        with self._lock:
            if self._closing:
                future.cancel()
                return future
            run = _Run(task, next(self._tokens), future)
            run.ref = self._job.options(num_cpus=max(1, task.threads), max_retries=self._max_retries,
                                        name=f"fusetrain-job-{task.job_id}").remote(task, run.token, self._hub)
            self._runs[task.job_id] = run
            self._by_ref[run.ref] = run
        self._wake.set()
        return future

    def cancel(self, job_id: str, force: bool = False) -> str:
        with self._lock:
            run = self._runs.get(job_id)
            if run is None:
                return ex.UNKNOWN
            if run.started:
                if force:
                    run.kill_outcome = ex.Outcome(ex.CANCELLED, message="force-cancelled: the worker was ended",
                                                  attempt=run.task.attempt)
                    ray.cancel(run.ref, force=True)
                else:
                    self._hub.set_stop.remote(run.token, "cancel")
                return ex.CANCEL_SIGNALLED
            # Not started (as far as the driver knows): answer now; the task, if Ray starts it,
            # sees the flag at its start (or within one poll if it had just begun) and ends.
            self._hub.set_stop.remote(run.token, "cancel")
            del self._runs[job_id]
            run.abandoned = True
        run.future.set_result(ex.Outcome(ex.CANCELLED, message="cancelled before it started"))
        return ex.CANCELLED_QUEUED

    def close(self, grace: float = 0.0) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
            queued = [r for r in self._runs.values() if not r.started]
            for run in queued:
                del self._runs[run.task.job_id]
                run.abandoned = True
                self._hub.set_stop.remote(run.token, "cancel")
            for run in self._runs.values():
                self._hub.set_stop.remote(run.token, "suspend")
        for run in queued:
            run.future.cancel()
        end = time.monotonic() + grace
        while time.monotonic() < end and self.running():
            time.sleep(0.02)
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout=10)
        with self._lock:
            left = list(self._runs.values())
            self._runs.clear()
        for run in left:
            run.future.cancel()
        try:
            ray.shutdown()     # a private cluster stops; a shared one ends this driver's tasks
        except Exception:      # noqa: BLE001 - shutting down: nothing more to do
            log.exception("ray.shutdown failed")

    def running(self) -> list[str]:
        with self._lock:
            return [job_id for job_id, r in self._runs.items() if r.started]

    def wait_ready(self, timeout: Optional[float] = None) -> bool:
        """Block until one warm-up task per CPU has loaded the engine's kernels."""
        return self._ready.wait(timeout)

    # -------------------------------------------------------------------------- internals

    def _warm(self, count: int) -> None:
        if count:
            try:
                seconds = ray.get([ray.remote(num_cpus=1)(_warm).remote() for _ in range(count)])
                log.info("ray workers warmed up in %s s", ", ".join(f"{s:.2f}" for s in seconds))
            except Exception:  # noqa: BLE001 - jobs load the kernels themselves then
                log.exception("warming up the Ray workers failed")
        self._ready.set()

    def _loop(self) -> None:
        while not self._stopped.is_set():
            try:
                self._step()
            except Exception:  # noqa: BLE001 - keep serving; Ray may come back (a head restart)
                if self._stopped.is_set():
                    return
                log.exception("collecting from Ray failed; trying again in 1 s")
                self._stopped.wait(1.0)

    def _step(self) -> None:
        with self._lock:
            refs = list(self._by_ref)
        if refs:
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=POLL_SECONDS, fetch_local=False)
        else:
            self._wake.wait(POLL_SECONDS * 5)
            self._wake.clear()
            done = []
        # After ray.wait: a finished task's reports are all in the hub by now.
        self._forward(ray.get(self._hub.drain.remote()))
        for ref in done:
            self._resolve(ref)
        self._check_deadlines()

    def _forward(self, events: list) -> None:
        with self._lock:
            tokens = {r.token: r for r in self._by_ref.values()}
        for token, kind, payload in events:
            run = tokens.get(token)
            if run is None or run.abandoned:
                continue
            if kind == ex.STARTED:
                with self._lock:
                    run.started = True
                    run.task.attempt = payload["attempt"]
                    run.deadline = time.monotonic() + run.task.time_limit
            self._on_progress(run.task.job_id, kind, payload)

    def _resolve(self, ref) -> None:
        with self._lock:
            run = self._by_ref.pop(ref, None)
        if run is None:
            return
        try:
            outcome = ray.get(ref)
        except rex.TaskCancelledError:
            outcome = run.kill_outcome or ex.Outcome(ex.CANCELLED, message="cancelled", attempt=run.task.attempt)
        except (rex.WorkerCrashedError, rex.NodeDiedError, rex.LocalRayletDiedError, rex.ObjectLostError,
                rex.OutOfMemoryError, rex.RaySystemError) as exc:
            outcome = run.kill_outcome or ex.Outcome(
                ex.FAILED, "WORKER_CRASHED",
                f"the Ray worker died during the job ({type(exc).__name__}; "
                f"{self._max_retries} retr{'y' if self._max_retries == 1 else 'ies'} allowed)",
                attempt=run.task.attempt)
        except rex.RayError as exc:   # run_job raised (it should not) or Ray refused the task
            outcome = run.kill_outcome or ex.Outcome(ex.FAILED, "ENGINE_ERROR", str(exc).splitlines()[0],
                                                     attempt=run.task.attempt)
        self._hub.forget.remote([run.token])
        with self._lock:
            if self._runs.get(run.task.job_id) is run:
                del self._runs[run.task.job_id]
            else:
                return      # abandoned: its future is resolved already
        if not run.future.done():
            run.future.set_result(outcome)

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        with self._lock:
            for run in self._runs.values():
                if (run.started and run.deadline is not None and run.kill_outcome is None
                        and now > run.deadline + self._force_grace):
                    run.kill_outcome = ex.Outcome(
                        ex.FAILED, "TIME_LIMIT",
                        f"ended: still inside an epoch {self._force_grace:g} s after its time limit of "
                        f"{run.task.time_limit:g} s", attempt=run.task.attempt)
                    ray.cancel(run.ref, force=True)
