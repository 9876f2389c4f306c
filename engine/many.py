"""Many small models at once: K same-shape models on the same data, one thread per core.

For sweeps, seed ensembles, a search's rungs and the service's packed jobs. A pool of threads
trains whole models, each one call of its compiled epoch loop (which releases the GIL) over the
epochs asked for, with its GEMMs run slab after slab and BLAS at one thread, so a batch of small
jobs keeps every core busy with no per-epoch overhead. Each model runs the very code `train` runs
(the generated loop of a tiny network, else the generic or masked loop), on its own buffers, so
its result is bit-identical to training it alone; and nothing extra is compiled for batches.

`ManyRun` trains in steps: `advance(until)` takes chosen models to an epoch, `result(i)` is model
i's TrainResult where it stands (a packed job's stop or cancel between steps); `train_many` is one
advance to the end and every result.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Optional, Sequence

import numpy as np

from . import config as cfg, tinygen
from .buffers import JobBuffers, MaskedRun, accuracy_denominator, accuracy_rule, is_masked
from .errors import InvalidSpec
from .init import initial_weights
from .kernels.epochs import epoch_loop, loop_key
from .kernels.columns import I_SPREAD
from .kernels.losses import NO_ACCURACY
from .layout import Layout
from .metrics import Scorer
from .result import COMPLETED, DIVERGED, STOPPED, History, TrainResult, TrainState
from .schedules import learning_rates
from .spec import (Limits, ModelSpec, OptimizerSpec, TrainConfig, validate_config, validate_model,
                   validate_optimizer)
from .trainer import _evaluate_outputs, epoch_rows, prepare
from .warm import PREDICT, ensure_compiled


def train_many(model: ModelSpec, optimizers: Sequence[OptimizerSpec], configs: Sequence[TrainConfig],
               x, y, *, seeds: Optional[Sequence[int]] = None, threads: Optional[int] = None,
               limits: Optional[Limits] = None, sample_weight=None,
               states: Optional[Sequence[TrainState]] = None, train_metrics: bool = True) -> list[TrainResult]:
    """Train K models; model k uses optimizers[k], configs[k] and initial-weight seed seeds[k].

    A list of length 1 is broadcast to K. All configs need the same number of epochs and class
    weights, and no validation, early stopping or plateau schedule (train those with `train`).
    `threads` defaults to the largest thread count among the configs. Dropout and row weights
    (sample_weight, class weights) run the masked loop, each model on its own masks. With
    `states` (one per model, all after the same epoch, e.g. the `state` of an earlier call's
    results), model k resumes from states[k] and trains up to configs[k].epochs, bit-identically
    to one uninterrupted run. train_metrics=False leaves the final training loss, accuracy and
    scores out (NaN; no pass over the rows per model after training).
    """
    run = ManyRun(model, optimizers, configs, x, y, seeds=seeds, threads=threads, limits=limits,
                  sample_weight=sample_weight, states=states)
    run.advance()
    return [run.result(i, train_metrics) for i in range(run.k)]


class ManyRun:
    """K models of one architecture on one data set, trained in steps (see the module docstring).
    The arguments are train_many's; `epochs` is the configs' common epoch count."""

    def __init__(self, model: ModelSpec, optimizers: Sequence[OptimizerSpec], configs: Sequence[TrainConfig],
                 x, y, *, seeds: Optional[Sequence[int]] = None, threads: Optional[int] = None,
                 limits: Optional[Limits] = None, sample_weight=None, states: Optional[Sequence[TrainState]] = None):
        limits = limits or Limits()
        k = max(len(optimizers), len(configs), len(seeds) if seeds is not None else 1)
        self.k, self.model = k, model
        self.optimizers = optimizers = _broadcast(optimizers, k, "optimizers")
        configs = _broadcast(configs, k, "configs")
        seeds = _broadcast(seeds if seeds is not None else [model.seed], k, "seeds")
        self.epochs = epochs = configs[0].epochs
        states = list(states) if states is not None else [None] * k
        if len(states) != k:
            raise InvalidSpec("states", f"expected {k} entries, got {len(states)}")
        start = states[0].epoch if states[0] is not None else 0
        if any((s.epoch if s is not None else 0) != start for s in states) or not 0 <= start < epochs:
            raise InvalidSpec("states", f"every state must be after the same epoch, before {epochs}")
        xs = ys = None
        for i, (opt, conf) in enumerate(zip(optimizers, configs)):
            if conf.epochs != epochs:
                raise InvalidSpec(f"configs[{i}].epochs", f"all models of a batch train the same number of "
                                                          f"epochs ({epochs}), got {conf.epochs}")
            if conf.validation_fraction > 0 or conf.early_stopping is not None:
                raise InvalidSpec(f"configs[{i}]", "validation and early stopping need `train`, not `train_many`")
            if opt.schedule.kind == "plateau":
                raise InvalidSpec(f"optimizers[{i}].schedule.kind", "the plateau schedule needs `train`, not "
                                                                    "`train_many`")
            if not _same(conf.class_weight, configs[0].class_weight):
                raise InvalidSpec(f"configs[{i}].class_weight", "all models of a batch need the same class weights")
            if xs is None:  # the data once; the settings of every model
                xs, ys, _, _, w, _ = prepare(replace(model, seed=int(seeds[i])), opt, conf, x, y, None, None,
                                             limits, sample_weight)
            else:
                validate_model(replace(model, seed=int(seeds[i])), limits)
                validate_config(conf, limits)
                validate_optimizer(opt, conf.epochs)
        self.threads = int(threads) if threads is not None else max(c.threads for c in configs)
        if not 1 <= self.threads <= limits.max_threads:
            raise InvalidSpec("threads", f"must be in [1, {limits.max_threads}], got {self.threads}")

        self.layout = layout = Layout.of(model)
        dtype = np.dtype(model.dtype)
        n_rows = xs.shape[0]
        self.xs, self.ys, self.w = xs, ys, w
        self.rule = accuracy_rule(model.loss, ys)
        denom = accuracy_denominator(self.rule, n_rows, model.outputs)
        if w is not None:
            denom = float(w.sum()) * (denom // n_rows)
        self.denom = denom if self.rule != NO_ACCURACY else 0
        self.jobs = jobs = [JobBuffers(model, opt, conf, layout,
                                       layout.pack(initial_weights(replace(model, seed=int(seed))), dtype),
                                       n_rows, self.rule, state)
                            for opt, conf, seed, state in zip(optimizers, configs, seeds, states)]
        # Stack per-model buffers; the largest batch and optimizer state size fit every model.
        batch = max(j.batch for j in jobs)
        slots = max(j.opt.shape[0] for j in jobs)
        act = layout.act_size(batch)
        stack = lambda name: np.stack([getattr(j, name) for j in jobs])  # noqa: E731
        self.theta, self.grad, self.backup = stack("theta"), stack("grad"), stack("backup")
        self.opt = np.zeros((k, slots, layout.n_params), dtype=dtype)
        for i, j in enumerate(jobs):   # zeros, or the optimizer state resumed from
            self.opt[i, :j.opt.shape[0]] = j.opt
        self.step, self.rng, self.perm, self.hp, self.ints = (stack(n) for n in ("step", "rng", "perm", "hp", "ints"))
        self.ints[:, I_SPREAD] = 0  # the models are the parallelism: each GEMM runs its slabs in order
        for i, j in enumerate(jobs):   # a model's buffers are views of the stacks: its state reads them
            j.theta, j.opt, j.step, j.rng = self.theta[i], self.opt[i, :j.opt.shape[0]], self.step[i], self.rng[i]
        self.xb = np.zeros((k, batch * model.inputs), dtype=dtype)
        self.yb = np.zeros((k, batch * model.outputs), dtype=dtype)
        self.acts = np.zeros((k, act), dtype=dtype)
        self.deltas = np.zeros((k, act), dtype=dtype)
        self.x_flat, self.y_flat, self.a_off = xs.reshape(-1), ys.reshape(-1), layout.act_offsets(batch)
        self.at = np.full(k, start, dtype=np.int64)        # epochs done, per model
        self.diverged = np.zeros(k, dtype=np.bool_)
        self.seconds = np.zeros(k)                         # training seconds, per model
        self.histories = [s.history.copy() if s is not None else History() for s in states]

        masked = [MaskedRun(model, layout, batch, w) for _ in range(k)] if is_masked(model, w) else None
        none = np.zeros(0)
        if masked:
            self.compile_seconds = (ensure_compiled(model.dtype, (PREDICT, layout.small))
                                    + masked[0].compile(*self._args(0, none, none, none)))
            self.loops = masked
        else:
            # The loop `train` would run for each model: the generated loop of a tiny network when
            # there is one for its optimizer, else the generic loop.
            self.compile_seconds, self.loops, chosen = 0.0, [], {}
            for i, j in enumerate(jobs):
                key = loop_key(self.ints[i], self.hp[i])
                if key not in chosen:
                    tiny = tinygen.select(layout, j, dtype, self.x_flat, self.y_flat)
                    if tiny is not None:
                        self.compile_seconds += (ensure_compiled(model.dtype, (PREDICT, True))
                                                 + tinygen.ensure_compiled(tiny, j, self.x_flat, self.y_flat))
                        chosen[key] = tiny.run
                    else:
                        self.compile_seconds += ensure_compiled(model.dtype, key)
                        chosen[key] = epoch_loop(self.ints[i], self.hp[i])
                self.loops.append(chosen[key])

    def _args(self, i: int, lrs, losses, correct) -> tuple:
        return (self.theta[i], self.grad[i], self.backup[i], self.opt[i], self.step[i], self.rng[i], self.x_flat,
                self.y_flat, self.perm[i], self.xb[i], self.yb[i], self.acts[i], self.deltas[i], self.a_off,
                self.layout.meta, self.layout.slopes, self.hp[i], lrs, self.ints[i], losses, correct)

    def live(self) -> list[int]:
        """The models still to train: not diverged, not at the last epoch."""
        return [i for i in range(self.k) if not self.diverged[i] and self.at[i] < self.epochs]

    def advance(self, until: Optional[int] = None, models: Optional[Sequence[int]] = None) -> dict:
        """Train `models` (default: every live one) from where each stands up to epoch `until`
        (default: the last); a model that diverges stops there. The learning rates are those of
        the whole run, so stepping is bit-identical to one call. Returns {model: its new history
        rows (epochs, len(FIELDS))}."""
        until = self.epochs if until is None else int(until)
        if not 0 < until <= self.epochs:
            raise InvalidSpec("until", f"must be in [1, {self.epochs}], got {until}")
        models = [i for i in (self.live() if models is None else models) if self.at[i] < until]
        if not models:
            return {}
        first = {i: int(self.at[i]) for i in models}
        lrs = {i: learning_rates(self.optimizers[i], first[i], until - first[i], self.epochs) for i in models}
        losses = {i: np.zeros(until - first[i]) for i in models}
        correct = {i: np.zeros(until - first[i], dtype=np.float64 if isinstance(self.loops[i], MaskedRun)
                               else np.int64) for i in models}
        done = {}

        def train_range(lo: int, hi: int) -> None:
            for i in models[lo:hi]:
                done[i] = self.loops[i](*self._args(i, lrs[i], losses[i], correct[i]))

        n_threads = min(self.threads, len(models))
        # Each thread trains one contiguous run of models: neighbours' rows of the stacked buffers
        # share cache lines, and two threads writing them at once cost 20% here.
        edges = [len(models) * t // n_threads for t in range(n_threads + 1)]
        t0 = time.perf_counter()
        with cfg.threads(1):
            if n_threads == 1:   # no pool to start: a search calls this once per rung and architecture
                train_range(0, len(models))
            else:
                with ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="train-many") as pool:
                    for _ in pool.map(train_range, edges[:-1], edges[1:]):
                        pass
        share = (time.perf_counter() - t0) / len(models)
        out = {}
        for i in models:
            n_done, diverged = int(done[i][0]), bool(done[i][1])
            secs = share / max(n_done, 1)
            out[i] = epoch_rows(first[i], losses[i][:n_done], correct[i][:n_done], self.denom, lrs[i][:n_done],
                                secs, self.xs.shape[0] / secs if secs > 0 else math.inf)
            self.histories[i].extend_rows(out[i])
            self.at[i] += n_done
            self.diverged[i] = diverged
            self.seconds[i] += share
        return out

    def state(self, i: int) -> TrainState:
        """Model i's resumable state where it stands (a checkpoint; `train` and ManyRun resume it)."""
        return self.jobs[i].state(int(self.at[i]), self.theta[i], math.inf, 0, self.histories[i])

    def result(self, i: int, train_metrics: bool = True) -> TrainResult:
        """Model i where it stands: COMPLETED after the last epoch, DIVERGED, else STOPPED (a
        caller's stop between steps). train_metrics=False leaves the final training loss,
        accuracy and scores NaN (no pass over the rows)."""
        n_done, theta = int(self.at[i]), self.theta[i]
        if train_metrics:
            train_loss, train_acc, out = _evaluate_outputs(self.model, self.layout, theta, self.xs, self.ys,
                                                           self.rule, self.w)
            scores = Scorer(self.ys, self.rule, self.w).final(out, "train_")
        else:
            train_loss, train_acc, scores = math.nan, math.nan, {}
        final = {"train_loss": train_loss, "train_accuracy": train_acc, "val_loss": math.nan,
                 "val_accuracy": math.nan, **scores}
        if self.diverged[i]:
            reason = DIVERGED
            message = (f"the training loss or the weights became non-finite in epoch {n_done + 1}; weights are "
                       f"those after epoch {n_done}")
        elif n_done < self.epochs:
            reason, message = STOPPED, f"stopped by request after epoch {n_done}"
        else:
            reason, message = COMPLETED, ""
        history = self.histories[i]
        return TrainResult(weights=self.layout.unpack(theta), history=history.copy(), final=final,
                           stop_reason=reason, epochs_run=n_done, compile_seconds=self.compile_seconds,
                           train_seconds=float(self.seconds[i]),
                           state=self.state(i),
                           message=message, blas=cfg.blas_kernel())


def _same(a, b) -> bool:
    return (a is None) == (b is None) and (a is None or isinstance(a, str) == isinstance(b, str) and
                                          np.array_equal(np.asarray(a), np.asarray(b)))


def _broadcast(values, k: int, name: str) -> list:
    values = list(values)
    if len(values) == 1:
        return values * k
    if len(values) != k:
        raise InvalidSpec(name, f"expected 1 or {k} entries, got {len(values)}")
    return values
