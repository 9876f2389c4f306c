"""The client's exceptions: every gRPC failure becomes an `RpcError` subclass carrying the status
code and the server's message; bad local input is a `SpecError`; a job that did not succeed is
`JobFailed`. The command line maps each to an exit code (cli.py)."""

from __future__ import annotations

from typing import Optional


class FusetrainError(Exception):
    """Base class of everything the client raises on purpose."""


class SpecError(FusetrainError, ValueError):
    """A job file, sweep file or data file that cannot be used; the message names the file or field."""


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
    "INVALID_ARGUMENT": InvalidArgument, "NOT_FOUND": NotFound, "ALREADY_EXISTS": AlreadyExists,
    "FAILED_PRECONDITION": FailedPrecondition, "RESOURCE_EXHAUSTED": ResourceExhausted,
    "UNAUTHENTICATED": Unauthenticated, "PERMISSION_DENIED": Unauthenticated,
    "UNAVAILABLE": Unavailable, "DEADLINE_EXCEEDED": DeadlineExceeded,
}


def from_grpc(exc, method: str = "") -> RpcError:
    """The RpcError subclass for a grpc.RpcError."""
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    cls = _BY_CODE.get(getattr(code, "name", ""), RpcError)
    error = cls(code, details or "", method)
    if cls is ResourceExhausted and hasattr(exc, "trailing_metadata"):
        for key, value in exc.trailing_metadata() or ():
            if key == "retry-after-seconds":
                try:
                    error.retry_after = float(value)
                except ValueError:
                    pass
    return error


class JobFailed(FusetrainError):
    """A job ended FAILED or CANCELLED: `job` (client.Job) with its state, reason and message."""

    def __init__(self, job, message: Optional[str] = None):
        self.job = job
        why = f" ({job.failure_reason})" if job.failure_reason else ""
        super().__init__(message or f"job {job.id} ended {job.state}{why}"
                         + (f": {job.message}" if job.message else ""))
