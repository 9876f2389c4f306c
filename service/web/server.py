"""The dashboard's HTTP server: aiohttp on its own thread and event loop, beside the gRPC threads.

    /                  the single-page dashboard (static/index.html; pages are #/jobs, #/job/ID, ...)
    /static/...        its script, styles and the vendored uPlot (no CDN: it works offline)
    /login, /logout    POST: the token form sets or clears the session cookie (session.py)
    /api/...           JSON and Server-Sent Events (api.py, live.py)
    /metrics           Prometheus text format (service/metrics.py)

aiohttp serves every open page, including long-lived event streams, from one thread with one
event loop, so 20 open dashboards cost no RPC thread and no thread each; the blocking reads of the
store and the manager's calls run on a small pool of WEB_THREADS threads.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Optional

from aiohttp import web
from prometheus_client import CollectorRegistry

from .. import metrics
from .api import Api
from .live import ChangeBridge, stream
from .session import COOKIE, CSRF_HEADER, Sessions

log = logging.getLogger("fusetrain.web")

WEB_THREADS = 4
STATIC = resources.files(__package__) / "static"


def _open(path: str) -> bool:
    """Served without a caller: the page (it asks for a login), the login form, static files."""
    return path in ("/", "/login") or path.startswith("/static/")


class WebServer:
    """`start()` binds HOST:PORT (port 0: any free) and serves; `url` is then known; `stop()` closes."""

    def __init__(self, manager, tokens: dict, address: str):
        self.manager = manager
        self.sessions = Sessions(tokens)
        self.host, _, port = address.rpartition(":")
        self.host = self.host.strip("[]") or "127.0.0.1"
        self.port = int(port)
        self.registry = CollectorRegistry()
        self.registry.register(metrics.ServiceCollector(manager))
        self._pool = ThreadPoolExecutor(max_workers=WEB_THREADS, thread_name_prefix="fusetrain-web")
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        api = Api(self.manager, self.sessions, self.run)
        app.add_routes([web.get("/", self._index), web.post("/login", self._login),
                        web.post("/logout", self._logout), web.get("/metrics", self._metrics),
                        web.get("/api/jobs/{id}/events", self._events), *api.routes(),
                        web.static("/static", str(STATIC))])
        return app

    # ------------------------------------------------------------------------- handlers

    @web.middleware
    async def _auth(self, request: web.Request, handler):
        caller = self.sessions.caller(request.headers, request.cookies)
        if caller is None and not _open(request.path):
            raise web.HTTPUnauthorized(text="log in with a token, or send 'authorization: Bearer <token>'",
                                       headers={"WWW-Authenticate": 'Bearer realm="fusetrain"'})
        request["caller"] = caller
        response = await handler(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(body=(STATIC / "index.html").read_bytes(), content_type="text/html",
                            headers={"Cache-Control": "no-cache", "Content-Security-Policy":
                                     "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'"})

    async def _login(self, request: web.Request) -> web.Response:
        form = await request.post()
        session = self.sessions.login(str(form.get("token", "")))
        if session is None:
            raise web.HTTPFound("/#/login?failed=1")
        response = web.HTTPFound("/#/jobs")
        response.set_cookie(COOKIE, session, httponly=True, samesite="Strict", path="/")
        raise response

    async def _logout(self, request: web.Request) -> web.Response:
        caller = request["caller"]
        if not self.sessions.csrf_ok(caller, request.headers.get(CSRF_HEADER, "")):
            raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the page")
        self.sessions.logout(caller.session)
        response = web.json_response({"ok": True})
        response.del_cookie(COOKIE, path="/")
        return response

    async def _metrics(self, request: web.Request) -> web.Response:
        body = await self.run(metrics.exposition, self.registry)
        return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE_LATEST})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        return await stream(request, self.manager, self._bridge, self.run, self._closing)

    # ---------------------------------------------------------------------- start, stop

    def start(self, timeout: float = 30.0) -> None:
        self._thread = threading.Thread(target=self._serve, name="fusetrain-web", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the dashboard did not start")
        if self._error is not None:
            raise self._error

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, shutdown_timeout=2.0)
        try:
            self._closing = asyncio.Event()
            self._bridge = ChangeBridge(self.manager.changes, loop)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
            loop.run_until_complete(site.start())
            self.port = runner.addresses[0][1]
        except BaseException as exc:  # noqa: BLE001 -- a busy port: raised again by start()
            self._error = exc
            self._ready.set()
            self._bridge.close()
            loop.run_until_complete(runner.cleanup())
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def stop(self) -> None:
        """Close every stream and connection, then the loop and its threads."""
        loop = self._loop
        if loop is None or self._thread is None or not self._thread.is_alive():
            return
        self._bridge.close()
        loop.call_soon_threadsafe(self._closing.set)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)
