"""Search specs: defaults, checks that name the field, seeded sampling of candidates, their specs.

A Search (fusetrain.v1.Search) rides in its job's spec. Both the admission and the worker sample
its candidates from `search.seed` with NumPy's PCG64, so the worker after a restart trains
exactly the candidates the admission checked.
"""

from __future__ import annotations

import math

import numpy as np
from google.protobuf import json_format

from fusetrain.v1 import job_pb2

from .errors import InvalidArgument, ResourceExhausted
from .grids import apply_override, check_finite

KINDS = ("random", "halving", "asha")
DISTRIBUTIONS = ("uniform", "log_uniform", "int", "choice")
METRICS = ("val_loss", "val_accuracy")
DEFAULT_ETA = 3.0
# Fields a search may not sample: the search owns the epochs, the validation rows are the base
# spec's for every candidate, and the rest are not hyper-parameters.
FIXED = ("training.epochs", "training.validation_fraction", "training.seed", "training.early_stopping",
         "training.earlyStopping", "training.validationFraction", "model.normalization", "data", "search", "name", "labels",
         "priority")


def fill_defaults(spec: job_pb2.JobSpec) -> None:
    """Write the defaults into spec.search, so that the stored spec says what will run."""
    s = spec.search
    s.kind = s.kind or "halving"
    s.metric = s.metric or "val_loss"
    if not s.max_epochs:
        s.max_epochs = spec.training.epochs if spec.training.HasField("epochs") else 100
    if s.kind == "random":
        s.min_epochs = s.min_epochs or s.max_epochs
        return
    if not s.HasField("eta"):
        s.eta = DEFAULT_ETA
    if not s.min_epochs and s.eta > 1:
        s.min_epochs = max(1, int(round(s.max_epochs / s.eta ** 3)))


def check(spec: job_pb2.JobSpec, max_candidates: int, max_epochs: int) -> None:
    """Everything about spec.search that needs no engine; InvalidArgument names the field."""
    s = spec.search
    if s.kind not in KINDS:
        raise InvalidArgument("search.kind", f"must be one of {', '.join(KINDS)}, got {s.kind!r}")
    if s.metric not in METRICS:
        raise InvalidArgument("search.metric", f"must be one of {', '.join(METRICS)}, got {s.metric!r}")
    if s.candidates < 1:
        raise InvalidArgument("search.candidates", f"must be at least 1, got {s.candidates}")
    if s.candidates > max_candidates:
        raise ResourceExhausted("search.candidates", f"{s.candidates} is over the limit of {max_candidates} "
                                                     f"(max_batch_jobs)")
    if not 1 <= s.max_epochs <= max_epochs:
        raise InvalidArgument("search.max_epochs", f"must be in [1, {max_epochs}], got {s.max_epochs}")
    if s.kind != "random":
        if not s.eta > 1 or not math.isfinite(s.eta):
            raise InvalidArgument("search.eta", f"must be a finite number above 1, got {s.eta}")
        if not 1 <= s.min_epochs <= s.max_epochs:
            raise InvalidArgument("search.min_epochs", f"must be in [1, max_epochs = {s.max_epochs}], "
                                                       f"got {s.min_epochs}")
    t, d = spec.training, spec.data
    if not (t.validation_fraction > 0 or d.HasField("validation") or d.HasField("cross_validation")):
        raise InvalidArgument("search", "ranks candidates on validation rows: give training.validation_fraction, "
                                        "data.validation or data.cross_validation")
    if t.HasField("early_stopping"):
        raise InvalidArgument("training.early_stopping", "a search decides how long each candidate trains: "
                                                         "remove early stopping")
    if spec.optimizer.schedule.kind == "cosine":
        raise InvalidArgument("optimizer.schedule.kind", "cosine depends on the total epochs, which a search "
                                                         "decides per candidate: choose another schedule")
    seen = set()
    for i, p in enumerate(s.params):
        _check_param(p, f"search.params[{i}]")
        if p.field in seen:
            raise InvalidArgument(f"search.params[{i}].field", f"{p.field!r} is sampled twice")
        seen.add(p.field)


def _check_param(p: job_pb2.SearchParam, where: str) -> None:
    if not p.field:
        raise InvalidArgument(f"{where}.field", "is required (a JobSpec field path, e.g. optimizer.learning_rate)")
    if any(p.field == f or p.field.startswith(f + ".") or p.field.startswith(f + "[") for f in FIXED):
        raise InvalidArgument(f"{where}.field", f"{p.field!r} is fixed by the search (the epochs, the "
                                                f"validation rows and the data are the same for every candidate)")
    if p.distribution not in DISTRIBUTIONS:
        raise InvalidArgument(f"{where}.distribution", f"must be one of {', '.join(DISTRIBUTIONS)}, "
                                                       f"got {p.distribution!r}")
    if p.distribution == "choice":
        if not p.choices:
            raise InvalidArgument(f"{where}.choices", "needs at least one value")
        for j, v in enumerate(p.choices):
            check_finite(v, f"{where}.choices[{j}]")
        return
    if not (math.isfinite(p.low) and math.isfinite(p.high) and p.low <= p.high):
        raise InvalidArgument(f"{where}.high", f"needs finite low <= high, got low {p.low} and high {p.high}")
    if p.distribution == "log_uniform" and p.low <= 0:
        raise InvalidArgument(f"{where}.low", f"log_uniform needs low > 0, got {p.low}")
    if p.distribution == "int" and (p.low != int(p.low) or p.high != int(p.high)):
        raise InvalidArgument(f"{where}.low", f"int needs whole bounds, got {p.low} and {p.high}")


def _draw(p: job_pb2.SearchParam, rng: np.random.Generator):
    if p.distribution == "uniform":
        return float(rng.uniform(p.low, p.high))
    if p.distribution == "log_uniform":
        return float(math.exp(rng.uniform(math.log(p.low), math.log(p.high))))
    if p.distribution == "int":
        return int(rng.integers(int(p.low), int(p.high) + 1))
    return json_format.MessageToDict(p.choices[int(rng.integers(len(p.choices)))])


def sample(search: job_pb2.Search) -> list[dict]:
    """The candidates' values, {field: value} each, in sampling order (field after field)."""
    rng = np.random.default_rng(search.seed)
    return [{p.field: _draw(p, rng) for p in search.params} for _ in range(search.candidates)]


def candidate_spec(spec: job_pb2.JobSpec, values: dict, epochs: int = 0, where: str = "search") -> job_pb2.JobSpec:
    """The base spec without its search, with `values` set (and training.epochs, when given)."""
    out = job_pb2.JobSpec()
    out.CopyFrom(spec)
    out.ClearField("search")
    for j, (field, value) in enumerate(values.items()):   # in the order of search.params
        apply_override(out, field, value, f"{where}.params[{j}]")
    if epochs:
        out.training.epochs = epochs
    return out
