"""Domain exceptions of the service; the servicer's one interceptor maps them to gRPC codes.

They are the wire's error kinds (fusetrain.wire.errors), shared with the tensor codec that the
service and the client both run, so an error raised while decoding a request's tensors is the
same InvalidArgument as one raised here. The job manager and the store raise these (and the
engine's InvalidSpec / LimitExceeded); none of them knows about grpc.

    ServiceError         base class: `message` is what the client reads
    InvalidArgument      (field, message): a request field is wrong; the message starts with it
    NotFound             no job or dataset with that id
    AlreadyExists        a request id reused with a different request
    FailedPrecondition   the job's state does not allow the request
    ResourceExhausted    (field, message, retry_after): a configured limit would be exceeded
    Unavailable          the server is draining and accepts no new work
"""

from __future__ import annotations

from fusetrain.wire.errors import (AlreadyExists, FailedPrecondition, FusetrainError as ServiceError,
                                   InvalidArgument, NotFound, ResourceExhausted, Unavailable)

__all__ = ["ServiceError", "InvalidArgument", "NotFound", "AlreadyExists", "FailedPrecondition",
           "ResourceExhausted", "Unavailable"]
