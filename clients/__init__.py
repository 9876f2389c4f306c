"""fusetrain.client: the Python client of the fusetrain service and the `fusetrain` command line.

    from fusetrain.client import Client
    with Client("127.0.0.1:50051") as c:
        result = c.train("examples/jobs/iris.yaml", progress=True)

Needs only grpcio, protobuf and numpy (rich for progress bars and tables, PyYAML for YAML files,
onnx and safetensors for those exports, each imported when used). It imports the generated
fusetrain.v1 modules, never the service or the engine, except `fusetrain serve` and
`train --local`, which run them in-process. FusetrainClassifier and FusetrainRegressor
(scikit-learn estimators, estimators.py) are imported on first use, so scikit-learn is needed only
by those who use them.
"""

from .client import Client, default_address
from .errors import (AlreadyExists, DeadlineExceeded, FailedPrecondition, FusetrainError, InvalidArgument,
                     JobFailed, NotFound, ResourceExhausted, RpcError, SpecError, Unauthenticated, Unavailable)
from .types import Batch, EpochEvent, History, Job, Result, StateEvent

__all__ = [
    "AlreadyExists", "Batch", "Client", "DeadlineExceeded", "EpochEvent", "FailedPrecondition",
    "FusetrainError", "History", "InvalidArgument", "Job", "JobFailed", "NotFound", "ResourceExhausted",
    "Result", "RpcError", "SpecError", "StateEvent", "Unauthenticated", "Unavailable", "default_address",
]


_ESTIMATORS = ("FusetrainClassifier", "FusetrainRegressor")


def __getattr__(name):
    if name in _ESTIMATORS:
        from . import estimators
        return getattr(estimators, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
