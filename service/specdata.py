"""A job spec's inline data tensors, stored apart from the spec: once, by content.

A JobSpec can carry its training and validation rows inline (`data.train.x`, `data.train.y`,
`data.validation.x`, `data.validation.y`, and each set's `sample_weight`). Those tensors are most of its bytes, and the jobs of a
sweep grid, or a client's repeated submissions, share them. So a job's row holds its spec without
them (a few hundred bytes, with whatever a grid overrode) plus the sha256 of a file under
`<data>/specdata/` holding the tensors alone, serialized as a JobSpec: a grid of N jobs over one
base stores the base's data once, not N times, and a queued task carries the small part only.

Joining is byte concatenation: protobuf merges a message parsed from `a + b` field by field, so
`stripped + tensors` parses to the spec as submitted.
"""

from __future__ import annotations

from fusetrain.v1 import job_pb2

SOURCES = ("train", "validation")
TENSORS = ("x", "y", "sample_weight")
MIN_BYTES = 4096        # inline data smaller than this stays in the job's row


def split_spec(spec: job_pb2.JobSpec, min_bytes: int = MIN_BYTES) -> tuple[bytes, bytes]:
    """(the spec without its inline data tensors, the tensors alone as JobSpec bytes); the second
    is b"" and the first the whole spec when the tensors are under `min_bytes`."""
    bulk = job_pb2.JobSpec()
    for name in SOURCES:
        if spec.data.HasField(name):
            source = getattr(spec.data, name)
            for t in TENSORS:
                if source.HasField(t):
                    getattr(getattr(bulk.data, name), t).CopyFrom(getattr(source, t))
    if bulk.ByteSize() < max(1, min_bytes):
        return spec.SerializeToString(deterministic=True), b""
    stripped = job_pb2.JobSpec()
    stripped.CopyFrom(spec)
    for name in SOURCES:
        if stripped.data.HasField(name):
            source = getattr(stripped.data, name)
            for t in TENSORS:
                source.ClearField(t)
            source.SetInParent()        # an emptied source stays present, as submitted
    return stripped.SerializeToString(deterministic=True), bulk.SerializeToString(deterministic=True)


def join_spec(stripped: bytes, tensors: bytes) -> bytes:
    """The serialized spec as submitted (parses equal to it) from its two stored parts."""
    return stripped + tensors if tensors else stripped
