"""Live updates for the dashboard: a job's new epochs and state changes as Server-Sent Events.

`GET /api/jobs/{id}/events?after=N` streams the job's events after sequence N, in the order the
recorder committed them; every message carries `id: <last sequence>`, so a browser that reconnects
(EventSource does so by itself) sends `Last-Event-ID` and resumes exactly where it stopped. Event
kinds: `points` (curve points, views.CURVE_FIELDS), `state` (a state change), `end` (the job has
reached its final state and everything was sent: the page closes the stream).

One thread (`ChangeBridge`) waits on the store's change counter (watch.Changes) and wakes the
event loop; each stream then reads what is new, at most every MIN_INTERVAL seconds, so a busy
server's commits cost the open pages one small read each at that pace, not one per commit.
"""

from __future__ import annotations

import asyncio
import json
import threading

from aiohttp import web

from fusetrain.v1 import service_pb2 as pb

from .. import errors
from ..messages import TERMINAL, state_name
from ..store import unpack_events
from . import views

MIN_INTERVAL = 0.2          # seconds between two reads of one stream (a point shows within 1 s)
HEARTBEAT = 15.0            # a comment line this often keeps proxies from closing an idle stream
PAGE_ROWS = 64              # stored event rows read at once


class ChangeBridge:
    """Wakes the event loop's waiters when watch.Changes moves (a commit)."""

    def __init__(self, changes, loop: asyncio.AbstractEventLoop):
        self.changes = changes
        self.loop = loop
        self._future = loop.create_future()
        self.count = 0                      # wakes so far: a waiter that read at count N misses none
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fusetrain-web-changes", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and not self.changes.closed:
            version = self.changes.version()
            self.changes.wait(version, timeout=1.0)
            if self.changes.version() != version or self.changes.closed:
                try:
                    self.loop.call_soon_threadsafe(self._wake)
                except RuntimeError:        # the loop has closed
                    return

    def _wake(self) -> None:
        self.count += 1
        future, self._future = self._future, self.loop.create_future()
        future.set_result(None)

    async def wait(self, seen: int, timeout: float) -> None:
        """Return once there has been a change since `count` was `seen`, or after `timeout` seconds."""
        if self.count != seen:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._future), timeout)
        except asyncio.TimeoutError:
            pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except RuntimeError:
            pass


def read_events(store, job_id: str, after: int) -> tuple[list, int]:
    """The job's stored events after `after`, in order, as ("points", [point, ...], last sequence)
    and ("state", {state, message}, sequence) items (consecutive points merged), and the last sequence."""
    items, last = [], after
    while True:
        page = store.events(job_id, last, PAGE_ROWS)
        for first, last_seq, kind, payload in page:
            if kind == 1:
                whole = views.curve_points(payload, last_seq - first + 1)
                block = whole[max(0, last + 1 - first):]
                if block:
                    last = first + len(whole) - 1
                    if items and items[-1][0] == "points":
                        items[-1] = ("points", items[-1][1] + block, last)
                    else:
                        items.append(("points", block, last))
                continue
            for p in unpack_events(payload):
                event = pb.JobEvent.FromString(p)
                if event.sequence > last:
                    last = event.sequence
                    items.append(("state", {"state": state_name(event.state.state),
                                            "message": event.state.message}, last))
        if len(page) < PAGE_ROWS:
            return items, last


def _message(kind: str, data, last: int) -> bytes:
    return f"event: {kind}\nid: {last}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def stream(request: web.Request, manager, bridge: ChangeBridge, run, closing: asyncio.Event
                 ) -> web.StreamResponse:
    job_id, owner = request.match_info["id"], request["caller"].owner
    raw = request.headers.get("Last-Event-ID") or request.query.get("after", "0")
    if not raw.isdigit():
        raise web.HTTPBadRequest(text="after: must be a sequence number (0 or more)")
    last = int(raw)
    from .api import http_error          # api.py imports this module
    try:
        await run(manager.row, job_id, owner)
    except errors.ServiceError as exc:
        raise http_error(exc) from None
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    try:
        await _send(response, manager, bridge, run, closing, job_id, last)
    except ConnectionResetError:         # the page went away (a reload, a closed tab)
        pass
    return response


async def _send(response, manager, bridge: ChangeBridge, run, closing: asyncio.Event, job_id: str,
                last: int) -> None:
    loop = asyncio.get_running_loop()
    beat = loop.time()
    while not closing.is_set():
        seen = bridge.count                 # before the read: a commit during it wakes the wait below
        items, last = await run(read_events, manager.store, job_id, last)
        for kind, data, sequence in items:
            await response.write(_message(kind, data, sequence))
        row = await run(manager.store.job, job_id)
        if row is None or (row["state"] in TERMINAL and last >= row["next_seq"] - 1):
            await response.write(_message("end", {"state": state_name(row["state"]) if row else "DELETED"}, last))
            return
        if loop.time() - beat > HEARTBEAT:
            await response.write(b": ping\n\n")
            beat = loop.time()
        await asyncio.sleep(MIN_INTERVAL)
        await bridge.wait(seen, HEARTBEAT)
