"""Hyper-parameter search on the engine: successive halving inside compiled batches, and ASHA.

Pure compute over candidates that are already specs (the service samples them). Every candidate
trains on the same training rows and is ranked on the same validation rows; training never looks
at the validation rows, so a candidate's weights after E epochs are those of `train` with
`epochs = E` on the training rows alone, bit for bit.

    rungs(min, max, eta)    the epochs of each rung: min, min*eta, min*eta^2, ..., max
    successive_halving      every rung: each architecture's survivors train together in one
                            `train_many` call, resuming from their exact TrainState (the data
                            prepared once, nothing recompiled); the best 1/eta go on
    asha                    one candidate at a time with `train`; a candidate goes up a rung as
                            soon as it ranks in the best 1/eta of the rung so far (the
                            candidates may differ in shape)
A "random" search is successive halving with one rung at max epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Sequence

from .buffers import accuracy_rule
from .errors import InvalidSpec
from .layout import Layout
from .many import train_many
from .metrics import Scorer
from .result import DIVERGED, TrainResult
from .spec import Limits, ModelSpec, OptimizerSpec, TrainConfig
from .trainer import _evaluate_outputs, train

METRICS = ("val_loss", "val_accuracy")   # the first is minimised, the second maximised


@dataclass
class Candidate:
    """One point of the search space, as the engine trains it (config.epochs is set per rung)."""

    model: ModelSpec
    optimizer: OptimizerSpec
    config: TrainConfig


@dataclass
class Rung:
    epochs: int           # epochs trained in all when the metric was taken
    value: float          # the metric on the validation rows (NaN: diverged)


@dataclass
class SearchOutcome:
    """Each candidate's rungs (in candidate order), the winner and its result, the compute."""

    rungs: list                       # [[Rung, ...] per candidate]
    winner: int
    result: TrainResult               # the winner's, with val_loss and val_accuracy in `final`
    model_epochs: int                 # epochs summed over candidates
    diverged: list = field(default_factory=list)   # bool per candidate
    states: list = field(default_factory=list)     # each candidate's TrainState after its last rung
    compile_seconds: float = 0.0
    train_seconds: float = 0.0

    def epochs(self, i: int) -> int:
        return self.rungs[i][-1].epochs if self.rungs[i] else 0

    def order(self, metric: str) -> list[int]:
        """Candidates best first: the highest rung reached, then the metric, then the index."""
        return sorted(range(len(self.rungs)), key=lambda i: (-len(self.rungs[i]),
                                                             _score(self.rungs[i][-1].value, metric), i))


def rungs(min_epochs: int, max_epochs: int, eta: float) -> list[int]:
    """min, round(min*eta), round(min*eta^2), ... below max, then max."""
    if eta <= 1:
        raise InvalidSpec("search.eta", f"must be greater than 1, got {eta}")
    if not 1 <= min_epochs <= max_epochs:
        raise InvalidSpec("search.min_epochs", f"must be in [1, max_epochs = {max_epochs}], got {min_epochs}")
    out, r = [], float(min_epochs)
    while round(r) < max_epochs:
        if not out or round(r) > out[-1]:
            out.append(int(round(r)))
        r *= eta
    return out + [max_epochs]


def _score(value: float, metric: str) -> float:
    """Lower is better; NaN (diverged) is worst."""
    if math.isnan(value):
        return math.inf
    return value if metric == "val_loss" else -value


def _measure(model: ModelSpec, result: TrainResult, x, y, x_val, y_val) -> float:
    """Fill result.final's validation metrics; return them as (loss, accuracy)."""
    layout = Layout.of(model)
    theta = result.state.params
    loss, acc, _ = _evaluate_outputs(model, layout, theta, x_val, y_val, accuracy_rule(model.loss, y))
    result.final["val_loss"], result.final["val_accuracy"] = loss, acc
    return loss, acc


def _value(model, result: TrainResult, x, y, x_val, y_val, metric: str) -> float:
    if result.stop_reason == DIVERGED:
        return math.nan
    loss, acc = _measure(model, result, x, y, x_val, y_val)
    return loss if metric == "val_loss" else acc


def _shape_key(c: Candidate, i: int):
    """Candidates with equal keys share one compiled batch (the same network but for its seed)."""
    if any(layer.weights is not None or layer.bias is not None for layer in c.model.layers):
        return ("own", i)
    return repr(replace(c.model, seed=0))


def _check(candidates: Sequence[Candidate], metric: str) -> None:
    if not candidates:
        raise InvalidSpec("search.candidates", "needs at least one candidate")
    if metric not in METRICS:
        raise InvalidSpec("search.metric", f"must be one of {', '.join(METRICS)}, got {metric!r}")
    for c in candidates:
        if c.config.validation_fraction > 0 or c.config.early_stopping is not None:
            raise InvalidSpec("training", "a search's candidates take separate validation rows and no early "
                                          "stopping (the search decides how long each trains)")
        if c.optimizer.schedule.kind == "cosine":
            raise InvalidSpec("optimizer.schedule.kind", "cosine depends on the total epochs, which a "
                                                         "search decides per candidate: choose another schedule")


StopFn = Optional[Callable[[], bool]]


def successive_halving(candidates: Sequence[Candidate], x, y, x_val, y_val, *, eta: float = 3.0,
                       min_epochs: int, max_epochs: int, metric: str = "val_loss", threads: int = 1,
                       limits: Optional[Limits] = None, stop: StopFn = None) -> Optional[SearchOutcome]:
    """Synchronous successive halving; None when `stop()` turned true between two batches."""
    _check(candidates, metric)
    n = len(candidates)
    history = [[] for _ in range(n)]
    states = [None] * n
    results: list = [None] * n
    alive = list(range(n))
    done = model_epochs = 0
    compile_s = train_s = 0.0
    plan = rungs(min_epochs, max_epochs, eta)
    for level, epochs in enumerate(plan):
        groups: dict = {}
        for i in alive:
            groups.setdefault(_shape_key(candidates[i], i), []).append(i)
        for members in groups.values():
            if stop is not None and stop():
                return None
            first = candidates[members[0]]
            out = train_many(first.model, [candidates[i].optimizer for i in members],
                             [replace(candidates[i].config, epochs=epochs) for i in members], x, y,
                             seeds=[candidates[i].model.seed for i in members], threads=threads,
                             limits=limits, states=[states[i] for i in members] if done else None,
                             train_metrics=False)
            compile_s = max(compile_s, out[0].compile_seconds)
            for i, res in zip(members, out):
                train_s += res.train_seconds
                model_epochs += res.epochs_run - done
                states[i], results[i] = res.state, res
                history[i].append(Rung(res.epochs_run, _value(candidates[i].model, res, x, y, x_val, y_val,
                                                              metric)))
        done = epochs
        live = [i for i in alive if results[i].stop_reason != DIVERGED]
        ranked = sorted(live, key=lambda i: (_score(history[i][-1].value, metric), i))
        if level + 1 < len(plan):
            alive = ranked[:max(1, int(len(alive) // eta))] if ranked else []
            if not alive:
                break
    return _outcome(candidates, history, results, metric, model_epochs, compile_s, train_s, x, y)


def asha(candidates: Sequence[Candidate], x, y, x_val, y_val, *, eta: float = 3.0, min_epochs: int,
         max_epochs: int, metric: str = "val_loss", threads: int = 1, limits: Optional[Limits] = None,
         stop: StopFn = None) -> Optional[SearchOutcome]:
    """Asynchronous successive halving, one training call at a time (deterministic: candidates
    start in index order, and a promotion is always tried before a new start)."""
    _check(candidates, metric)
    n = len(candidates)
    plan = rungs(min_epochs, max_epochs, eta)
    history = [[] for _ in range(n)]
    results: list = [None] * n
    promoted = [set() for _ in plan]
    model_epochs = 0
    compile_s = train_s = 0.0
    started = 0
    while True:
        job = _promotable(history, promoted, plan, eta, metric)
        if job is None and started < n:
            job, started = (started, 0), started + 1
        if job is None:
            break
        if stop is not None and stop():
            return None
        i, level = job
        c = candidates[i]
        before = results[i].epochs_run if results[i] is not None else 0
        res = train(c.model, c.optimizer, replace(c.config, epochs=plan[level], threads=threads), x, y,
                    state=results[i].state if results[i] is not None else None, limits=limits)
        compile_s, train_s = compile_s + res.compile_seconds, train_s + res.train_seconds
        model_epochs += res.epochs_run - before
        results[i] = res
        history[i].append(Rung(res.epochs_run, _value(c.model, res, x, y, x_val, y_val, metric)))
    return _outcome(candidates, history, results, metric, model_epochs, compile_s, train_s, x, y)


def _promotable(history, promoted, plan, eta, metric):
    """(candidate, next rung) of the best candidate that may go up a rung now, top rungs first."""
    for level in range(len(plan) - 2, -1, -1):
        at = [i for i, h in enumerate(history) if len(h) > level and not math.isnan(h[level].value)]
        ranked = sorted(at, key=lambda i: (_score(history[i][level].value, metric), i))
        for i in ranked[:int(len(at) // eta)]:
            if i not in promoted[level] and len(history[i]) == level + 1:
                promoted[level].add(i)
                return i, level + 1
    return None


def _outcome(candidates, history, results, metric, model_epochs, compile_s, train_s, x, y) -> SearchOutcome:
    outcome = SearchOutcome(rungs=history, winner=0, result=None, model_epochs=model_epochs,
                            diverged=[r is not None and r.stop_reason == DIVERGED for r in results],
                            states=[r.state if r is not None else None for r in results],
                            compile_seconds=compile_s, train_seconds=train_s)
    outcome.winner = outcome.order(metric)[0]
    res = outcome.result = results[outcome.winner]
    if math.isnan(res.final["train_loss"]):     # train_many was told to skip it: the winner's only
        c = candidates[outcome.winner]
        rule = accuracy_rule(c.model.loss, y)
        res.final["train_loss"], res.final["train_accuracy"], out = _evaluate_outputs(
            c.model, Layout.of(c.model), res.state.params, x, y, rule)
        res.final.update(Scorer(y, rule).final(out, "train_"))
    return outcome
