"""The client's exceptions: every gRPC failure becomes an `RpcError` subclass carrying the status
code and the server's message; bad local input is a `SpecError`; a job that did not succeed is
`JobFailed`. The command line maps each to an exit code (cli.py).

The base class and the status code names are the wire's (fusetrain.wire.errors), shared with the
service: `code_name` is the status code an error travels as. The service's errors carry the field
at fault; the client's carry the status code it received, so the classes themselves differ.
"""

from __future__ import annotations

from typing import Optional

from fusetrain.wire import errors as wire
from fusetrain.wire.errors import FusetrainError

__all__ = ["FusetrainError", "SpecError", "MissingExtra", "RpcError", "InvalidArgument", "NotFound",
           "AlreadyExists", "FailedPrecondition", "ResourceExhausted", "Unauthenticated", "Unavailable",
           "DeadlineExceeded", "from_grpc", "from_wire", "JobFailed"]


class SpecError(FusetrainError, ValueError):
    """A job file, sweep file or data file that cannot be used; the message names the file or field."""


class MissingExtra(SpecError):
    """A feature whose dependencies this install lacks; the message is the pip command that adds
    them (e.g. `fusetrain train --local` without the engine: pip install 'fusetrain[server]')."""

    def __init__(self, message: str, extra: str):
        self.extra = extra
        super().__init__(message)


class RpcError(FusetrainError):
    """A call the server (or the network) refused: `code` (a grpc.StatusCode), `code_name`,
    `details` (the server's message, e.g. "model.layers[0].units: must be at least 1"), `method`."""

    def __init__(self, code, details: str, method: str = ""):
        self.code = code
        self.code_name = getattr(code, "name", str(code))
        self.details = details
        self.method = method
        super().__init__(f"{self.code_name}: {details}")


class InvalidArgument(RpcError):
    """A bad spec or data; the message starts with the field."""


class NotFound(RpcError):
    """No job or dataset with that id."""


class AlreadyExists(RpcError):
    """A request id reused with a different request."""


class FailedPrecondition(RpcError):
    """The job's state does not allow it (e.g. the result of a running job)."""


class ResourceExhausted(RpcError):
    """Over one of the server's limits (GetServerInfo lists them). `retry_after`: the server's
    hint, in seconds, when trying again later may succeed (a quota or a full queue), else 0."""

    retry_after = 0.0


class Unauthenticated(RpcError):
    """A missing or wrong token."""


class Unavailable(RpcError):
    """The server cannot be reached or is draining (retried with backoff before this is raised)."""


class DeadlineExceeded(RpcError):
    """The call took longer than its deadline."""


_BY_CODE = {
    wire.INVALID_ARGUMENT: InvalidArgument, wire.NOT_FOUND: NotFound, wire.ALREADY_EXISTS: AlreadyExists,
    wire.FAILED_PRECONDITION: FailedPrecondition, wire.RESOURCE_EXHAUSTED: ResourceExhausted,
    wire.UNAUTHENTICATED: Unauthenticated, wire.PERMISSION_DENIED: Unauthenticated,
    wire.UNAVAILABLE: Unavailable, wire.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def from_grpc(exc, method: str = "") -> RpcError:
    """The RpcError subclass for a grpc.RpcError."""
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    cls = _BY_CODE.get(getattr(code, "name", ""), RpcError)
    error = cls(code, details or "", method)
    if cls is ResourceExhausted and hasattr(exc, "trailing_metadata"):
        for key, value in exc.trailing_metadata() or ():
            if key == wire.RETRY_AFTER_KEY:
                try:
                    error.retry_after = float(value)
                except ValueError:
                    pass
    return error


def from_wire(exc: FusetrainError, method: str = "") -> RpcError:
    """The RpcError a server would have answered for one of the service's own errors, raised in
    this process (`train --local` runs the service's checks in-process)."""
    import grpc

    code = getattr(grpc.StatusCode, exc.code_name or "UNKNOWN")
    error = _BY_CODE.get(exc.code_name, RpcError)(code, str(exc), method)
    if isinstance(error, ResourceExhausted):
        error.retry_after = float(getattr(exc, "retry_after", 0.0) or 0.0)
    return error


class JobFailed(FusetrainError):
    """A job ended FAILED or CANCELLED: `job` (client.Job) with its state, reason and message."""

    def __init__(self, job, message: Optional[str] = None):
        self.job = job
        why = f" ({job.failure_reason})" if job.failure_reason else ""
        super().__init__(message or f"job {job.id} ended {job.state}{why}"
                         + (f": {job.message}" if job.message else ""))
