"""RayExecutor: the Executor on a Ray cluster; a job attempt is one Ray task running jobfn.run_job,
or one of K small jobs packed into a task that trains them together (packfn.run_pack).

    server process (the Ray driver)                    Ray workers (any node)
    submit(task): queued here, by priority and turn    ray_task.job: hub.begin, fetch files, STARTED,
    _dispatch: to Ray while the cluster has free CPUs    run_job(task, ctx)
    _loop: ray.wait(refs), hub.drain() -> on_progress  ctx.report -> hub.report (fire and forget)
           resolve futures (after draining the hub)    ctx.stop_requested -> hub.stop (polled)
    cancel: hub.set_stop (graceful) | ray.cancel(force=True)
                                                       ray_task.pack: the same for K jobs; each job's
                                                         outcome reaches the hub as it ends (OUTCOME)

The queue is the local pool's: higher JobSpec priority first, owners taking turns at equal priority
(ray_queue.RunQueue), and the driver hands Ray only as many tasks as the cluster has CPUs, so Ray's
own first-come order never decides. Small jobs of one kind (packing.pack_key: one architecture,
data set, epoch count, owner and priority) go K at a time, about `pack_seconds` of work a pack
and an equal share per CPU; each keeps its own events, stop flag, time limit and outcome. A
force-cancel of a packed job stops it at the pack's next step (a tenth of a second), without
ending the others' worker. Files reach the workers through Ray's object store
(ray_files): no node but the server's reads the data directory. Ray is imported when a RayExecutor
is made (after the private cluster's token is in the environment: Ray reads it once) and in Ray's
workers.

Worker or node death: the executor (not Ray: its tasks have max_retries=0) queues the job again
(each job of a pack on its own), first, as attempt + 1 resuming from the last checkpoint the driver saw, up to
executor.retries_allowed times (the server's maximum, lowered by the job's own
training.max_retries); after that the job FAILS with WORKER_CRASHED.
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
from dataclasses import replace
from typing import Optional

from . import executor as ex
from .packing import PACK_SECONDS
from .ray_files import NODE_CACHE_BYTES_VAR, NODE_CACHE_VAR, FileShipper
from .ray_queue import Run, RunQueue
from .ray_task import OUTCOME, Hub, job, pack, warm

log = logging.getLogger("fusetrain.ray")

POLL_SECONDS = 0.02          # how often the driver collects progress and finished tasks
CLUSTER_SECONDS = 0.5        # how often it asks Ray for the cluster's CPUs (nodes join and leave)
LOCAL = ("", "local")        # --ray-address values that start a private single-node Ray
ray = rex = None             # imported by RayExecutor()
_THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_CRASHES = ()                # Ray's errors for a dead worker or node (set on import)


class RayExecutor(ex.Executor):
    name = "ray"

    def __init__(self, on_progress: ex.ProgressFn, address: str = "local", workers: int = 1,
                 threads_per_worker: int = 1, max_retries: int = 0, force_grace: float = 5.0,
                 warmup: bool = True, object_store_bytes: int = 512 << 20, pack_seconds: float = PACK_SECONDS):
        """`address`: "local" starts a private single-node Ray on 127.0.0.1 with
        `workers * threads_per_worker` CPUs (stopped by close()); anything else is given to
        ray.init(address=...) ("auto", "HOST:6379", "ray://HOST:10001"). `pack_seconds`: the
        estimated work of one pack of small jobs (0: every job a task of its own)."""
        self._on_progress = on_progress
        self._force_grace = force_grace
        self._max_retries = max_retries
        self._lock = threading.RLock()
        self._runs: dict[str, Run] = {}            # job id -> its current run, while its future is open
        self._queue = RunQueue(pack_seconds)
        self._by_ref: dict = {}                    # ObjectRef -> its runs (a pack's, or one), while in Ray
        self._by_token: dict[int, Run] = {}
        self._tokens = itertools.count(1)
        self._cpus = 0.0                           # the cluster's CPUs, as last seen
        self._busy = 0                             # CPUs of the tasks handed to Ray
        self._closing = False
        self._stopped = threading.Event()
        self._wake = threading.Event()
        self._ready = threading.Event()
        env = {k: str(threads_per_worker) for k in _THREAD_VARS}
        for var in ("NUMBA_CACHE_DIR", NODE_CACHE_VAR, NODE_CACHE_BYTES_VAR):   # the server's choice, if any
            if os.environ.get(var):
                env[var] = os.environ[var]
        runtime_env = {"env_vars": env}
        t0 = time.perf_counter()
        self.private = address in LOCAL
        if self.private and not os.environ.get("RAY_AUTH_MODE") and "ray" not in sys.modules:
            # Ray 2.60 listens on every interface: a private cluster gets a token of its own
            # (in this process's environment, inherited by Ray's processes; nothing written to disk).
            os.environ["RAY_AUTH_MODE"] = "token"
            os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
        global ray, rex, _CRASHES
        import ray
        from ray import exceptions as rex
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        _CRASHES = (rex.WorkerCrashedError, rex.NodeDiedError, rex.LocalRayletDiedError, rex.ObjectLostError,
                    rex.OutOfMemoryError, rex.RaySystemError)
        if self.private:
            for tries_left in (1, 0):
                try:
                    ray.init(num_cpus=max(1, workers * threads_per_worker), include_dashboard=False,
                             _node_ip_address="127.0.0.1", object_store_memory=object_store_bytes,
                             runtime_env=runtime_env, namespace="fusetrain", log_to_driver=True,
                             configure_logging=False)
                    break
                except Exception as exc:   # noqa: BLE001 - Ray waits 30 s for its GCS and raylet: a loaded machine
                    if not tries_left or "timed out" not in str(exc).lower():
                        raise
                    log.warning("the private Ray did not start (%s); starting it once more", exc)
                    ray.shutdown()
        else:
            ray.init(address=address, runtime_env=runtime_env, namespace="fusetrain", log_to_driver=True,
                     configure_logging=False)
        self.start_seconds = time.perf_counter() - t0
        resources = ray.cluster_resources()
        self._cpus, self._cpus_at = resources.get("CPU", 0.0), time.monotonic()
        log.info("ray %s: %s cluster with %g CPUs on %d node(s), connected in %.2f s", ray.__version__,
                 "a private" if self.private else f"the {address}", self._cpus,
                 len([n for n in ray.nodes() if n.get("Alive")]), self.start_seconds)
        self.files = FileShipper(ray)
        self._hub = ray.remote(num_cpus=0)(Hub).options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(),
                                                               soft=False)).remote()
        self._job = ray.remote(max_retries=0)(job)
        self._pack = ray.remote(max_retries=0)(pack)
        self._thread = threading.Thread(target=self._loop, name="fusetrain-ray", daemon=True)
        self._thread.start()
        threading.Thread(target=self._warm, args=(int(self._cpus) if warmup else 0,),
                         name="fusetrain-ray-warm", daemon=True).start()

    # ------------------------------------------------------------------------- interface

    def submit(self, task: ex.Task) -> Future:
        future: Future = Future()
        with self._lock:
            if self._closing:
                future.cancel()
                return future
            run = Run(task, next(self._tokens), future, cpus=max(1, task.threads))
            self._runs[task.job_id] = run
            self._queue.push(run)
            failed = self._dispatch()
        self._settle(failed)
        self._wake.set()
        return future

    def cancel(self, job_id: str, force: bool = False) -> str:
        with self._lock:
            run = self._runs.get(job_id)
            if run is None:
                return ex.UNKNOWN
            if run.started:
                if force and not run.packed:
                    run.kill_outcome = ex.Outcome(ex.CANCELLED, message="force-cancelled: the worker was ended",
                                                  attempt=run.task.attempt)
                    ray.cancel(run.ref, force=True)
                else:
                    self._hub.set_stop.remote(run.token, "cancel")
                return ex.CANCEL_SIGNALLED
            # Not started (as far as the driver knows): answer now. Still queued here: gone. In
            # Ray already: the task, if Ray starts it, sees the flag at its start (or within one
            # poll if it had just begun) and ends.
            self._abandon(run, "cancel")
        run.future.set_result(ex.Outcome(ex.CANCELLED, message="cancelled before it started"))
        return ex.CANCELLED_QUEUED

    def close(self, grace: float = 0.0) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
            queued = [r for r in self._runs.values() if not r.started]
            for run in queued:
                self._abandon(run, "cancel")
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

    def queued(self) -> list[str]:
        """Ids of the jobs waiting here for a free CPU, next first."""
        with self._lock:
            return [run.task.job_id for run in self._queue.runs()]

    def wait_ready(self, timeout: Optional[float] = None) -> bool:
        """Block until one warm-up task per CPU has loaded the engine's kernels."""
        return self._ready.wait(timeout)

    # -------------------------------------------------------------------------- internals

    def _abandon(self, run: Run, mode: str) -> None:
        """Drop a run that has not started (lock held); its future is the caller's to resolve."""
        self._queue.remove(run)
        if self._runs.get(run.task.job_id) is run:
            del self._runs[run.task.job_id]
        run.abandoned = True
        if run.ref is not None:
            self._hub.set_stop.remote(run.token, mode)

    def _dispatch(self) -> list:
        """Hand queued runs to Ray while the cluster has CPUs for them (lock held); returns the
        (future, outcome) of runs whose files could not be read, to resolve outside the lock."""
        failed = []
        while not self._closing and (run := self._queue.head()) is not None:
            if self._busy + run.cpus > self._cpus and (self._busy or self._cpus < 1):
                return failed
            runs, refs = self._queue.take(self._cpus), {}
            for run in list(runs):
                try:
                    refs.update(self.files.refs(run.task))
                except (OSError, ValueError) as exc:
                    del self._runs[run.task.job_id]
                    runs.remove(run)
                    failed.append((run.future, ex.Outcome(ex.FAILED, "INVALID_DATA", f"a file of the job: {exc}",
                                                          attempt=run.task.attempt)))
            if not runs:
                continue
            head = runs[0]
            if len(runs) == 1:
                ref = self._job.options(num_cpus=head.cpus, name=f"fusetrain-job-{head.task.job_id}").remote(
                    head.task, head.token, self._hub, refs)
            else:
                ref = self._pack.options(num_cpus=head.cpus, name=f"fusetrain-pack-{head.task.job_id}+{len(runs) - 1}"
                                         ).remote([r.task for r in runs], [r.token for r in runs], self._hub, refs)
            self._by_ref[ref] = runs
            for run in runs:
                run.ref = ref
                self._by_token[run.token] = run
            self._busy += head.cpus
        return failed

    @staticmethod
    def _settle(pairs: list) -> None:
        for future, outcome in pairs:
            if not future.done():
                future.set_result(outcome)

    def _warm(self, count: int) -> None:
        if count:
            try:
                seconds = ray.get([ray.remote(num_cpus=1)(warm).remote() for _ in range(count)])
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
        if time.monotonic() - self._cpus_at >= CLUSTER_SECONDS:
            cpus = ray.cluster_resources().get("CPU", 0.0)
            with self._lock:
                self._cpus, self._cpus_at = cpus, time.monotonic()
        with self._lock:
            failed = self._dispatch()
        self._settle(failed)
        self._check_deadlines()

    def _forward(self, events: list) -> None:
        for token, kind, payload in events:
            with self._lock:
                run = self._by_token.get(token)
                if run is None or run.abandoned:
                    continue
                if kind == OUTCOME:          # a packed job ended before its pack
                    self._by_token.pop(token, None)
                    self._finish(run, payload)
                    continue
                if kind == ex.STARTED:
                    run.started = True
                    run.deadline = time.monotonic() + run.task.time_limit
                elif kind == ex.CHECKPOINT:
                    run.last_state = payload
            self._on_progress(run.task.job_id, kind, payload)

    def _resolve(self, ref) -> None:
        with self._lock:
            runs = self._by_ref.pop(ref, None)
            if runs is None:
                return
            for run in runs:
                self._by_token.pop(run.token, None)
            self._busy -= runs[0].cpus
        try:
            value = ray.get(ref)
            outcomes = value if isinstance(value, list) else [value]
        except rex.TaskCancelledError:
            outcomes = [run.kill_outcome or ex.Outcome(ex.CANCELLED, message="cancelled", attempt=run.task.attempt)
                        for run in runs]
        except _CRASHES as exc:
            outcomes = [run.kill_outcome or self._retry(run, exc) for run in runs]
        except rex.RayError as exc:   # run_job raised (it should not) or Ray refused the task
            outcomes = [run.kill_outcome or ex.Outcome(ex.FAILED, "ENGINE_ERROR", str(exc).splitlines()[0],
                                                       attempt=run.task.attempt) for run in runs]
        self._hub.forget.remote([run.token for run in runs])
        for run, outcome in zip(runs, outcomes):
            if outcome is not None:   # None: queued again, the same future waits for the next attempt
                self._finish(run, outcome)

    def _finish(self, run: Run, outcome: ex.Outcome) -> None:
        """Resolve the run's future, unless it was abandoned or ended already (a packed job's OUTCOME)."""
        with self._lock:
            if self._runs.get(run.task.job_id) is run:
                del self._runs[run.task.job_id]
            else:
                return
        if not run.future.done():
            run.future.set_result(outcome)

    def _retry(self, run: Run, exc: Exception) -> Optional[ex.Outcome]:
        """A run's worker or node died: queue the job again, first, from its last checkpoint (None),
        or the WORKER_CRASHED outcome when its retries are spent or it is no longer wanted."""
        allowed = ex.retries_allowed(run.task, self._max_retries)
        with self._lock:
            if not self._closing and run.retried < allowed and self._runs.get(run.task.job_id) is run:
                state = run.last_state if run.last_state is not None else run.task.resume_state
                again = Run(replace(run.task, attempt=run.task.attempt + 1, resume_state=state),
                            next(self._tokens), run.future, cpus=run.cpus, retried=run.retried + 1)
                self._runs[run.task.job_id] = again
                self._queue.push(again, first=True)
                log.warning("job %s: its Ray worker died (%s); running it again (attempt %d, %s)",
                            run.task.job_id, type(exc).__name__, again.task.attempt,
                            f"from epoch {int(state['scalars'][1])}" if state is not None else "from where it began")
                return None
        return ex.Outcome(ex.FAILED, "WORKER_CRASHED",
                          f"the Ray worker died during the job ({type(exc).__name__}; "
                          f"{allowed} retr{'y' if allowed == 1 else 'ies'} allowed)", attempt=run.task.attempt)

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        with self._lock:
            for run in self._runs.values():
                if (run.started and not run.packed and run.deadline is not None and run.kill_outcome is None
                        and now > run.deadline + self._force_grace):
                    run.kill_outcome = ex.Outcome(
                        ex.FAILED, "TIME_LIMIT",
                        f"ended: still inside an epoch {self._force_grace:g} s after its time limit of "
                        f"{run.task.time_limit:g} s", attempt=run.task.attempt)
                    ray.cancel(run.ref, force=True)
