"""WatchJob: a job's events after a sequence number, as they are recorded, until its final state.

The recorder bumps `Changes` after each commit; a watcher reads the store a page of rows at a time
(WATCH_PAGE_ROWS), sends what is new, and waits for the next change (or half a second, whichever is
first). Memory per call is one page whatever the history's length, and the stream ends as soon as
the client has gone (`active()` is asked before every message).
"""

from __future__ import annotations

import threading
from typing import Callable, Iterator

from fusetrain.v1 import service_pb2 as pb

from .errors import InvalidArgument
from .messages import TERMINAL, epoch_events
from .store import Store, unpack_events

WATCH_BATCH = 1000          # events per WatchJobResponse
WATCH_PAGE_ROWS = 16        # stored event rows read at once (a row: one commit's events of a job)


class Changes:
    """A version number bumped after every committed change; watchers wait for it to move."""

    def __init__(self):
        self._cond = threading.Condition()
        self._version = 0
        self.closed = False

    def version(self) -> int:
        with self._cond:
            return self._version

    def notify(self) -> None:
        with self._cond:
            self._version += 1
            self._cond.notify_all()

    def wait(self, version: int, timeout: float) -> None:
        """Return once the version differs from `version`, the store closes, or `timeout` passes."""
        with self._cond:
            self._cond.wait_for(lambda: self._version != version or self.closed, timeout=timeout)

    def close(self) -> None:
        self.closed = True
        self.notify()


def decode_events(job_id: str, first: int, last: int, kind: int, payload: bytes) -> list[pb.JobEvent]:
    """The JobEvents of one stored event row (kind 1: a block of epoch metrics)."""
    if kind == 1:
        return epoch_events(job_id, first, payload, last - first + 1)
    return [pb.JobEvent.FromString(p) for p in unpack_events(payload)]


class Watch:
    """Streams of a job's events, read from the store."""

    def __init__(self, store: Store, changes: Changes):
        self.store = store
        self.changes = changes

    def events(self, job_id: str, after: int, active: Callable[[], bool] = lambda: True
               ) -> Iterator[list]:
        """Lists of the events after sequence `after`, as they become ready, until the job's final
        state has been sent (at most WATCH_BATCH events a list)."""
        if after < 0:
            raise InvalidArgument("after_sequence", "must be 0 or more")
        last = after
        while active():
            version = self.changes.version()
            page = self.store.events(job_id, last, WATCH_PAGE_ROWS)
            ready: list = []
            for first, final, kind, payload in page:
                ready.extend(e for e in decode_events(job_id, first, final, kind, payload) if e.sequence > last)
                while len(ready) >= WATCH_BATCH:
                    if not active():
                        return
                    yield ready[:WATCH_BATCH]
                    last = ready[WATCH_BATCH - 1].sequence
                    del ready[:WATCH_BATCH]
            if ready:
                if not active():
                    return
                yield ready
                last = ready[-1].sequence
            if len(page) == WATCH_PAGE_ROWS:
                continue                    # more is stored: the next page now
            row = self.store.job(job_id)
            if row is None:
                return
            if row["state"] in TERMINAL and last >= row["next_seq"] - 1:
                return
            self.changes.wait(version, timeout=0.5)
            if self.changes.closed:
                return
