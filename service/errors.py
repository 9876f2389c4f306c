"""Domain exceptions of the service; the servicer's one interceptor maps them to gRPC codes.

The job manager and the store raise these (and the engine's InvalidSpec / LimitExceeded); none of
them knows about grpc.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: `message` is what the client reads."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


class InvalidArgument(ServiceError):
    """A request field is wrong; the message starts with the field's name."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class NotFound(ServiceError):
    """No job or dataset with that id."""


class AlreadyExists(ServiceError):
    """A request id was reused with a different request."""


class FailedPrecondition(ServiceError):
    """The job is not in a state that allows the request (e.g. the result of a running job)."""


class ResourceExhausted(ServiceError):
    """A configured limit would be exceeded; the message names the field and the limit.
    `retry_after`: seconds after which trying again may succeed (sent as trailing metadata)."""

    def __init__(self, field: str, message: str, retry_after: float = 0.0):
        self.field = field
        self.retry_after = retry_after
        super().__init__(f"{field}: {message}")


class Unavailable(ServiceError):
    """The server is draining and accepts no new work."""
