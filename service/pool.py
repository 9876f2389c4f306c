"""ProcessPool: the Executor on a pool of spawned worker processes (see worker.py).

One thread (`_loop`) owns the pipes: it waits on every worker's pipe and process sentinel, forwards
progress, resolves futures, hands the next queued task to an idle worker, replaces a worker that
died and ends one whose task is past its time limit plus a grace. A job whose worker died runs
again, up to `max_retries` times, from the last checkpoint the dead worker sent (or from where it
began): first in the queue, as the next attempt, with the same future, so the outcome is what an
uninterrupted run gives. Past the retries it fails with WORKER_CRASHED.
Each worker gets `threads_per_worker` threads (NUMBA_NUM_THREADS and the BLAS variables are set
for it, and each job sets its own count); workers x threads stays within the cores by default.
Workers say when each dtype's kernels begin warming and when they are ready: `kernel_states()`
reports that, and `wait_serving()` returns once one dtype is ready in one worker.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import replace
import multiprocessing as mp
import os
import threading
import time
import bisect
from concurrent.futures import Future
from multiprocessing.connection import wait
from typing import Optional

from . import executor as ex
from .fairshare import FairTurns
from .recorder import trace
from .worker import COMPILING, NOT_STARTED, READY, WARM_DTYPES, worker_main

log = logging.getLogger("fusetrain.pool")

_THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_env_lock = threading.Lock()


class _Slot:
    """One worker process and what it is doing."""

    def __init__(self, index: int):
        self.index = index
        self.process = None
        self.conn = None
        self.stop_token = None
        self.stop_mode = None
        self.ready = False
        self.task: Optional[ex.Task] = None
        self.token = 0
        self.deadline: Optional[float] = None
        self.kill_outcome: Optional[ex.Outcome] = None
        self.early_deaths = 0          # deaths in a row before becoming ready (crash loop)
        self.restart_at: Optional[float] = None
        self.last_state: Optional[dict] = None   # the task's latest checkpoint (TrainState arrays)
        self.kernels: dict = {}        # dtype -> (COMPILING, since monotonic) or (READY, seconds)
        self.families: dict = {}       # dtype -> (kernel families ready, families) as last reported


class ProcessPool(ex.Executor):
    name = "process-pool"

    def __init__(self, workers: int, threads_per_worker: int, on_progress: ex.ProgressFn,
                 warmup: bool = True, force_grace: float = 5.0, log_level: str = "INFO", max_retries: int = 0):
        self._mp = mp.get_context("spawn")
        self._threads = threads_per_worker
        self._on_progress = on_progress
        self._warmup = warmup
        self._force_grace = force_grace
        self._log_level = log_level
        self._max_retries = max_retries
        self._retried: dict[str, int] = {}   # job id -> runs again so far
        self._lock = threading.RLock()
        self._queue: list = []         # ((-priority, turn, order), task), kept sorted: next task first
        self._turns = FairTurns()      # owners take turns at equal priority
        self._order = itertools.count()
        self._futures: dict[str, Future] = {}
        self._tokens = itertools.count(1)
        self._closing = False
        self._stopped = threading.Event()
        self._ready_event = threading.Event()
        self._serving_event = threading.Event()
        self._first_ready: dict[str, float] = {}   # dtype -> warm-up seconds of the first worker ready
        self._wake_r, self._wake_w = self._mp.Pipe(duplex=False)
        self._slots = [_Slot(i) for i in range(workers)]
        for slot in self._slots:
            self._start(slot)
        self._thread = threading.Thread(target=self._loop, name="fusetrain-pool", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------- interface

    def submit(self, task: ex.Task) -> Future:
        future: Future = Future()
        with self._lock:
            if self._closing:
                future.cancel()
                return future
            self._futures[task.job_id] = future
            turn = self._turns.take(task.owner, task.priority)
            bisect.insort(self._queue, ((-task.priority, turn, next(self._order)), task), key=lambda e: e[0])
            self._dispatch()
        return future

    def cancel(self, job_id: str, force: bool = False) -> str:
        with self._lock:
            for i, (_, task) in enumerate(self._queue):
                if task.job_id == job_id:
                    del self._queue[i]
                    future = self._futures.pop(job_id)
                    self._retried.pop(job_id, None)
                    break
            else:
                future = None
                for slot in self._slots:
                    if slot.task is not None and slot.task.job_id == job_id:
                        if force:
                            slot.kill_outcome = ex.Outcome(
                                ex.CANCELLED, message="force-cancelled: the worker was ended",
                                attempt=slot.task.attempt)
                            slot.process.kill()
                        else:
                            slot.stop_mode.value = 1
                            slot.stop_token.value = slot.token
                        return ex.CANCEL_SIGNALLED
                return ex.UNKNOWN
        future.set_result(ex.Outcome(ex.CANCELLED, message="cancelled before it started"))
        return ex.CANCELLED_QUEUED

    def close(self, grace: float = 0.0) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
            queued = [self._futures.pop(t.job_id) for _, t in self._queue]
            self._queue.clear()
            for slot in self._slots:
                if slot.task is not None:
                    slot.stop_mode.value = 2
                    slot.stop_token.value = slot.token
        for future in queued:
            future.cancel()
        end = time.monotonic() + grace
        while time.monotonic() < end and any(s.task is not None for s in self._slots):
            time.sleep(0.02)
        with self._lock:
            self._stopped.set()
            self._wake_w.send_bytes(b"x")
        self._thread.join(timeout=5)
        for slot in self._slots:
            try:
                if slot.task is None and slot.process.is_alive():
                    slot.conn.send(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 2
        for slot in self._slots:
            slot.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(timeout=2)
        with self._lock:
            left = list(self._futures.values())
            self._futures.clear()
        for future in left:
            future.cancel()

    def running(self) -> list[str]:
        with self._lock:
            return [s.task.job_id for s in self._slots if s.task is not None]

    def wait_ready(self, timeout: Optional[float] = None) -> bool:
        """Block until every worker has warmed up (loaded or compiled the engine's kernels)."""
        return self._ready_event.wait(timeout)

    def wait_serving(self, timeout: Optional[float] = None) -> bool:
        """Block until one dtype's kernels are ready in at least one worker (with warm-up off: until
        a worker has started)."""
        return self._serving_event.wait(timeout)

    def kernel_states(self) -> list[dict]:
        """Per dtype: its state (READY in at least one worker, else COMPILING in some, else
        NOT_STARTED), the workers that have it ready, and the seconds: the warm-up of the first
        worker to have it ready, or how long the longest warm-up still going has taken so far;
        and the most kernel families (engine.warm.PATHS) any worker has ready, of how many."""
        now = time.monotonic()
        with self._lock:
            seen = [dict(s.kernels) for s in self._slots]
            families = [dict(s.families) for s in self._slots]
            first = dict(self._first_ready)
        states = []
        for dtype in dict.fromkeys([*WARM_DTYPES, *(d for k in seen for d in k)]):
            marks = [k[dtype] for k in seen if dtype in k]
            ready = [v for state, v in marks if state == READY]
            going = [now - v for state, v in marks if state == COMPILING]
            state = READY if ready else COMPILING if going else NOT_STARTED
            seconds = first.get(dtype, min(ready)) if ready else max(going, default=0.0)
            counts = [f[dtype] for f in families if dtype in f]
            states.append({"dtype": dtype, "state": state, "workers_ready": len(ready), "seconds": seconds,
                           "families_ready": max((r for r, _ in counts), default=0),
                           "families": max((n for _, n in counts), default=0)})
        return states

    @property
    def workers(self) -> int:
        return len(self._slots)

    # -------------------------------------------------------------------------- internals

    def _start(self, slot: _Slot) -> None:
        parent, child = self._mp.Pipe()
        slot.stop_token = self._mp.RawValue("q", 0)
        slot.stop_mode = self._mp.RawValue("i", 0)
        slot.ready, slot.task, slot.deadline, slot.kill_outcome = False, None, None, None
        slot.restart_at, slot.kernels, slot.families = None, {}, {}
        with _env_lock:
            saved = {k: os.environ.get(k) for k in _THREAD_VARS}
            os.environ.update({k: str(self._threads) for k in _THREAD_VARS})
            try:
                slot.process = self._mp.Process(
                    target=worker_main, name=f"fusetrain-worker-{slot.index}", daemon=True,
                    args=(child, slot.stop_token, slot.stop_mode, self._warmup, self._log_level))
                slot.process.start()
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        child.close()
        slot.conn = parent

    def _dispatch(self) -> None:
        """Hand queued tasks to idle, warmed-up workers (called with the lock held)."""
        for slot in self._slots:
            if not self._queue:
                return
            # A slot whose worker is being ended (a force-cancel that raced the job's own end)
            # takes nothing more: its kill must not land on another job.
            if slot.ready and slot.task is None and slot.kill_outcome is None and not self._closing:
                (_, turn, _), task = self._queue.pop(0)
                self._turns.started(task.priority, turn)
                slot.task, slot.token, slot.deadline = task, next(self._tokens), None
                slot.last_state = None
                try:
                    slot.conn.send((slot.token, task))
                except (OSError, ValueError):
                    pass   # it died: the loop sees its sentinel and fails the task

    def _loop(self) -> None:
        while not self._stopped.is_set():
            with self._lock:
                self._restart_due()
                live = [s for s in self._slots if s.restart_at is None]
                conns = {s.conn: s for s in live}
                sentinels = {s.process.sentinel: s for s in live}
            ready = wait([*conns, *sentinels, self._wake_r], timeout=0.1)
            for obj in ready:
                if obj is self._wake_r:
                    self._wake_r.recv_bytes()
                elif obj in conns:
                    self._receive(conns[obj])
            for obj in ready:
                if obj in sentinels:
                    self._reap(sentinels[obj])
            self._check_deadlines()

    def _receive(self, slot: _Slot) -> None:
        while True:
            try:
                if not slot.conn.poll():
                    return
                kind, job_id, payload = slot.conn.recv()
            except (EOFError, OSError):
                return   # the sentinel tells the rest
            if kind == "kernels":
                with self._lock:
                    if payload["state"] == READY:
                        slot.kernels[payload["dtype"]] = (READY, payload["seconds"])
                        slot.families[payload["dtype"]] = (payload.get("families_ready", 0),
                                                           payload.get("families", 0))
                        self._first_ready.setdefault(payload["dtype"], payload["seconds"])
                        self._serving_event.set()
                    else:
                        slot.kernels[payload["dtype"]] = (COMPILING, time.monotonic())
            elif kind == "ready":
                log.info("worker %d ready (pid %d, warm-up %.2f s)", slot.index, payload["pid"],
                         payload["warmup_seconds"])
                with self._lock:
                    slot.ready, slot.early_deaths = True, 0
                    if not self._warmup:
                        self._serving_event.set()
                    if all(s.ready for s in self._slots):
                        self._ready_event.set()
                    self._dispatch()
            elif kind == "finished":        # the job's last epochs (reported first) and its outcome
                tail, payload, sent = payload
                trace(job_id, "worker_done", sent)
                if tail is not None:
                    self._on_progress(job_id, ex.EPOCHS, tail)
                with self._lock:
                    future = self._futures.pop(job_id, None)
                    self._retried.pop(job_id, None)
                    slot.task, slot.deadline = None, None
                    slot.stop_token.value = 0
                    self._dispatch()
                if future is not None and not future.done():
                    future.set_result(payload)
            else:
                if kind in (ex.STARTED, ex.CHECKPOINT):
                    with self._lock:
                        if slot.task is not None and slot.task.job_id == job_id:
                            if kind == ex.STARTED:
                                trace(job_id, "worker_started", payload["time"])
                                slot.deadline = time.monotonic() + slot.task.time_limit
                            else:
                                slot.last_state = payload
                self._on_progress(job_id, kind, payload)

    def _reap(self, slot: _Slot) -> None:
        """A worker process ended: fail its task (unless we ended it on purpose) and replace it."""
        slot.process.join(timeout=1)
        code = slot.process.exitcode
        with self._lock:
            task, outcome = slot.task, slot.kill_outcome
            future = None
            if task is not None and outcome is None and self._retry(task, slot.last_state, code):
                task = None                     # queued again: its future stays open
            elif task is not None and outcome is None:
                retried = self._retried.pop(task.job_id, 0)
                outcome = ex.Outcome(ex.FAILED, "WORKER_CRASHED",
                                     f"the worker process exited with code {code} during the job"
                                     + (f" ({retried} run(s) again before)" if retried else ""),
                                     attempt=task.attempt)
            if task is not None:
                self._retried.pop(task.job_id, None)
                future = self._futures.pop(task.job_id, None)
            try:
                slot.conn.close()
            except OSError:
                pass
            slot.task = None
            if not self._closing:
                if not slot.ready:
                    slot.early_deaths += 1
                delay = 0.0 if slot.early_deaths <= 1 else min(30.0, 0.25 * 2 ** slot.early_deaths)
                log.warning("worker %d (pid %s) exited with code %s; starting another in %.1f s",
                            slot.index, slot.process.pid, code, delay)
                slot.ready, slot.kernels, slot.families = False, {}, {}
                slot.restart_at = time.monotonic() + delay
                for dtype in list(self._first_ready):   # ready nowhere now: its next warm-up counts
                    if not any(s.kernels.get(dtype, ("",))[0] == READY for s in self._slots):
                        del self._first_ready[dtype]
        if future is not None and not future.done():
            future.set_result(outcome)

    def _retry(self, task: ex.Task, state: Optional[dict], code) -> bool:
        """Queue a dead worker's task again, first, from its last checkpoint (lock held); False when
        its retries are spent, the pool is closing or the task is no longer wanted."""
        done = self._retried.get(task.job_id, 0)
        if self._closing or done >= ex.retries_allowed(task, self._max_retries) or task.job_id not in self._futures:
            return False
        self._retried[task.job_id] = done + 1
        again = replace(task, attempt=task.attempt + 1,
                        resume_state=state if state is not None else task.resume_state)
        epoch = int(state["scalars"][1]) if state is not None else None
        log.warning("job %s: its worker exited with code %s; running it again (attempt %d, %s)", task.job_id,
                    code, again.attempt, f"from epoch {epoch}" if epoch is not None else "from where it began")
        bisect.insort(self._queue, ((-again.priority, -1, next(self._order)), again), key=lambda e: e[0])
        self._dispatch()
        return True

    def _restart_due(self) -> None:
        """Start the replacements whose back-off has passed (called with the lock held)."""
        now = time.monotonic()
        for slot in self._slots:
            if slot.restart_at is not None and now >= slot.restart_at and not self._closing:
                slot.restart_at = None
                self._start(slot)

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        with self._lock:
            for slot in self._slots:
                if (slot.task is not None and slot.deadline is not None and slot.kill_outcome is None
                        and now > slot.deadline + self._force_grace):
                    slot.kill_outcome = ex.Outcome(
                        ex.FAILED, "TIME_LIMIT",
                        f"ended: still inside an epoch {self._force_grace:g} s after its time limit of "
                        f"{slot.task.time_limit:g} s", attempt=slot.task.attempt)
                    slot.process.kill()
