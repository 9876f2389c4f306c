"""A spec's inline data tensors stored apart: the two parts join back to the spec as submitted."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import json_format

from fusetrain.service.specdata import join_spec, split_spec
from fusetrain.v1 import job_pb2


def _tensor(rows: int, cols: int) -> job_pb2.Tensor:
    data = np.arange(rows * cols, dtype=np.float32).tobytes()
    return job_pb2.Tensor(dtype="float32", shape=[rows, cols], data=data)


def _spec(**data) -> job_pb2.JobSpec:
    spec = json_format.ParseDict({"name": "s", "labels": {"a": "b"},
                                  "model": {"inputs": 3, "layers": [{"units": 2}], "seed": 7},
                                  "training": {"epochs": 3}}, job_pb2.JobSpec())
    for where, value in data.items():
        source, field = where.split("_")
        getattr(getattr(spec.data, source), field).CopyFrom(value)
    return spec


@pytest.mark.parametrize("data", [
    {"train_x": _tensor(2000, 3), "train_y": _tensor(2000, 2)},
    {"train_x": _tensor(2000, 3), "train_y": _tensor(2000, 2),
     "validation_x": _tensor(500, 3), "validation_y": _tensor(500, 2)},
    {"train_x": _tensor(2000, 3)},                       # a half-inline source
])
def test_big_inline_tensors_are_split_off_and_join_back(data):
    spec = _spec(**data)
    spec.data.train.x_array = "inputs"                    # a source's other fields stay in the row
    stripped, tensors = split_spec(spec)
    assert len(stripped) < 200 and len(tensors) > 20_000
    rest = job_pb2.JobSpec.FromString(stripped)
    assert rest.data.HasField("train") and not rest.data.train.HasField("x")
    assert rest.data.train.x_array == "inputs" and rest.model == spec.model
    assert job_pb2.JobSpec.FromString(join_spec(stripped, tensors)) == spec
    merged = job_pb2.JobSpec.FromString(stripped)
    merged.MergeFromString(tensors)
    assert merged == spec


def test_small_or_absent_inline_data_stays_in_the_row():
    small = _spec(train_x=_tensor(4, 3), train_y=_tensor(4, 2))
    assert split_spec(small) == (small.SerializeToString(deterministic=True), b"")
    by_id = _spec()
    by_id.data.train.dataset_id = "ab" * 32
    assert split_spec(by_id) == (by_id.SerializeToString(deterministic=True), b"")
    assert split_spec(_spec())[1] == b""


def test_equal_tensors_split_to_equal_bytes():
    """The grid's jobs differ only outside the data: their data parts are one file."""
    a, b = _spec(train_x=_tensor(2000, 3)), _spec(train_x=_tensor(2000, 3))
    b.model.seed = 8
    assert split_spec(a)[1] == split_spec(b)[1] and split_spec(a)[0] != split_spec(b)[0]
