"""TrainingService over gRPC: convert messages, call the JobManager, nothing else.

`ErrorInterceptor` is the one place where domain exceptions become status codes.
"""

from __future__ import annotations

import logging
from typing import Optional

import grpc

from fusetrain import engine
from fusetrain.v1 import service_pb2 as pb, service_pb2_grpc
from fusetrain.wire.errors import RETRY_AFTER_KEY

from . import errors, metrics
from .auth import TokenInterceptor, current_owner  # noqa: F401 -- TokenInterceptor re-exported
from .jobs import JobManager
from .streams import StreamSlots

log = logging.getLogger("fusetrain.servicer")

RETRY_AFTER = RETRY_AFTER_KEY         # trailing metadata of RESOURCE_EXHAUSTED from a quota

# Most specific first: LimitExceeded is an InvalidSpec.
STATUS_OF = (
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (engine.LimitExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (engine.InvalidSpec, grpc.StatusCode.INVALID_ARGUMENT),
)


def status_of(exc: BaseException):
    """(code, message) for a domain exception; None for anything else (a bug)."""
    for cls, code in STATUS_OF:
        if isinstance(exc, cls):
            return code, str(exc)
    return None


def _abort(exc: BaseException, context, method: str) -> None:
    mapped = status_of(exc)
    if mapped is None and not context.is_active():
        # The client cancelled or went away mid-call (an abandoned upload): nobody to answer, and
        # nothing wrong on this side, so no traceback at the pace of whoever abandons calls.
        log.info("%s: the client left before the call ended (%s)", method, type(exc).__name__)
        context.abort(grpc.StatusCode.CANCELLED, "the client left")
    if mapped is None:
        log.exception("%s failed", method)
        context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method} (logged on the server)")
    if mapped[0] == grpc.StatusCode.RESOURCE_EXHAUSTED:
        metrics.refused(exc)
    retry_after = getattr(exc, "retry_after", 0)
    if retry_after:
        context.set_trailing_metadata(((RETRY_AFTER, f"{retry_after:g}"),))
    context.abort(*mapped)


class _Malformed:
    """What a request that is not a valid message deserializes to (gRPC would answer INTERNAL)."""

    def __init__(self, exc: Exception):
        self.exc = exc


def _tolerant(deserializer):
    if deserializer is None:
        return None

    def parse(data: bytes):
        try:
            return deserializer(data)
        except Exception as exc:  # noqa: BLE001 -- DecodeError, recursion limit, bad UTF-8
            return _Malformed(exc)
    return parse


def _checked(request):
    if isinstance(request, _Malformed):
        raise errors.InvalidArgument("request", f"not a valid message of this method "
                                                f"({type(request.exc).__name__}: {request.exc})")
    return request


def _checked_stream(requests):
    for request in requests:
        yield _checked(request)


class ErrorInterceptor(grpc.ServerInterceptor):
    """Maps the service's and engine's exceptions to gRPC status codes, for every method; a request
    that does not parse is INVALID_ARGUMENT, not gRPC's INTERNAL."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith("/fusetrain."):
            return handler
        method = handler_call_details.method

        streamed = bool(handler.stream_unary or handler.stream_stream)
        check = _checked_stream if streamed else _checked

        def unary(fn):
            def wrapped(request, context):
                try:
                    return fn(check(request), context)
                except Exception as exc:  # noqa: BLE001 -- mapped or logged, never swallowed
                    _abort(exc, context, method)
            return wrapped

        def streaming(fn):
            def wrapped(request, context):
                try:
                    yield from fn(check(request), context)
                except Exception as exc:  # noqa: BLE001
                    _abort(exc, context, method)
            return wrapped

        kwargs = {"request_deserializer": _tolerant(handler.request_deserializer),
                  "response_serializer": handler.response_serializer}
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), **kwargs)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream), **kwargs)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), **kwargs)
        return grpc.stream_stream_rpc_method_handler(streaming(handler.stream_stream), **kwargs)


class TrainingServicer(service_pb2_grpc.TrainingServiceServicer):
    def __init__(self, manager: JobManager, slots: Optional[StreamSlots] = None):
        self.jobs = manager
        self.slots = slots or StreamSlots(1 << 30, 0)

    def GetServerInfo(self, request, context):
        return self.jobs.server_info()

    def UploadDataset(self, request_iterator, context):
        with self.slots.hold(current_owner()):
            return self.jobs.upload_dataset(request_iterator, owner=current_owner())

    def GetDataset(self, request, context):
        return self.jobs.dataset(request.dataset_id, owner=current_owner())

    def ListDatasets(self, request, context):
        return pb.ListDatasetsResponse(datasets=self.jobs.list_datasets(request.id_prefix, owner=current_owner()))

    def DeleteDataset(self, request, context):
        self.jobs.delete_dataset(request.dataset_id, owner=current_owner())
        return pb.DeleteDatasetResponse()

    def SubmitJob(self, request, context):
        return self.jobs.submit(request.spec, request.request_id, owner=current_owner())

    def SubmitJobs(self, request, context):
        return self.jobs.submit_batch(request, owner=current_owner())

    def GetJob(self, request, context):
        return self.jobs.get(request.job_id, owner=current_owner())

    def ListJobs(self, request, context):
        return self.jobs.list(request, owner=current_owner())

    def WatchJob(self, request, context):
        owner = current_owner()
        with self.slots.hold(owner):
            for events in self.jobs.watch(request.job_id, request.after_sequence, context.is_active, owner=owner):
                yield pb.WatchJobResponse(events=events)

    def CancelJob(self, request, context):
        return self.jobs.cancel(request.job_id, request.force, owner=current_owner())

    def DeleteJob(self, request, context):
        self.jobs.delete(request.job_id, owner=current_owner())
        return pb.DeleteJobResponse()

    def GetResult(self, request, context):
        return self.jobs.result(request.job_id, owner=current_owner())

    def Predict(self, request, context):
        return self.jobs.predict(request.job_id, request.x, owner=current_owner())
