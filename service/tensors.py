"""The tensor codec lives in fusetrain.wire.tensors (the client uses the same one); the service
modules that import it from here get it re-exported."""

from fusetrain.wire.tensors import MAX_DIMENSION, TENSOR_DTYPES, array_to_tensor, tensor_to_array  # noqa: F401
