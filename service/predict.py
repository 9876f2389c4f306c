"""Predict: run a finished job's model on a client's inputs, bounded in rows, calls and memory.

Predictions run on a small pool of their own (PREDICT_THREADS), never more than
`max_predict_calls` queued or running at once; each call has at most `max_predict_rows` rows,
checked from the tensor's shape before anything is computed. Decoded models are cached by the
bytes of their weights, least recently used first out, up to `max_predict_cache_bytes`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from fusetrain import engine
from fusetrain.v1 import job_pb2, service_pb2 as pb
from fusetrain.wire.tensors import TENSOR_DTYPES, array_to_tensor, tensor_to_array

from .config import ServerConfig
from .dataprep import normalize
from .errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from .messages import result_normalization, result_weights, state_name
from .specs import engine_limits, to_engine
from .store import Store

PREDICT_THREADS = 1         # predictions computed at once (each uses the engine's threads)


class Predictor:
    """Predictions of finished jobs' models."""

    def __init__(self, config: ServerConfig, store: Store):
        self.config = config
        self.limits = config.limits
        self.store = store
        self._cache: OrderedDict = OrderedDict()     # job id -> (result sha, model, weights, norm, bytes)
        self._cache_lock = threading.Lock()
        self._cached_bytes = 0
        self._pool = ThreadPoolExecutor(max_workers=PREDICT_THREADS, thread_name_prefix="fusetrain-predict")
        self._calls = threading.BoundedSemaphore(max(1, self.limits.max_predict_calls))

    def forget(self, job_id: str) -> None:
        with self._cache_lock:
            entry = self._cache.pop(job_id, None)
            if entry is not None:
                self._cached_bytes -= entry[4]

    def cached_bytes(self) -> int:
        with self._cache_lock:
            return self._cached_bytes

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _model(self, row: dict):
        """(model spec, weights, normalisation, class names) of a job with a result, cached by
        result sha."""
        with self._cache_lock:
            entry = self._cache.get(row["id"])
            if entry is not None and entry[0] == row["result_sha"]:
                self._cache.move_to_end(row["id"])
                return (*entry[1:4], entry[5])
        spec = job_pb2.JobSpec.FromString(row["spec"])
        result = pb.JobResult.FromString(self.store.result(row["result_sha"]))
        if result.HasField("search"):     # a search job predicts with its winner
            spec = result.search.winner_spec
        model = to_engine(spec, self.limits, self.config.threads_per_worker).model
        weights, norm = result_weights(result), result_normalization(result)
        names = tuple(spec.data.class_names)   # the training data's label names, when it kept them
        size = sum(w.nbytes + b.nbytes for w, b in weights)
        with self._cache_lock:
            old = self._cache.pop(row["id"], None)
            if old is not None:
                self._cached_bytes -= old[4]
            if size <= self.limits.max_predict_cache_bytes:
                while self._cache and self._cached_bytes + size > self.limits.max_predict_cache_bytes:
                    self._cached_bytes -= self._cache.popitem(last=False)[1][4]
                self._cache[row["id"]] = (row["result_sha"], model, weights, norm, size, names)
                self._cached_bytes += size
        return model, weights, norm, names

    def predict(self, row: dict, x: job_pb2.Tensor) -> pb.PredictResponse:
        if not row["result_sha"]:
            raise FailedPrecondition(f"job {row['id']} is {state_name(row['state'])} and has no trained "
                                     f"weights to predict with")
        itemsize = TENSOR_DTYPES.get(x.dtype or "float64", TENSOR_DTYPES["uint8"]).itemsize
        rows = int(x.shape[0]) if len(x.shape) else (len(x.values) or len(x.data) // itemsize)
        if rows > self.limits.max_predict_rows:
            raise ResourceExhausted("x", f"{rows} rows is over the limit of {self.limits.max_predict_rows} "
                                         f"rows per call (max_predict_rows); send them in parts")
        if not self._calls.acquire(blocking=False):
            raise ResourceExhausted("predict", f"{self.limits.max_predict_calls} predictions are queued or "
                                               f"running, the limit (max_predict_calls); retry shortly",
                                    retry_after=1.0)
        try:
            return self._pool.submit(self._run, row, x).result()
        finally:
            self._calls.release()

    def _run(self, row: dict, x: job_pb2.Tensor) -> pb.PredictResponse:
        model, weights, norm, names = self._model(row)
        inputs = tensor_to_array(x, "x", max_elements=self.limits.max_rows * self.limits.max_units)
        if norm is not None:
            if inputs.ndim != 2 or inputs.shape[1] != model.inputs:
                raise InvalidArgument("x", f"must have shape (rows, {model.inputs}), got {list(inputs.shape)}")
            inputs = normalize(inputs, norm[0], norm[1], model.dtype)
        try:
            y = engine.predict(model, weights, inputs,
                               limits=engine_limits(self.limits, self.config.threads_per_worker))
        except engine.InvalidSpec as exc:
            raise InvalidArgument("x", exc.message) from None
        return pb.PredictResponse(y=array_to_tensor(y), class_names=list(names))
