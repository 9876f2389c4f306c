"""A worker process: warm the engine once, then run tasks sent by the pool, one at a time.

Warm-up makes the float32 kernels ready before the worker says "ready" (most jobs are float32);
the float64 kernels follow on a background thread, and a float64 job that comes first waits for
them (its compile seconds say how long). The worker tells the pool when it begins each dtype's
kernels and when they are ready ("kernels" messages), so health and GetServerInfo can say so.

Started with the `spawn` method (grpcio, SQLite and Numba's OpenMP layer are not fork-safe). It
talks to the server through one duplex pipe:
    pool -> worker   (token, Task) to run, None to exit
    worker -> pool   ("kernels", None, {"dtype", "state": "compiling" | "ready", "seconds"}),
                     ("ready", None, {...}), ("started", job_id, {...}),
                     ("epochs" | "checkpoint", job_id, payload),
                     ("finished", job_id, (last epochs array or None, Outcome, time sent))
(a job's last epochs ride with its outcome: one message and one wake-up of the pool, not two;
the pool reports them as progress before it resolves the outcome, so the order is unchanged)
(the float64 warm-up thread sends too: every send holds one lock)
Stop requests come through two shared integers, read at every epoch boundary without a message:
`stop_token` (the token of the task to stop) and `stop_mode` (1 cancel, 2 suspend).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
import time

from . import executor as ex

STOP_MODES = {1: "cancel", 2: "suspend"}
WARM_DTYPES = ("float32", "float64")   # float32's first kernel family before "ready", the rest on a thread
COMPILING, READY, NOT_STARTED = "compiling", "ready", "not_started"


class _Sender:
    """The pipe's sending end, one message at a time (the main thread and the warm-up thread share it)."""

    def __init__(self, conn):
        self.conn, self.lock = conn, threading.Lock()

    def send(self, message) -> None:
        with self.lock:
            self.conn.send(message)


class _Context:
    """What jobfn.run_job sees of the worker."""

    def __init__(self, conn, job_id: str, token: int, stop_token, stop_mode, parent: int):
        self.conn, self.job_id, self.token = conn, job_id, token
        self.stop_token, self.stop_mode, self.parent = stop_token, stop_mode, parent
        self.tail = None                     # the last epochs, held for the "finished" message

    def report(self, kind: str, payload) -> None:
        self.conn.send((kind, self.job_id, payload))

    def report_last(self, kind: str, payload) -> None:
        """The job's last epochs: sent with its outcome ("finished"), not on their own."""
        if self.tail is not None:           # never two held at once: the older one goes now
            self.report(kind, self.tail)
        self.tail = payload

    def stop_requested(self):
        if os.getppid() != self.parent:      # the server is gone: nobody wants this result
            os._exit(3)
        if self.stop_token.value == self.token:
            return STOP_MODES.get(self.stop_mode.value)
        return None


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the server dies (no orphans training on)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)        # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _warm(dtype: str, families, out: _Sender, say) -> None:
    """Make kernel families (engine.warm.PATHS) of one dtype ready, one after another, telling the
    pool when the dtype begins and after each family: ready with k of its n families."""
    from fusetrain import engine
    from fusetrain.engine.warm import PATHS

    done = PATHS.index(families[0])
    if done == 0:
        out.send(("kernels", None, {"dtype": dtype, "state": COMPILING, "seconds": 0.0}))
    t0 = time.perf_counter()
    for family in families:
        engine.warmup(dtypes=(dtype,), progress=say, paths=[family])
        done += 1
        out.send(("kernels", None, {"dtype": dtype, "state": READY, "seconds": time.perf_counter() - t0,
                                    "families_ready": done, "families": len(PATHS)}))


def _warm_rest(out: _Sender, say) -> None:
    """The background warm-up: float32's other kernel families, then every family of the others."""
    from fusetrain.engine.warm import PATHS

    try:
        _warm(WARM_DTYPES[0], PATHS[1:], out, say)
        for dtype in WARM_DTYPES[1:]:
            _warm(dtype, PATHS, out, say)
    except (OSError, ValueError):   # the pipe closed: the server is stopping
        pass


def worker_main(conn, stop_token, stop_mode, warm: bool, log_level: str) -> None:
    parent = os.getppid()
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the server decides when workers stop
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s [worker %(process)d] %(message)s")
    from .jobfn import run_job

    out = _Sender(conn)
    info = {"pid": os.getpid(), "warmup_seconds": 0.0}
    say = logging.getLogger("fusetrain.worker").info
    if warm:
        # Ready once float32's first kernel family is (the tiny networks of the examples): the
        # rest follow on a thread, and a job whose family is not ready yet waits for it.
        from fusetrain.engine.warm import PATHS
        t0 = time.perf_counter()
        _warm(WARM_DTYPES[0], PATHS[:1], out, say)
        info["warmup_seconds"] = time.perf_counter() - t0
    out.send(("ready", None, info))
    if warm:
        threading.Thread(target=_warm_rest, args=(out, say), name="warm-rest", daemon=True).start()
    compiled = set()   # without warm-up: the dtypes a job has compiled here, reported once each
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        token, task = msg
        ctx = _Context(out, task.job_id, token, stop_token, stop_mode, parent)
        out.send((ex.STARTED, task.job_id, {"attempt": task.attempt, "time": time.time(),
                                            "worker": os.getpid()}))
        outcome = run_job(task, ctx)
        out.send(("finished", task.job_id, (ctx.tail, outcome, time.time())))
        dtype = (outcome.result or {}).get("dtype") if not warm else None
        if dtype and dtype not in compiled:
            compiled.add(dtype)
            out.send(("kernels", None, {"dtype": dtype, "state": READY,
                                        "seconds": float(outcome.result.get("compile_seconds") or 0.0)}))
