"""What the client returns: jobs, typed watch events, batches and results (plain Python and numpy).

Each is built from its fusetrain.v1 message (kept as `.proto` where useful); states and failure
reasons are their enum names ("SUCCEEDED", "DIVERGED").
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

import numpy as np

from fusetrain.v1 import job_pb2, service_pb2 as pb
from fusetrain.wire.metrics import EPOCH_FIELDS, FINAL_FIELDS, OPTIONAL_FIELDS, epoch_row, metrics_dict
from fusetrain.wire.tensors import tensor_to_array

from .export import Layer, Normalization

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
METRICS = FINAL_FIELDS          # the wire's names (fusetrain.v1.FinalMetrics)


def _time(ts) -> Optional[datetime]:
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=timezone.utc)


@dataclass
class Job:
    id: str
    state: str
    name: str = ""
    labels: dict = field(default_factory=dict)
    batch_id: str = ""
    request_id: str = ""
    failure_reason: str = ""
    message: str = ""
    attempt: int = 0
    epochs_done: int = 0
    epochs_total: int = 0
    latest: dict = field(default_factory=dict)   # the last epoch's metrics seen
    has_result: bool = False
    created_at: Optional[datetime] = None
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    proto: Optional[pb.Job] = field(default=None, repr=False, compare=False)

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    @classmethod
    def from_proto(cls, m: pb.Job) -> "Job":
        reason = pb.FailureReason.Name(m.failure_reason) if m.failure_reason else ""
        latest = {}
        if m.HasField("latest"):
            latest = metrics_dict(m.latest)
        return cls(id=m.id, state=pb.JobState.Name(m.state), name=m.name, labels=dict(m.labels),
                   batch_id=m.batch_id, request_id=m.request_id, failure_reason=reason, message=m.message,
                   attempt=m.attempt, epochs_done=m.epochs_done, epochs_total=m.epochs_total, latest=latest,
                   has_result=m.has_result, created_at=_time(m.created_at),
                   started_at=_time(m.started_at) if m.HasField("started_at") else None,
                   finished_at=_time(m.finished_at) if m.HasField("finished_at") else None, proto=m)

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "proto"}
        for k in ("created_at", "started_at", "finished_at"):
            out[k] = out[k].isoformat() if out[k] else None
        return out


@dataclass
class Batch:
    """What submit_many / sweep return: the batch id, its jobs and each job's grid overrides."""

    id: str
    jobs: list
    overrides: list = field(default_factory=list)   # one dict per job (sweeps), else empty dicts


@dataclass
class StateEvent:
    job_id: str
    sequence: int
    time: Optional[datetime]
    state: str
    failure_reason: str = ""
    message: str = ""
    attempt: int = 0

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


@dataclass
class EpochEvent:
    job_id: str
    sequence: int
    time: Optional[datetime]
    epoch: int
    train_loss: float
    train_accuracy: Optional[float] = None
    val_loss: Optional[float] = None
    val_accuracy: Optional[float] = None
    learning_rate: float = 0.0
    seconds: float = 0.0
    samples_per_second: float = 0.0
    val_macro_f1: Optional[float] = None   # validation scores: class targets
    val_mae: Optional[float] = None        # regression targets
    val_rmse: Optional[float] = None
    val_r2: Optional[float] = None

    terminal = False


def event_from_proto(e: pb.JobEvent):
    """A StateEvent or an EpochEvent."""
    if e.HasField("state"):
        s = e.state
        return StateEvent(e.job_id, e.sequence, _time(e.time), pb.JobState.Name(s.state),
                          pb.FailureReason.Name(s.failure_reason) if s.failure_reason else "", s.message,
                          s.attempt)
    m = e.epoch
    return EpochEvent(e.job_id, e.sequence, _time(e.time),
                      **{n: getattr(m, n) if n not in OPTIONAL_FIELDS or m.HasField(n) else None
                         for n in EPOCH_FIELDS})


def event_to_dict(event) -> dict:
    out = {"type": "state" if isinstance(event, StateEvent) else "epoch", **event.__dict__}
    out["time"] = event.time.isoformat() if event.time else None
    return out


HISTORY_FIELDS = EPOCH_FIELDS    # the wire's names (fusetrain.v1.EpochMetrics)


class History:
    """Per-epoch metrics: `column("val_accuracy")` as a float64 array (NaN where absent), rows as dicts."""

    def __init__(self, rows: np.ndarray):
        self.array = rows.reshape(-1, len(HISTORY_FIELDS))

    @classmethod
    def from_proto(cls, items) -> "History":
        return cls(np.array([epoch_row(m) for m in items], dtype=np.float64))

    def __len__(self) -> int:
        return len(self.array)

    def column(self, name: str) -> np.ndarray:
        return self.array[:, HISTORY_FIELDS.index(name)].copy()

    def __getitem__(self, i) -> dict:
        row = self.array[i]
        return {k: (int(v) if k == "epoch" else float(v)) for k, v in zip(HISTORY_FIELDS, row)
                if not math.isnan(v)}

    def to_list(self) -> list[dict]:
        return [self[i] for i in range(len(self))]


@dataclass
class Result:
    """A trained model: numpy weights [(W (units, inputs), b (units,)), ...], metrics and timings."""

    job_id: str
    state: str
    stop_reason: str
    weights: list
    history: History
    final: dict
    timings: dict
    weights_sha256: str
    dtype: str
    epochs_run: int
    best_epoch: int
    attempt: int
    activations: list                         # [(activation, leaky slope)] per layer
    normalization: Optional[Normalization] = None
    spec: Optional[job_pb2.JobSpec] = field(default=None, repr=False)
    blas_kernel: str = ""                     # the BLAS that did the arithmetic ("openblas 0.3.30 SkylakeX")
    class_names: list = field(default_factory=list)  # names of the output's classes, from the data file
    search: Optional[pb.SearchResult] = field(default=None, repr=False)  # a search job's table (the winner above)

    @classmethod
    def from_proto(cls, r: pb.JobResult, spec: job_pb2.JobSpec) -> "Result":
        weights = [(tensor_to_array(layer.weights, copy=True), tensor_to_array(layer.bias, copy=True))
                   for layer in r.layers]
        for i, (w, b) in enumerate(weights):
            units = spec.model.layers[i].units if i < len(spec.model.layers) else len(b)
            if w.ndim == 1:
                weights[i] = (w.reshape(units, -1), b)
        digest = hashlib.sha256()
        for w, b in weights:
            digest.update(np.ascontiguousarray(w, dtype=w.dtype.newbyteorder("<")).tobytes())
            digest.update(np.ascontiguousarray(b, dtype=b.dtype.newbyteorder("<")).tobytes())
        if r.weights_sha256 and digest.hexdigest() != r.weights_sha256:
            raise ValueError(f"job {r.job_id}: the weights received do not match their sha256")
        norm = None
        if r.HasField("normalization") and r.normalization.kind not in ("", "none"):
            norm = Normalization(r.normalization.kind, tensor_to_array(r.normalization.shift, copy=True),
                                 tensor_to_array(r.normalization.scale, copy=True))
        acts = [(layer.activation or "sigmoid", layer.leaky_slope if layer.HasField("leaky_slope") else 0.01)
                for layer in spec.model.layers]
        t = r.timings
        return cls(job_id=r.job_id, state=pb.JobState.Name(r.state), stop_reason=r.stop_reason, weights=weights,
                   history=History.from_proto(r.history), final=metrics_dict(r.final),
                   timings={"queued": t.queued_seconds, "compile": t.compile_seconds, "train": t.train_seconds,
                            "total": t.total_seconds},
                   weights_sha256=r.weights_sha256, dtype=r.dtype, epochs_run=r.epochs_run,
                   best_epoch=r.best_epoch, attempt=r.attempt, activations=acts, normalization=norm, spec=spec,
                   blas_kernel=r.blas_kernel, class_names=list(r.class_names or spec.data.class_names),
                   search=r.search if r.HasField("search") else None)

    def layers(self) -> list[Layer]:
        """The model as export.Layer objects (weights, bias, activation, leaky slope)."""
        return [Layer(w, b, act, slope) for (w, b), (act, slope) in zip(self.weights, self.activations)]

    def predict(self, x) -> np.ndarray:
        """The model on raw inputs x (rows, inputs), in this process with numpy: the normalisation,
        then each layer, in the weights' dtype; no server needed. Agrees with the server's
        Predict to float rounding (1e-5 in float32)."""
        from .export import forward
        x = np.asarray(x)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        inputs = self.weights[0][0].shape[1]
        if x.ndim != 2 or x.shape[1] != inputs:
            raise ValueError(f"x has shape {x.shape}; the model takes rows of {inputs} inputs")
        return forward(self.layers(), self.normalization, x)

    def classes(self, y: np.ndarray) -> list:
        """The class of each row of outputs y: its name when the data had class labels, else the
        index of the largest output (one output: 1 above 0.5, else 0)."""
        y = np.asarray(y)
        index = (y[:, 0] > 0.5).astype(int) if y.shape[1] == 1 else np.argmax(y, axis=1)
        names = self.class_names
        return [names[i] if i < len(names) else int(i) for i in index.tolist()]

    def save(self, path, metadata: Optional[dict] = None):
        """Write .npz, .safetensors or .onnx (clients/export.py), with the normalisation (and the
        class names, when the data had them)."""
        from .export import save
        meta = {"job_id": self.job_id, "weights_sha256": self.weights_sha256, "blas_kernel": self.blas_kernel,
                **({"class_names": list(self.class_names)} if self.class_names else {}),
                **(metadata or {})}
        return save(path, self.layers(), self.normalization, meta)

    def summary(self) -> dict:
        """Everything but the weights and history, JSON-ready."""
        return {"job_id": self.job_id, "state": self.state, "stop_reason": self.stop_reason,
                "epochs_run": self.epochs_run, "best_epoch": self.best_epoch, "final": self.final,
                "timings": self.timings, "weights_sha256": self.weights_sha256, "dtype": self.dtype,
                "attempt": self.attempt, "blas_kernel": self.blas_kernel,
                "layers": [[int(w.shape[1]), int(w.shape[0]), act] for (w, _), (act, _) in
                           zip(self.weights, self.activations)],
                "normalization": None if self.normalization is None else self.normalization.kind,
                "class_names": list(self.class_names)}
