"""Predict: run a finished job's model on a client's inputs, with the decoded model cached."""

from __future__ import annotations

from fusetrain import engine
from fusetrain.v1 import job_pb2, service_pb2 as pb

from .config import ServerConfig
from .dataprep import normalize
from .errors import FailedPrecondition, InvalidArgument
from .messages import result_normalization, result_weights, state_name
from .specs import engine_limits, to_engine
from .store import Store
from .tensors import array_to_tensor, tensor_to_array

CACHE_MODELS = 64           # decoded models kept (the cache is emptied when it is full)


class Predictor:
    """Predictions of finished jobs' models."""

    def __init__(self, config: ServerConfig, store: Store):
        self.config = config
        self.limits = config.limits
        self.files = store.files
        self._cache: dict = {}

    def forget(self, job_id: str) -> None:
        self._cache.pop(job_id, None)

    def _model(self, row: dict):
        """(model spec, weights, normalisation) of a job with a result, cached by result sha."""
        cached = self._cache.get(row["id"])
        if cached is None or cached[0] != row["result_sha"]:
            spec = job_pb2.JobSpec.FromString(row["spec"])
            model = to_engine(spec, self.limits, self.config.threads_per_worker).model
            result = pb.JobResult.FromString(self.files.read("results", row["result_sha"]))
            weights, norm = result_weights(result), result_normalization(result)
            if len(self._cache) > CACHE_MODELS:
                self._cache.clear()
            cached = self._cache[row["id"]] = (row["result_sha"], model, weights, norm)
        return cached[1:]

    def predict(self, row: dict, x: job_pb2.Tensor) -> pb.PredictResponse:
        if not row["result_sha"]:
            raise FailedPrecondition(f"job {row['id']} is {state_name(row['state'])} and has no trained "
                                     f"weights to predict with")
        model, weights, norm = self._model(row)
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
        return pb.PredictResponse(y=array_to_tensor(y))
