"""A worker process: warm the engine once, then run tasks sent by the pool, one at a time.

Warm-up makes the float32 kernels ready before the worker says "ready" (most jobs are float32);
the float64 kernels follow on a background thread, and a float64 job that comes first waits for
them (its compile seconds say how long).

Started with the `spawn` method (grpcio, SQLite and Numba's OpenMP layer are not fork-safe). It
talks to the server through one duplex pipe:
    pool -> worker   (token, Task) to run, None to exit
    worker -> pool   ("ready", None, {...}), ("started", job_id, {...}),
                     ("epochs" | "checkpoint", job_id, payload), ("done", job_id, Outcome)
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


class _Context:
    """What jobfn.run_job sees of the worker."""

    def __init__(self, conn, job_id: str, token: int, stop_token, stop_mode, parent: int):
        self.conn, self.job_id, self.token = conn, job_id, token
        self.stop_token, self.stop_mode, self.parent = stop_token, stop_mode, parent

    def report(self, kind: str, payload) -> None:
        self.conn.send((kind, self.job_id, payload))

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


def worker_main(conn, stop_token, stop_mode, warm: bool, log_level: str) -> None:
    parent = os.getppid()
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the server decides when workers stop
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s [worker %(process)d] %(message)s")
    from fusetrain import engine
    from .jobfn import run_job

    info = {"pid": os.getpid(), "warmup_seconds": 0.0}
    say = logging.getLogger("fusetrain.worker").info
    if warm:
        t0 = time.perf_counter()
        engine.warmup(dtypes=("float32",), progress=say)
        info["warmup_seconds"] = time.perf_counter() - t0
    conn.send(("ready", None, info))
    if warm:
        threading.Thread(target=engine.warmup, kwargs={"dtypes": ("float64",), "progress": say},
                         name="warm-float64", daemon=True).start()
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        token, task = msg
        ctx = _Context(conn, task.job_id, token, stop_token, stop_mode, parent)
        conn.send((ex.STARTED, task.job_id, {"attempt": task.attempt, "time": time.time(),
                                             "worker": os.getpid()}))
        outcome = run_job(task, ctx)
        conn.send(("done", task.job_id, outcome))
