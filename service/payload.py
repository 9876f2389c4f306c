"""An outcome's result: the trained model, its history and metrics, and the encoded JobResult.

Built in the worker (jobfn, searchjob), in parallel across workers, not in the server's one
recorder thread; the server stores the encoded bytes as they are.
"""

from __future__ import annotations

import numpy as np

from . import executor as ex, history
from .messages import result_message


def result_payload(result, rows: np.ndarray, job, task: ex.Task, norm, spec, search=None) -> dict:
    """An outcome's result: weights, history, final metrics, timings, and the encoded JobResult
    (with `search`, a SearchResult message, for a search job)."""
    out = {
        "weights": [(np.asarray(w), np.asarray(b)) for w, b in result.weights],
        "history": history.thin(rows, job.config.epochs, task.limits.max_history_rows),
        "final": dict(result.final),
        "stop_reason": result.stop_reason,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch or 0,
        "compile_seconds": result.compile_seconds,
        "train_seconds": result.train_seconds,
        "dtype": job.model.dtype,
        "normalization": norm,
        "class_names": list(spec.data.class_names),
        "blas_kernel": " ".join(str(v) for v in result.blas.values() if v),
    }
    # The JobResult message is built here, in parallel across workers, not in the server's one
    # recorder thread; the server stores these bytes as they are.
    message = result_message(out)
    if search is not None:
        message.search.CopyFrom(search)
    out["encoded"] = message.SerializeToString()
    return out
