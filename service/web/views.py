"""What the dashboard's pages show, as JSON-ready dicts: jobs, curves, a batch's comparison, datasets.

Pure functions of store rows and messages (no HTTP, no I/O), so they are tested on their own.
Curve points are lists [epoch, train_loss, train_accuracy, val_loss, val_accuracy, learning_rate]
(None where a metric does not apply); a long curve is thinned for drawing by the rule a result's
history follows (service/history.py): evenly, always keeping the first and the last point.
"""

from __future__ import annotations

import math
import statistics
from typing import Optional

import numpy as np
import yaml
from google.protobuf import json_format

from fusetrain.v1 import job_pb2, service_pb2 as pb

from .. import history
from ..executor import METRIC_FIELDS
from ..messages import epoch_block, state_name

SCORES = ("val_macro_f1", "val_mae", "val_rmse", "val_r2")   # per epoch, of the validation rows
CURVE_FIELDS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate", *SCORES)
_CURVE_COLS = [1 + METRIC_FIELDS.index(name) for name in CURVE_FIELDS]     # +1: the block's time column
METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", *SCORES)   # a batch's mean and spread
FINAL_METRICS = tuple(f.name for f in pb.FinalMetrics.DESCRIPTOR.fields
                      if f.type == f.TYPE_DOUBLE)                            # a result's scalars


def _num(value) -> Optional[float]:
    return float(value) if value is not None and math.isfinite(value) else None


def epoch_dict(m: pb.EpochMetrics) -> dict:
    return {name: (_num(getattr(m, name)) if name in ("epoch", "train_loss", "learning_rate") or m.HasField(name)
                   else None) for name in CURVE_FIELDS}


def job_dict(row: dict) -> dict:
    """A job row of the store as the jobs table shows it (no spec)."""
    latest = pb.EpochMetrics.FromString(row["latest"]) if row["latest"] else None
    return {"id": row["id"], "name": row["name"], "state": state_name(row["state"]), "labels": row["labels"],
            "batch_id": row["batch_id"] or "", "epochs_done": row["epochs_done"],
            "epochs_total": row["epochs_total"], "message": row["message"], "attempt": row["attempt"],
            "created_at": row["created_at"], "started_at": row["started_at"], "finished_at": row["finished_at"],
            "has_result": bool(row["result_sha"]), "latest": epoch_dict(latest) if latest else None,
            "metric": headline(latest)}


def headline(latest: Optional[pb.EpochMetrics]) -> Optional[dict]:
    """The one number a table shows for a run: validation accuracy, else validation loss, else
    training accuracy, else training loss, of the last epoch seen."""
    if latest is None:
        return None
    for name in ("val_accuracy", "val_loss", "train_accuracy"):
        if latest.HasField(name):
            return {"name": name, "value": _num(getattr(latest, name))}
    return {"name": "train_loss", "value": _num(latest.train_loss)}


def spec_dict(spec: job_pb2.JobSpec, defaults: bool = False) -> dict:
    """The spec as JSON-ready data; `defaults`: with the fields left at their default (a swept
    field whose value is 0 in one job, e.g. fold 0)."""
    return json_format.MessageToDict(spec, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=defaults)


def spec_yaml(spec: job_pb2.JobSpec) -> str:
    """The spec as a YAML job file would hold it, inline data tensors summarised (dtype, shape)."""
    return yaml.safe_dump(_summarised(spec_dict(spec)), sort_keys=False, default_flow_style=None)


def _summarised(value):
    if isinstance(value, dict):
        if "shape" in value and any(k in value for k in ("values", "data")):     # a Tensor
            return {k: v for k, v in value.items() if k not in ("values", "data")}
        return {k: _summarised(v) for k, v in value.items()}
    return value


def result_dict(r: pb.JobResult) -> dict:
    return {"stop_reason": r.stop_reason, "epochs_run": r.epochs_run, "best_epoch": r.best_epoch,
            "dtype": r.dtype, "weights_sha256": r.weights_sha256, "blas_kernel": r.blas_kernel,
            "final": {name: (_num(getattr(r.final, name)) if name == "train_loss" or r.final.HasField(name)
                             else None) for name in FINAL_METRICS},
            "timings": {"queued": r.timings.queued_seconds, "compile": r.timings.compile_seconds,
                        "train": r.timings.train_seconds, "total": r.timings.total_seconds}}


def curve_points(payload: bytes, count: int) -> list[list]:
    """The points of one stored block of `count` epochs (messages.epoch_block)."""
    rows = epoch_block(payload, count)[:, _CURVE_COLS]
    return [[v if math.isfinite(v) else None for v in row] for row in rows.tolist()]


def thin_points(points: list[list], limit: int) -> list[list]:
    """At most about `limit` points, evenly spaced by epoch, the first and the last kept."""
    if limit <= 0 or len(points) <= limit:
        return points
    epochs = np.array([p[0] for p in points], dtype=np.int64)
    keep = history.kept(epochs, int(epochs.max()), limit, last=int(epochs[-1]))
    keep[-1] = True
    return [p for p, k in zip(points, keep) if k]


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, name + "."))
        else:
            out[name] = value
    return out


def batch_summary(rows: list[dict], specs: list[job_pb2.JobSpec]) -> dict:
    """A sweep or cross-validation batch: its jobs (oldest first) with the fields whose values
    differ between them, each one's last metrics, and the mean and standard deviation of each metric."""
    flats = [_flat({k: v for k, v in spec_dict(s, True).items() if k not in ("name", "labels")}) for s in specs]
    keys = sorted(set().union(*flats)) if flats else []
    swept = [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1 and not k.startswith("data.x")]
    jobs = []
    for row, flat in zip(rows, flats):
        job = job_dict(row)
        job["fields"] = {k: flat.get(k) for k in swept}
        jobs.append(job)
    stats = {}
    for name in METRICS:
        values = [j["latest"][name] for j in jobs if j["latest"] and j["latest"][name] is not None]
        if values:
            stats[name] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1
                           else 0.0, "n": len(values)}
    return {"jobs": jobs, "fields": swept, "stats": stats,
            "folds": next((f for f in swept if f.endswith("cross_validation.fold")), None)}


def dataset_dict(ds: pb.Dataset, used_by: list[tuple[str, str]]) -> dict:
    return {"id": ds.id, "name": ds.name, "size_bytes": ds.size_bytes,
            "arrays": [{"name": a.name, "dtype": a.dtype, "shape": list(a.shape)} for a in ds.arrays],
            "created_at": ds.created_at.ToNanoseconds() / 1e9,
            "jobs": [{"id": i, "name": n} for i, n in used_by]}


def server_dict(info: pb.ServerInfo, counts: dict, queued: dict, running: int) -> dict:
    d = json_format.MessageToDict(info, preserving_proto_field_name=True)
    d["jobs_by_state"] = {state_name(s): n for s, n in sorted(counts.items())}
    d["queue_depth"] = {str(p): n for p, n in sorted(queued.items())}
    d["running"] = running
    return d
