"""Tensor messages (fusetrain.v1.Tensor) to numpy arrays and back, for both sides of the wire.

A Tensor is a dtype name, a shape and either raw little-endian bytes (`data`) or a list of
numbers (`values`). Decoding checks dtype, shape and size and names the field in its errors
(fusetrain.wire.errors: INVALID_ARGUMENT, or RESOURCE_EXHAUSTED over `max_elements`).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from fusetrain.v1 import job_pb2

from .errors import InvalidArgument, ResourceExhausted

# Tensor dtypes on the wire, all little-endian.
TENSOR_DTYPES = {
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
    "int32": np.dtype("<i4"),
    "int64": np.dtype("<i8"),
    "uint8": np.dtype("u1"),
}

MAX_DIMENSION = 2**31 - 1


def tensor_to_array(t: job_pb2.Tensor, field: str = "tensor", shape: Optional[tuple] = None,
                    max_elements: Optional[int] = None, copy: bool = False) -> np.ndarray:
    """Decode a Tensor; `shape` is the expected shape, used when the tensor gives none.

    By default raw bytes come back as a read-only little-endian view of the message's bytes (no
    copy); copy=True gives a writable array in the machine's byte order."""
    if t.data and len(t.values):
        raise InvalidArgument(field, "give either data (raw bytes) or values, not both")
    name = t.dtype or ("float64" if len(t.values) or not t.data else "")
    if name not in TENSOR_DTYPES:
        raise InvalidArgument(f"{field}.dtype", f"unknown dtype {t.dtype!r}; expected one of "
                                                f"{', '.join(TENSOR_DTYPES)}")
    dtype = TENSOR_DTYPES[name]
    if t.data:
        if len(t.data) % dtype.itemsize:
            raise InvalidArgument(f"{field}.data", f"{len(t.data)} bytes is not a whole number of "
                                                   f"{name} values")
        count = len(t.data) // dtype.itemsize
    else:
        count = len(t.values)
    if max_elements is not None and count > max_elements:
        raise ResourceExhausted(field, f"{count} values is over the limit of {max_elements}")
    dims = tuple(int(d) for d in t.shape)
    if any(d < 0 for d in dims):
        raise InvalidArgument(f"{field}.shape", f"negative dimension in {list(dims)}")
    if any(d > MAX_DIMENSION for d in dims):      # numpy cannot even describe (0, 2**62)
        raise InvalidArgument(f"{field}.shape", f"dimension over {MAX_DIMENSION} in {list(dims)}")
    if not dims:
        dims = shape if shape is not None and math.prod(shape) == count else (count,)
    if math.prod(dims) != count:
        raise InvalidArgument(field, f"shape {list(dims)} needs {math.prod(dims)} values, got {count}")
    if t.data:
        arr = np.frombuffer(t.data, dtype=dtype).reshape(dims)
    else:
        arr = np.asarray(t.values, dtype=np.float64).astype(dtype, copy=False).reshape(dims)
    if copy:
        arr = arr.astype(dtype.newbyteorder("="), copy=True)
    return arr


def array_to_tensor(a) -> job_pb2.Tensor:
    """Raw little-endian bytes of `a`, with its dtype and shape (dtypes the wire has no name for,
    bool included, go as float64)."""
    a = np.asarray(a)
    name = a.dtype.name
    if name not in TENSOR_DTYPES:
        a, name = a.astype(np.float64), "float64"
    data = np.ascontiguousarray(a, dtype=TENSOR_DTYPES[name]).tobytes()
    return job_pb2.Tensor(dtype=name, shape=list(a.shape), data=data)
