"""A sweep file's `search:` section as a fusetrain.v1.Search, and a search result as table rows.

    search:
      kind: halving                  # random, halving (default) or asha
      candidates: 27                 # the budget in candidates
      max_epochs: 81                 # the budget in epochs per candidate (default: training.epochs)
      min_epochs: 3                  # halving, asha: the first rung (default max_epochs / eta^3)
      eta: 3                         # halving, asha: keep the best 1/eta at each rung
      seed: 0                        # of the sampling
      metric: val_accuracy           # or val_loss (default)
      params:                        # field path: {distribution: [low, high]} or {choice: [...]}
        optimizer.learning_rate: {log_uniform: [0.001, 0.5]}
        optimizer.momentum: {uniform: [0.5, 0.99]}
        model.layers[0].units: {int: [4, 64]}
        model.layers[0].activation: {choice: [relu, tanh]}
"""

from __future__ import annotations

import math

from google.protobuf import json_format

from fusetrain.v1 import job_pb2

from .errors import SpecError

KEYS = ("kind", "candidates", "max_epochs", "min_epochs", "eta", "seed", "metric", "params")
DISTRIBUTIONS = ("uniform", "log_uniform", "int", "choice")


def parse_search(doc, where: str) -> job_pb2.Search:
    """The Search of a sweep file's `search` mapping; SpecError names the key."""
    if not isinstance(doc, dict):
        raise SpecError(f"{where}: search must be a mapping with {', '.join(KEYS)}")
    unknown = set(doc) - set(KEYS)
    if unknown:
        raise SpecError(f"{where}: unknown search keys {sorted(unknown)}; expected {', '.join(KEYS)}")
    s = job_pb2.Search(kind=str(doc.get("kind", "")), metric=str(doc.get("metric", "")))
    try:
        for key in ("candidates", "max_epochs", "min_epochs", "seed"):
            if key in doc:
                setattr(s, key, int(doc[key]))
        if "eta" in doc:
            s.eta = float(doc["eta"])
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{where}: search: {exc}") from None
    params = doc.get("params") or {}
    if not isinstance(params, dict):
        raise SpecError(f"{where}: search.params must map field paths to distributions")
    for name, dist in params.items():
        s.params.append(_param(name, dist, f"{where}: search.params.{name}"))
    return s


def _param(name: str, dist, where: str) -> job_pb2.SearchParam:
    if not isinstance(dist, dict) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
        raise SpecError(f"{where}: give one of {', '.join(DISTRIBUTIONS)}, e.g. {{log_uniform: [0.001, 0.1]}}")
    kind, args = next(iter(dist.items()))
    p = job_pb2.SearchParam(field=str(name), distribution=kind)
    if not isinstance(args, list) or not args:
        raise SpecError(f"{where}: {kind} needs a list ({'the values' if kind == 'choice' else '[low, high]'})")
    if kind == "choice":
        for v in args:
            json_format.ParseDict(v, p.choices.add())
        return p
    if len(args) != 2 or not all(isinstance(v, (int, float)) for v in args):
        raise SpecError(f"{where}: {kind} needs [low, high], got {args!r}")
    p.low, p.high = float(args[0]), float(args[1])
    return p


def candidate_rows(table) -> list[dict]:
    """A SearchResult's candidates (best first) as plain dicts."""
    return [{"index": c.index, "params": json_format.MessageToDict(c.params), "epochs": c.epochs,
             "value": None if math.isnan(c.value) else c.value, "diverged": c.diverged,
             "rungs": [{"epochs": r.epochs, "value": None if math.isnan(r.value) else r.value} for r in c.rungs]}
            for c in table.candidates]
