"""fusetrain.wire.tensors: one Tensor codec for the service and the client."""

from __future__ import annotations

import numpy as np
import pytest

from fusetrain.service import errors as service_errors
from fusetrain.v1 import job_pb2
from fusetrain.wire import errors
from fusetrain.wire.tensors import array_to_tensor, tensor_to_array


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "uint8"])
def test_round_trip_keeps_dtype_shape_and_bits(dtype):
    a = (np.arange(12).reshape(3, 4) * 3).astype(dtype)
    t = array_to_tensor(a)
    assert t.dtype == dtype and list(t.shape) == [3, 4] and len(t.data) == a.nbytes
    b = tensor_to_array(t, "x")
    assert b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b)


def test_big_endian_input_goes_little_endian_and_bool_as_float64():
    a = np.array([1.5, -2.0], dtype=">f4")
    t = array_to_tensor(a)
    assert t.dtype == "float32" and t.data == np.array([1.5, -2.0], dtype="<f4").tobytes()
    t = array_to_tensor(np.array([True, False]))
    assert t.dtype == "float64" and np.array_equal(tensor_to_array(t), [1.0, 0.0])


def test_values_and_expected_shape():
    t = job_pb2.Tensor(values=[1, 2, 3, 4])
    assert tensor_to_array(t, "x").shape == (4,)
    a = tensor_to_array(t, "x", shape=(2, 2))
    assert a.dtype == np.float64 and a.tolist() == [[1, 2], [3, 4]]


def test_default_is_a_view_copy_is_writable_and_native():
    t = array_to_tensor(np.ones((2, 2), dtype=np.float32))
    view = tensor_to_array(t, "x")
    assert not view.flags.writeable
    copy = tensor_to_array(t, "x", copy=True)
    assert copy.flags.writeable and copy.dtype == np.dtype(np.float32) and copy.dtype.isnative
    copy[0, 0] = 5
    assert view[0, 0] == 1


@pytest.mark.parametrize("tensor, field, words", [
    (job_pb2.Tensor(dtype="float32", data=b"\0" * 4, values=[1.0]), "x", "either data"),
    (job_pb2.Tensor(dtype="float16", values=[1.0]), "x.dtype", "unknown dtype"),
    (job_pb2.Tensor(data=b"\0" * 8), "x.dtype", "unknown dtype"),
    (job_pb2.Tensor(dtype="float32", data=b"\0" * 6), "x.data", "whole number"),
    (job_pb2.Tensor(dtype="float64", shape=[-1], values=[1.0]), "x.shape", "negative"),
    (job_pb2.Tensor(dtype="float64", shape=[0, 2**62], values=[]), "x.shape", "dimension over"),
    (job_pb2.Tensor(dtype="float64", shape=[2, 2], values=[1.0, 2.0]), "x", "needs 4 values"),
])
def test_bad_tensors_name_the_field(tensor, field, words):
    with pytest.raises(errors.InvalidArgument) as info:
        tensor_to_array(tensor, "x")
    assert info.value.field == field and words in str(info.value)
    assert str(info.value).startswith(f"{field}: ")


def test_over_the_element_limit_is_resource_exhausted():
    with pytest.raises(errors.ResourceExhausted, match="over the limit of 3"):
        tensor_to_array(job_pb2.Tensor(values=[1, 2, 3, 4]), "data.train.x", max_elements=3)


def test_the_service_raises_and_maps_the_codecs_errors():
    # One copy of the code: the service has no codec of its own.
    import importlib.util
    assert importlib.util.find_spec("fusetrain.service.tensors") is None
    from fusetrain.service.servicer import status_of

    try:
        tensor_to_array(job_pb2.Tensor(dtype="bogus"), "x")
    except service_errors.InvalidArgument as exc:
        code, message = status_of(exc)
    assert code.name == "INVALID_ARGUMENT" and message.startswith("x.dtype: unknown dtype")
