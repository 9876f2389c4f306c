"""The dashboard's JSON API: aiohttp handlers over the same JobManager the gRPC servicer calls.

Every handler acts as the request's caller (session.Caller.owner): the manager's owner rules hide
other owners' jobs and datasets exactly as over gRPC, and its errors become HTTP statuses here
(NotFound 404, FailedPrecondition 409, InvalidArgument 400, ResourceExhausted 429, Unavailable 503).
Store reads and the manager's calls block, so they run on the web server's thread pool.

    GET  /api/session                      the caller, and the CSRF token for POSTs
    GET  /api/jobs?state=&label=k=v&batch=&page=&size=   a page of jobs, newest first
    GET  /api/jobs/{id}                    a job with its spec as YAML and its result's summary
    GET  /api/jobs/{id}/curve?points=N     its epochs so far (thinned to about N) and the last sequence
    GET  /api/jobs/{id}/events             Server-Sent Events after that sequence (live.py)
    POST /api/jobs/{id}/cancel             cancel (CSRF token needed)
    GET  /api/jobs/{id}/model.{npz,safetensors,onnx}   the trained model
    GET  /api/batches/{id}                 a sweep's or cross-validation's jobs compared
    GET  /api/datasets                     the caller's datasets and the jobs that use them
    GET  /api/server                       workers, queue depth, kernels, limits
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from aiohttp import web

from fusetrain.v1 import job_pb2, service_pb2 as pb

from .. import errors
from . import views
from .live import read_events

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
CURVE_POINTS = 2000
DATASET_JOBS = 20               # jobs listed per dataset
BATCH_CURVES = 8                # curves a batch page overlays at most
FORMATS = {"npz": "application/octet-stream", "safetensors": "application/octet-stream",
           "onnx": "application/octet-stream"}

HTTP_OF = ((errors.NotFound, web.HTTPNotFound), (errors.FailedPrecondition, web.HTTPConflict),
           (errors.ResourceExhausted, web.HTTPTooManyRequests), (errors.Unavailable, web.HTTPServiceUnavailable),
           (errors.InvalidArgument, web.HTTPBadRequest), (errors.AlreadyExists, web.HTTPConflict))


def http_error(exc: Exception) -> web.HTTPException:
    for cls, http in HTTP_OF:
        if isinstance(exc, cls):
            return http(text=str(exc))
    raise exc


def _int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name, "")
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}: not a whole number: {raw!r}") from None
    if not lo <= value <= hi:
        raise web.HTTPBadRequest(text=f"{name}: must be between {lo} and {hi}, got {value}")
    return value


class Api:
    """The handlers; `run(fn, *args)` awaits a blocking call on the web server's threads."""

    def __init__(self, manager, sessions, run):
        self.jobs = manager
        self.store = manager.store
        self.sessions = sessions
        self.run = run

    def routes(self) -> list:
        return [web.get("/api/session", self.session), web.get("/api/jobs", self.list_jobs),
                web.get("/api/jobs/{id}", self.job), web.get("/api/jobs/{id}/curve", self.curve),
                web.post("/api/jobs/{id}/cancel", self.cancel),
                web.get("/api/jobs/{id}/model.{fmt}", self.model), web.get("/api/batches/{id}", self.batch),
                web.get("/api/datasets", self.datasets), web.get("/api/server", self.server)]

    async def call(self, fn, *args):
        try:
            return await self.run(fn, *args)
        except errors.ServiceError as exc:
            raise http_error(exc) from None

    async def session(self, request: web.Request) -> web.Response:
        caller = request["caller"]
        return web.json_response({"owner": caller.owner, "auth": self.sessions.enabled,
                                  "csrf": self.sessions.csrf(caller)})

    async def list_jobs(self, request: web.Request) -> web.Response:
        q = request.query
        size = _int(request, "size", PAGE_SIZE, 1, MAX_PAGE_SIZE)
        states = []
        for name in q.getall("state", []):
            if name not in pb.JobState.keys() or name == "JOB_STATE_UNSPECIFIED":
                raise web.HTTPBadRequest(text=f"state: unknown job state {name!r}")
            states.append(pb.JobState.Value(name))
        labels = {}
        for pair in q.getall("label", []):
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise web.HTTPBadRequest(text=f"label: expected KEY=VALUE, got {pair!r}")
            labels[key] = value
        page = q.get("page", "")
        if page and not page.isdigit():
            raise web.HTTPBadRequest(text="page: not a token this API handed out")
        owner = request["caller"].owner

        def read():
            self.jobs.admission.check_labels(labels, "label")
            rows = self.store.list_jobs(states, labels, q.get("batch", ""), int(page) if page else None,
                                        size + 1, owner=owner)
            more = len(rows) > size
            rows = rows[:size]
            return {"jobs": [views.job_dict(r) for r in rows], "next": str(rows[-1]["seq"]) if more else ""}
        return web.json_response(await self.call(read))

    async def job(self, request: web.Request) -> web.Response:
        job_id, owner = request.match_info["id"], request["caller"].owner

        def read():
            row = self.jobs.row(job_id, owner)
            out = views.job_dict(row)
            spec = job_pb2.JobSpec.FromString(row["spec"])
            out["spec_yaml"] = views.spec_yaml(spec)
            out["failure_reason"] = pb.FailureReason.Name(row["failure_reason"])
            out["result"] = views.result_dict(self.jobs.result(job_id, owner)) if row["result_sha"] else None
            return out
        return web.json_response(await self.call(read))

    async def curve(self, request: web.Request) -> web.Response:
        job_id, owner = request.match_info["id"], request["caller"].owner
        limit = _int(request, "points", CURVE_POINTS, 0, 1_000_000)
        return web.json_response(await self.call(self.read_curve, job_id, owner, limit))

    def read_curve(self, job_id: str, owner, limit: int) -> dict:
        """A job's epoch points so far (thinned to about `limit`, 0: all) and the last event sequence read."""
        row = self.jobs.row(job_id, owner)
        items, last = read_events(self.store, job_id, 0)
        points = [p for kind, data, _ in items if kind == "points" for p in data]
        return {"id": job_id, "state": views.state_name(row["state"]), "after": last,
                "points": views.thin_points(points, limit)}

    async def cancel(self, request: web.Request) -> web.Response:
        caller = request["caller"]
        if not self.sessions.csrf_ok(caller, request.headers.get("X-CSRF-Token", "")):
            raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the page")
        job = await self.call(self.jobs.cancel, request.match_info["id"], False, caller.owner)
        return web.json_response({"id": job.id, "state": pb.JobState.Name(job.state), "message": job.message})

    async def model(self, request: web.Request) -> web.StreamResponse:
        fmt, job_id, owner = request.match_info["fmt"], request.match_info["id"], request["caller"].owner
        if fmt not in FORMATS:
            raise web.HTTPNotFound(text=f"no model format {fmt!r}: npz, safetensors or onnx")

        def write() -> bytes:
            from fusetrain.client.types import Result   # the client's model files, written the same way
            row = self.jobs.row(job_id, owner)
            result = self.jobs.result(job_id, owner)
            spec = job_pb2.JobSpec.FromString(row["spec"])
            with tempfile.TemporaryDirectory(prefix="fusetrain-web-") as tmp:
                path = Path(tmp) / f"model.{fmt}"
                Result.from_proto(result, spec).save(path)
                return path.read_bytes()
        try:
            data = await self.call(write)
        except (ImportError, ValueError) as exc:
            raise web.HTTPConflict(text=f"cannot write {fmt}: {exc}") from None
        return web.Response(body=data, content_type=FORMATS[fmt], headers={
            "Content-Disposition": f'attachment; filename="{job_id}.{fmt}"'})

    async def batch(self, request: web.Request) -> web.Response:
        batch_id, owner = request.match_info["id"], request["caller"].owner

        def read():
            rows = self.store.list_jobs([], {}, batch_id, None, self.jobs.limits.max_batch_jobs + 1, owner=owner)
            if not rows:
                raise errors.NotFound(f"batch {batch_id!r} not found")
            rows.reverse()
            summary = views.batch_summary(rows, [job_pb2.JobSpec.FromString(r["spec"]) for r in rows])
            summary["id"] = batch_id
            summary["curves"] = {r["id"]: self.read_curve(r["id"], owner, 500)["points"]
                                 for r in rows[:BATCH_CURVES]}
            return summary
        return web.json_response(await self.call(read))

    async def datasets(self, request: web.Request) -> web.Response:
        owner = request["caller"].owner

        def read():
            return [views.dataset_dict(ds, self.store.jobs_using(ds.id, DATASET_JOBS, owner))
                    for ds in self.jobs.list_datasets("", owner=owner)]
        return web.json_response({"datasets": await self.call(read)})

    async def server(self, request: web.Request) -> web.Response:
        owner = request["caller"].owner

        def read():
            info = self.jobs.server_info()
            executor = self.jobs.executor
            queued = getattr(executor, "queued_priorities", dict)()
            return views.server_dict(info, self.store.count_by_state(owner), queued, len(executor.running()))
        return web.json_response(await self.call(read))
