"""The error kinds both sides of the wire agree on, each with the gRPC status code it travels as.

The service raises these (service/errors.py re-exports them; its interceptor turns each into its
status code), the codec in fusetrain.wire.tensors raises them on either side, and the client
builds its own `RpcError` classes (fusetrain.client.errors) on the same code names. Codes are the
names of grpc.StatusCode members ("INVALID_ARGUMENT"): no grpc import here, so the engine-free
client and the service share them without either importing the other.
"""

from __future__ import annotations

# Status code names (grpc.StatusCode.<name>), as DESIGN.md lists them.
INVALID_ARGUMENT = "INVALID_ARGUMENT"
NOT_FOUND = "NOT_FOUND"
ALREADY_EXISTS = "ALREADY_EXISTS"
FAILED_PRECONDITION = "FAILED_PRECONDITION"
RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
UNAUTHENTICATED = "UNAUTHENTICATED"
PERMISSION_DENIED = "PERMISSION_DENIED"
UNAVAILABLE = "UNAVAILABLE"
DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"


class FusetrainError(Exception):
    """Base of every exception fusetrain raises on purpose, on either side of the wire.

    `message` is what the other side (or the user) reads; `code_name` is the status code the
    error travels as over gRPC, "" for an error that never leaves its process (a job file the
    client cannot read)."""

    code_name = ""

    def __init__(self, message: str = ""):
        self.message = message
        super().__init__(message)


class InvalidArgument(FusetrainError):
    """A request field is wrong; the message starts with the field's name ("data.train.x: ...").
    An empty `field` leaves the message as given (it names the field itself)."""

    code_name = INVALID_ARGUMENT

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class NotFound(FusetrainError):
    """No job or dataset with that id."""

    code_name = NOT_FOUND


class AlreadyExists(FusetrainError):
    """A request id was reused with a different request."""

    code_name = ALREADY_EXISTS


class FailedPrecondition(FusetrainError):
    """The job is not in a state that allows the request (e.g. the result of a running job)."""

    code_name = FAILED_PRECONDITION


class ResourceExhausted(FusetrainError):
    """A configured limit would be exceeded; the message names the field and the limit.
    `retry_after`: seconds after which trying again may succeed (0: it will not), sent as the
    trailing metadata RETRY_AFTER_KEY."""

    code_name = RESOURCE_EXHAUSTED

    def __init__(self, field: str, message: str, retry_after: float = 0.0):
        self.field = field
        self.retry_after = retry_after
        super().__init__(f"{field}: {message}" if field else message)


class Unavailable(FusetrainError):
    """The server is draining and accepts no new work."""

    code_name = UNAVAILABLE


# Trailing metadata of a RESOURCE_EXHAUSTED answer: seconds until trying again may succeed.
RETRY_AFTER_KEY = "retry-after-seconds"
