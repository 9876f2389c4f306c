"""JobSpec (the proto message) to the engine's dataclasses, and the data checks of admission.

Every error names the JobSpec field it is about, with the dotted JSON path a person writes in a
job file (`model.layers[0].weights`, `training.epochs`), so the servicer can hand it to the client.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from fusetrain.engine import spec as es
from fusetrain.engine.memory import terms as memory_terms
from fusetrain.v1 import job_pb2
from fusetrain.wire import paths
from fusetrain.wire.tensors import tensor_to_array

from .dataprep import check_normalization
from .errors import InvalidArgument, ResourceExhausted

# ------------------------------------------------------------------------------- engine specs

@dataclass
class EngineJob:
    """A JobSpec turned into what engine.train takes (data aside)."""

    model: es.ModelSpec
    optimizer: es.OptimizerSpec
    config: es.TrainConfig
    time_limit: float
    priority: int = 0
    rows: int = 0          # training rows, counted at admission (0: not known, after a restart)


MAX_PRIORITY = 1000


def engine_limits(limits, max_threads: int) -> es.Limits:
    """The engine's Limits from the service's (the engine checks them with Python ints)."""
    return es.Limits(max_layers=limits.max_layers, max_units=limits.max_units,
                     max_parameters=limits.max_parameters, max_epochs=limits.max_epochs,
                     max_rows=limits.max_rows, max_threads=max_threads)


def _opt(msg, name: str, default):
    return getattr(msg, name) if msg.HasField(name) else default


def to_engine(spec: job_pb2.JobSpec, limits, threads_per_worker: int) -> EngineJob:
    """Build and validate the engine's specs; raise InvalidSpec / InvalidArgument naming the field."""
    if not spec.HasField("model"):
        raise InvalidArgument("model", "is required")
    m = spec.model
    fan_ins = [m.inputs] + [layer.units for layer in m.layers[:-1]]
    layers = []
    for idx, (layer, fan_in) in enumerate(zip(m.layers, fan_ins)):
        where = f"model.layers[{idx}]"
        weights = bias = None
        if layer.HasField("weights"):
            weights = tensor_to_array(layer.weights, f"{where}.weights", (layer.units, fan_in),
                                      limits.max_parameters)
        if layer.HasField("bias"):
            bias = tensor_to_array(layer.bias, f"{where}.bias", (layer.units,), limits.max_parameters)
        layers.append(es.LayerSpec(
            units=layer.units, activation=layer.activation or "sigmoid",
            leaky_slope=_opt(layer, "leaky_slope", 0.01), weights=weights, bias=bias,
            freeze_weights=layer.freeze_weights, freeze_bias=layer.freeze_bias,
            dropout=_opt(layer, "dropout", 0.0)))
    model = es.ModelSpec(
        inputs=m.inputs, layers=layers, loss=m.loss or "half_sse",
        initializer=m.initializer or "glorot_uniform", init_scale=_opt(m, "init_scale", 0.1),
        seed=_opt(m, "seed", 0), dtype=m.dtype or "float32")

    o = spec.optimizer
    s = o.schedule
    for path, why in paths.unused_fields(spec):    # ignored without a word otherwise
        raise InvalidArgument(path, why)
    optimizer = es.OptimizerSpec(
        kind=o.kind or "sgd", learning_rate=_opt(o, "learning_rate", 0.01),
        momentum=_opt(o, "momentum", 0.9), beta1=_opt(o, "beta1", 0.9), beta2=_opt(o, "beta2", 0.999),
        rho=_opt(o, "rho", 0.9), epsilon=_opt(o, "epsilon", 1e-8),
        weight_decay=_opt(o, "weight_decay", 0.0), clip_norm=_opt(o, "clip_norm", 0.0),
        schedule=es.ScheduleSpec(kind=s.kind or "constant", step_size=_opt(s, "step_size", 10),
                                 gamma=_opt(s, "gamma", 0.5), power=_opt(s, "power", 0.5),
                                 min_lr=_opt(s, "min_lr", 0.0), factor=_opt(s, "factor", 0.1),
                                 patience=_opt(s, "patience", 10), threshold=_opt(s, "threshold", 1e-4),
                                 cooldown=_opt(s, "cooldown", 0), monitor=s.monitor or "val_loss"))

    t = spec.training
    early = None
    if t.HasField("early_stopping"):
        e = t.early_stopping
        early = es.EarlyStopping(patience=_opt(e, "patience", 10), min_delta=_opt(e, "min_delta", 0.0),
                                 restore_best=_opt(e, "restore_best", True),
                                 monitor=e.monitor or "val_loss")
    config = es.TrainConfig(
        epochs=_opt(t, "epochs", 100), batch_size=_opt(t, "batch_size", 32),
        shuffle=_opt(t, "shuffle", True), seed=_opt(t, "seed", 0),
        validation_fraction=_opt(t, "validation_fraction", 0.0), early_stopping=early,
        threads=_opt(t, "threads", threads_per_worker), class_weight=_class_weight(t))

    time_limit = float(limits.max_job_seconds)
    if t.HasField("time_limit_seconds"):
        value = t.time_limit_seconds
        if not math.isfinite(value) or value <= 0:
            raise InvalidArgument("training.time_limit_seconds", f"must be positive, got {value}")
        if value > limits.max_job_seconds:
            raise ResourceExhausted("training.time_limit_seconds",
                                    f"{value} is over the limit of {limits.max_job_seconds}")
        time_limit = value
    if t.HasField("max_retries") and t.max_retries < 0:
        raise InvalidArgument("training.max_retries", f"must be 0 or more, got {t.max_retries}")

    check_normalization(m.normalization, m.inputs)
    elimits = engine_limits(limits, threads_per_worker)
    es.validate_model(model, elimits)
    es.validate_optimizer(optimizer, config.epochs if isinstance(config.epochs, int) else 1)
    es.validate_config(config, elimits)
    if early is not None and early.monitor == "val_loss" and not _has_validation(spec):
        raise InvalidArgument("training.early_stopping.monitor",
                              "val_loss needs validation data (data.validation or "
                              "training.validation_fraction)")
    if optimizer.schedule.kind == "plateau" and optimizer.schedule.monitor == "val_loss" \
            and not _has_validation(spec):
        raise InvalidArgument("optimizer.schedule.monitor",
                              "val_loss needs validation data (data.validation or training.validation_fraction)")
    if abs(spec.priority) > MAX_PRIORITY:
        raise InvalidArgument("priority", f"must be between {-MAX_PRIORITY} and {MAX_PRIORITY}, got {spec.priority}")
    return EngineJob(model, optimizer, config, time_limit, spec.priority)


def _class_weight(t):
    """The engine's class_weight from Training.class_weight: None, "balanced" or the weights."""
    if not t.HasField("class_weight"):
        return None
    cw = t.class_weight
    if cw.balanced and len(cw.weights):
        raise InvalidArgument("training.class_weight", "give balanced or weights, not both")
    if not cw.balanced and not len(cw.weights):
        raise InvalidArgument("training.class_weight", "give balanced: true or one weight per class")
    return "balanced" if cw.balanced else list(cw.weights)


# What makes each term of the estimate smaller (engine/memory.py names the terms).
_MEMORY_REMEDY = {"activations": "smaller batches", "batch": "smaller batches", "data": "fewer rows",
                  "order": "fewer rows", "history": "fewer epochs"}


def check_memory(job: EngineJob, rows: int, val_rows: int, limits) -> None:
    """The job's estimated memory (engine.memory.job_bytes) against max_job_memory_bytes."""
    parts = memory_terms(job.model, job.optimizer, job.config, rows, val_rows)
    need = sum(parts.values())
    if need > limits.max_job_memory_bytes:
        top = max(parts, key=parts.get)
        raise ResourceExhausted("training", f"the job needs about {need / 2**20:.0f} MiB ({rows} rows, batch "
                                            f"{job.config.batch_size}, {sum(l.units for l in job.model.layers)} "
                                            f"units; most of it {top}, {parts[top] / 2**20:.0f} MiB), over the "
                                            f"limit of {limits.max_job_memory_bytes} bytes "
                                            f"(max_job_memory_bytes); use "
                                            f"{_MEMORY_REMEDY.get(top, 'fewer or smaller layers')}")


def _has_validation(spec: job_pb2.JobSpec) -> bool:
    return (spec.data.HasField("validation") or spec.training.validation_fraction > 0
            or spec.data.HasField("cross_validation"))


def check_cross_validation(spec: job_pb2.JobSpec, rows: int) -> None:
    """A cross-validation split needs k >= 2 folds, a fold and a repeat in range, rows for every
    fold, and no other validation set."""
    if not spec.data.HasField("cross_validation"):
        return
    cv = spec.data.cross_validation
    where = "data.cross_validation"
    if cv.folds < 2:
        raise InvalidArgument(f"{where}.folds", f"must be at least 2, got {cv.folds}")
    if not 0 <= cv.fold < cv.folds:
        raise InvalidArgument(f"{where}.fold", f"must be in [0, {cv.folds - 1}], got {cv.fold}")
    if cv.repeats < 0:
        raise InvalidArgument(f"{where}.repeats", f"must be at least 1 (0 = 1), got {cv.repeats}")
    if not 0 <= cv.repeat < max(cv.repeats, 1):
        raise InvalidArgument(f"{where}.repeat", f"must be in [0, {max(cv.repeats, 1) - 1}], got {cv.repeat}")
    if rows < cv.folds:
        raise InvalidArgument(f"{where}.folds", f"{cv.folds} folds need at least {cv.folds} rows, "
                                                f"data.train has {rows}")
    if spec.data.HasField("validation") or spec.training.validation_fraction > 0:
        raise InvalidArgument(where, "cannot be combined with data.validation or "
                                     "training.validation_fraction")


# ------------------------------------------------------------------------------------------ data

# (dtype, shape) of each array of an uploaded dataset, by dataset id; None when unknown.
DatasetLookup = Callable[[str], Optional[dict]]


def check_data(spec: job_pb2.JobSpec, engine_job: EngineJob, lookup: DatasetLookup, limits) -> dict:
    """Check the data references and shapes at submit time, before the job is queued; the rows of
    each set ({"train": rows, "validation": rows})."""
    rows = {"train": 0, "validation": 0}
    if not spec.data.HasField("train"):
        raise InvalidArgument("data.train", "is required (a dataset_id or inline x and y)")
    for name in ("train", "validation"):
        if name == "validation" and not spec.data.HasField("validation"):
            continue
        src = getattr(spec.data, name)
        where = f"data.{name}"
        x_shape, y_shape = _source_shapes(src, where, lookup, limits)
        model = engine_job.model
        if len(x_shape) == 1:
            x_shape = (x_shape[0], 1)
        if len(y_shape) == 1:
            y_shape = (y_shape[0], 1)
        if len(x_shape) != 2:
            raise InvalidArgument(f"{where}.x", f"must be 2-D (rows, inputs), got shape {list(x_shape)}")
        if len(y_shape) != 2:
            raise InvalidArgument(f"{where}.y", f"must be 2-D (rows, outputs), got shape {list(y_shape)}")
        if x_shape[1] != model.inputs:
            raise InvalidArgument(f"{where}.x", f"has {x_shape[1]} columns but model.inputs is {model.inputs}")
        if y_shape[1] != model.outputs:
            raise InvalidArgument(f"{where}.y", f"has {y_shape[1]} columns but the output layer has "
                                                f"{model.outputs} units")
        if y_shape[0] != x_shape[0]:
            raise InvalidArgument(f"{where}.y", f"has {y_shape[0]} rows but {where}.x has {x_shape[0]}")
        if x_shape[0] > limits.max_rows:
            raise ResourceExhausted(f"{where}.x", f"{x_shape[0]} rows is over the limit of {limits.max_rows}")
        if name == "train":
            check_cross_validation(spec, x_shape[0])
        _check_weight_shape(src, where, lookup, x_shape[0], limits)
        rows[name] = x_shape[0]
    if spec.data.HasField("train") and (spec.data.train.HasField("x")):
        # Inline data is small (it fits in one message): let the engine check values too.
        x, y = load_source(spec.data.train, "data.train", None, limits)
        es.validate_data(engine_job.model, x, y, "data.train",
                         engine_limits(limits, engine_job.config.threads))
        w = load_weights(spec.data.train, "data.train", None)
        if w is not None:
            es.validate_weights(w, len(x), "data.train.sample_weight")
    return rows


def _check_weight_shape(src, where: str, lookup: DatasetLookup, rows: int, limits) -> None:
    """A source's sample weights, when it names some, hold one value per row."""
    if src.weight_array and src.HasField("sample_weight"):
        raise InvalidArgument(where, "give weight_array or an inline sample_weight, not both")
    if src.weight_array:
        if not src.dataset_id:
            raise InvalidArgument(f"{where}.weight_array", "names an array of an uploaded dataset (dataset_id)")
        arrays = lookup(src.dataset_id)
        if src.weight_array not in arrays:
            raise InvalidArgument(f"{where}.weight_array", f"dataset {src.dataset_id[:12]} has no array "
                                                           f"{src.weight_array!r}; it has {', '.join(sorted(arrays))}")
        shape = tuple(arrays[src.weight_array]["shape"])
    elif src.HasField("sample_weight"):
        if src.dataset_id:
            raise InvalidArgument(f"{where}.sample_weight", "inline weights go with inline x and y; name the "
                                                            "dataset's array in weight_array")
        shape = tensor_to_array(src.sample_weight, f"{where}.sample_weight", max_elements=limits.max_rows).shape
    else:
        return
    field = f"{where}.{'weight_array' if src.weight_array else 'sample_weight'}"
    if shape not in ((rows,), (rows, 1)):
        raise InvalidArgument(field, f"needs one weight per row ({rows}), got shape {list(shape)}")


def load_weights(src, where: str, dataset_path: Optional[Callable[[str], str]], cache: Optional[dict] = None):
    """The per-row weights of a DataSource (its dataset's weight_array or inline sample_weight), or None."""
    if src.weight_array:
        if cache is not None and src.dataset_id in cache:
            return cache[src.dataset_id][src.weight_array]
        with np.load(dataset_path(src.dataset_id), allow_pickle=False) as npz:
            return npz[src.weight_array]
    if src.HasField("sample_weight"):
        return tensor_to_array(src.sample_weight, f"{where}.sample_weight")
    return None


def _source_shapes(src, where: str, lookup: DatasetLookup, limits) -> tuple[tuple, tuple]:
    if src.HasField("file"):
        raise InvalidArgument(f"{where}.file", f"{src.file.path!r} is a file on the client's machine: a "
                                               f"client reads and uploads it, then sends dataset_id")
    inline = src.HasField("x") or src.HasField("y")
    if src.dataset_id and inline:
        raise InvalidArgument(where, "give either dataset_id or inline x and y, not both")
    if src.dataset_id:
        arrays = lookup(src.dataset_id)
        if arrays is None:
            raise InvalidArgument(f"{where}.dataset_id", f"no uploaded dataset {src.dataset_id!r}")
        shapes = []
        for key, default in (("x_array", "x"), ("y_array", "y")):
            array = getattr(src, key) or default
            if array not in arrays:
                raise InvalidArgument(f"{where}.{key}", f"dataset {src.dataset_id[:12]} has no array "
                                                        f"{array!r}; it has {', '.join(sorted(arrays))}")
            shapes.append(tuple(arrays[array]["shape"]))
        return shapes[0], shapes[1]
    if not (src.HasField("x") and src.HasField("y")):
        raise InvalidArgument(where, "needs a dataset_id, or both inline x and y")
    x = tensor_to_array(src.x, f"{where}.x", max_elements=limits.max_rows * limits.max_units)
    y = tensor_to_array(src.y, f"{where}.y", max_elements=limits.max_rows * limits.max_units)
    return x.shape, y.shape


def load_source(src, where: str, dataset_path: Optional[Callable[[str], str]], limits=None,
                cache: Optional[dict] = None) -> tuple[np.ndarray, np.ndarray]:
    """The (x, y) arrays of a DataSource, from its inline tensors or its dataset file."""
    if src.dataset_id:
        if cache is not None and src.dataset_id in cache:
            arrays = cache[src.dataset_id]
        else:
            with np.load(dataset_path(src.dataset_id), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            if cache is not None:
                cache.clear()          # keep one dataset: jobs of a batch share it
                cache[src.dataset_id] = arrays
        return arrays[src.x_array or "x"], arrays[src.y_array or "y"]
    return (tensor_to_array(src.x, f"{where}.x"), tensor_to_array(src.y, f"{where}.y"))
