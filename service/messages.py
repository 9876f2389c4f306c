"""Store rows and executor outcomes to fusetrain.v1 messages (and back); no grpc, no I/O."""

from __future__ import annotations

import hashlib

import numpy as np
from google.protobuf import timestamp_pb2

from fusetrain.v1 import job_pb2, service_pb2 as pb
from fusetrain.wire.metrics import epoch_message, final_message
from fusetrain.wire.tensors import array_to_tensor, tensor_to_array

from .executor import METRIC_FIELDS
from .store import request_id_of

TERMINAL = (pb.SUCCEEDED, pb.FAILED, pb.CANCELLED)
ACTIVE = (pb.QUEUED, pb.RUNNING, pb.CANCELLING)


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(round(seconds * 1e9)))
    return ts


def state_name(state: int) -> str:
    return pb.JobState.Name(state)


epoch_metrics = epoch_message     # a row of executor.METRIC_FIELDS (the wire's EPOCH_FIELDS)


def pack_epoch_block(metrics: np.ndarray, when: float) -> bytes:
    """Stored form of a batch of epoch events: float64 rows of (time, METRIC_FIELDS...)."""
    block = np.empty((metrics.shape[0], metrics.shape[1] + 1), dtype="<f8")
    block[:, 0] = when
    block[:, 1:] = metrics
    return block.tobytes()


def epoch_block(payload: bytes, count: int) -> np.ndarray:
    """A stored block of `count` epochs as float64 rows of (time, METRIC_FIELDS...); a block stored
    before the later metrics were added has fewer columns, and those read NaN."""
    block = np.frombuffer(payload, dtype="<f8").reshape(count, -1)
    if block.shape[1] < len(METRIC_FIELDS) + 1:
        block = np.hstack([block, np.full((count, len(METRIC_FIELDS) + 1 - block.shape[1]), np.nan)])
    return block


def epoch_events(job_id: str, first: int, payload: bytes, count: int) -> list[pb.JobEvent]:
    """The `count` epoch events of a stored block (epoch_block); metrics it lacks are left unset."""
    block = epoch_block(payload, count)
    return [pb.JobEvent(job_id=job_id, sequence=first + i, time=timestamp(row[0]),
                        epoch=epoch_metrics(row[1:])) for i, row in enumerate(block)]


def job_message(row: dict, include_spec: bool = True) -> pb.Job:
    job = pb.Job(id=row["id"], state=row["state"], request_id=request_id_of(row["request_id"]),
                 batch_id=row["batch_id"] or "", failure_reason=row["failure_reason"],
                 message=row["message"], attempt=row["attempt"], epochs_done=row["epochs_done"],
                 epochs_total=row["epochs_total"], has_result=bool(row["result_sha"]), name=row["name"],
                 labels=row["labels"], created_at=timestamp(row["created_at"]))
    if include_spec:
        job.spec.ParseFromString(row["spec"])
        if row.get("spec_data"):            # its inline data tensors, stored apart (specdata.py)
            job.spec.MergeFromString(row["spec_data"])
    if row["latest"]:
        job.latest.ParseFromString(row["latest"])
    if row["started_at"]:
        job.started_at.CopyFrom(timestamp(row["started_at"]))
    if row["finished_at"]:
        job.finished_at.CopyFrom(timestamp(row["finished_at"]))
    return job


def state_event(job_id: str, state: int, when: float, reason: int = 0, message: str = "",
                attempt: int = 0) -> pb.JobEvent:
    return pb.JobEvent(job_id=job_id, time=timestamp(when),
                       state=pb.StateChange(state=state, failure_reason=reason, message=message,
                                            attempt=attempt))


def weights_sha256(weights) -> str:
    """sha256 of every layer's weight bytes then bias bytes (little-endian), layer by layer."""
    h = hashlib.sha256()
    for w, b in weights:
        for a in (w, b):
            a = np.ascontiguousarray(a)
            h.update(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
    return h.hexdigest()


def result_message(result: dict) -> pb.JobResult:
    """The training part of a JobResult (job id, state and queue timings are filled on reading)."""
    msg = pb.JobResult(
        stop_reason=result["stop_reason"], epochs_run=result["epochs_run"],
        best_epoch=result["best_epoch"], dtype=result["dtype"], blas_kernel=result.get("blas_kernel", ""),
        weights_sha256=weights_sha256(result["weights"]),
        history=[epoch_metrics(row) for row in result["history"]],
        final=final_message(result["final"]),
        timings=pb.Timings(compile_seconds=result["compile_seconds"], train_seconds=result["train_seconds"]))
    msg.class_names.extend(result.get("class_names") or ())
    for w, b in result["weights"]:
        msg.layers.append(pb.LayerWeights(weights=array_to_tensor(w), bias=array_to_tensor(b)))
    norm = result.get("normalization")
    if norm is not None:
        kind, shift, scale = norm
        msg.normalization.CopyFrom(job_pb2.Normalization(kind=kind, shift=array_to_tensor(shift),
                                                         scale=array_to_tensor(scale)))
    return msg


def result_normalization(msg: pb.JobResult):
    """(shift, scale) arrays of a JobResult's normalisation, or None."""
    if not msg.HasField("normalization") or msg.normalization.kind in ("", "none"):
        return None
    return (tensor_to_array(msg.normalization.shift, "normalization.shift"),
            tensor_to_array(msg.normalization.scale, "normalization.scale"))


def result_weights(msg: pb.JobResult) -> list:
    """[(W, b), ...] arrays of a JobResult."""
    return [(tensor_to_array(layer.weights, f"layers[{i}].weights"),
             tensor_to_array(layer.bias, f"layers[{i}].bias")) for i, layer in enumerate(msg.layers)]


def spec_labels(spec: job_pb2.JobSpec) -> dict:
    return dict(spec.labels)
