"""Stream slots: a cap on the streaming calls (UploadDataset, WatchJob) open at once, in total and
per token owner, so that unary calls and health always find a free RPC thread.

Each open stream holds one of the server's RPC threads for as long as it lasts. With at most
`total` streams (by default the RPC threads less RESERVED_THREADS), the rest stay free for the
calls that return at once. A call over a cap is refused RESOURCE_EXHAUSTED, naming the limit.
"""

from __future__ import annotations

import threading
from collections import Counter
from contextlib import contextmanager
from typing import Optional

from .errors import ResourceExhausted

RESERVED_THREADS = 4        # RPC threads never taken by streams (health, unary calls)


def stream_limit(max_streams: int, rpc_threads: int) -> int:
    """The total cap: `max_streams` when set, else the RPC threads less RESERVED_THREADS."""
    return max_streams if max_streams > 0 else max(1, rpc_threads - RESERVED_THREADS)


class StreamSlots:
    def __init__(self, total: int, per_owner: int):
        self.total = total
        self.per_owner = per_owner          # 0: only the total applies
        self._lock = threading.Lock()
        self._open: Counter = Counter()
        self._count = 0

    @contextmanager
    def hold(self, owner: Optional[str]):
        """One slot for the duration of a stream; `owner` None: no tokens, only the total applies."""
        with self._lock:
            if self._count >= self.total:
                raise ResourceExhausted("streams", f"{self._count} streams are open, the limit of the "
                                                   f"server is {self.total} (max_streams); retry later",
                                        retry_after=1.0)
            if owner is not None and self.per_owner and self._open[owner] >= self.per_owner:
                raise ResourceExhausted("streams", f"you have {self._open[owner]} streams open, the limit "
                                                   f"per client is {self.per_owner} (max_client_streams); "
                                                   f"retry later", retry_after=1.0)
            self._count += 1
            self._open[owner] += 1
        try:
            yield
        finally:
            with self._lock:
                self._count -= 1
                self._open[owner] -= 1
                if not self._open[owner]:
                    del self._open[owner]

    def open_streams(self) -> int:
        with self._lock:
            return self._count
