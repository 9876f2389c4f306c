"""gRPC calls' count and latency by method and status code, and UploadDataset's bytes: one interceptor."""

from __future__ import annotations

import time
from typing import Optional

import grpc

from .metrics import RPC_SECONDS, RPCS, UPLOAD_BYTES


class RpcMetrics(grpc.ServerInterceptor):
    """Count and time every call by method and final status code (the outermost interceptor, so
    calls refused UNAUTHENTICATED count too); count UploadDataset's bytes."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method.lstrip("/")
        kind = next(k for k in ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
                    if getattr(handler, k))
        fn = getattr(handler, kind)
        upload = method.endswith("/UploadDataset")

        def observe(context, start: float, failed: bool) -> None:
            code = _code(context)
            name = code.name if code is not None else ("UNKNOWN" if failed else "OK")
            RPCS.labels(method, name).inc()
            RPC_SECONDS.labels(method, name).observe(time.perf_counter() - start)

        def counted(requests):
            for request in requests:
                UPLOAD_BYTES.inc(len(getattr(request, "chunk", b"") or b""))
                yield request

        def once(request, context):
            start, failed = time.perf_counter(), True
            try:
                out = fn(counted(request) if upload else request, context)
                failed = False
                return out
            finally:
                observe(context, start, failed)

        def streamed(request, context):
            start, failed = time.perf_counter(), True
            try:
                yield from fn(request, context)
                failed = False
            finally:
                observe(context, start, failed)

        factory = getattr(grpc, f"{kind}_rpc_method_handler")
        return factory(streamed if kind.endswith("_stream") else once,
                       request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)


def _code(context) -> Optional[grpc.StatusCode]:
    try:
        return context.code()
    except (AttributeError, NotImplementedError):
        return None
