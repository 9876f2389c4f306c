"""Many small models at once: K same-shape models on the same data, one thread per core.

For sweeps and seed ensembles. A pool of threads trains whole models, each one call of the
compiled epoch loop (`epochs.epoch_loop`, which releases the GIL) over all its epochs, with its GEMMs
run slab after slab and BLAS at one thread, so a batch of small jobs keeps every core busy with
no per-epoch overhead. Each model runs the very code `train` runs, on its own buffers, so its
result is bit-identical to training it alone; and nothing extra is compiled for batches.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Optional, Sequence

import numpy as np

from . import config as cfg
from .buffers import JobBuffers, MaskedRun, accuracy_denominator, accuracy_rule, is_masked
from .errors import InvalidSpec
from .init import initial_weights
from .kernels.epochs import epoch_loop, loop_key
from .kernels.columns import I_SPREAD
from .kernels.losses import NO_ACCURACY
from .layout import Layout
from .metrics import Scorer
from .result import COMPLETED, DIVERGED, History, TrainResult, TrainState
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
    limits = limits or Limits()
    k = max(len(optimizers), len(configs), len(seeds) if seeds is not None else 1)
    optimizers = _broadcast(optimizers, k, "optimizers")
    configs = _broadcast(configs, k, "configs")
    seeds = _broadcast(seeds if seeds is not None else [model.seed], k, "seeds")
    epochs = configs[0].epochs
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
            raise InvalidSpec(f"optimizers[{i}].schedule.kind", "the plateau schedule needs `train`, not `train_many`")
        if not _same(conf.class_weight, configs[0].class_weight):
            raise InvalidSpec(f"configs[{i}].class_weight", "all models of a batch need the same class weights")
        if xs is None:  # the data once; the settings of every model
            xs, ys, _, _, w, _ = prepare(replace(model, seed=int(seeds[i])), opt, conf, x, y, None, None, limits,
                                         sample_weight)
        else:
            validate_model(replace(model, seed=int(seeds[i])), limits)
            validate_config(conf, limits)
            validate_optimizer(opt, conf.epochs)
    n_threads = int(threads) if threads is not None else max(c.threads for c in configs)
    if not 1 <= n_threads <= limits.max_threads:
        raise InvalidSpec("threads", f"must be in [1, {limits.max_threads}], got {n_threads}")

    layout = Layout.of(model)
    dtype = np.dtype(model.dtype)
    n_rows = xs.shape[0]
    rule = accuracy_rule(model.loss, ys)
    denom = accuracy_denominator(rule, n_rows, model.outputs)
    if w is not None:
        denom = float(w.sum()) * (denom // n_rows)
    jobs = [JobBuffers(model, opt, conf, layout,
                       layout.pack(initial_weights(replace(model, seed=int(seed))), dtype),
                       n_rows, rule, state)
            for opt, conf, seed, state in zip(optimizers, configs, seeds, states)]
    # Stack per-model buffers; the largest batch and optimizer state size fit every model.
    batch = max(j.batch for j in jobs)
    slots = max(j.opt.shape[0] for j in jobs)
    act = layout.act_size(batch)
    stack = lambda name: np.stack([getattr(j, name) for j in jobs])
    theta, grad, backup = stack("theta"), stack("grad"), stack("backup")
    opt = np.zeros((k, slots, layout.n_params), dtype=dtype)
    for i, j in enumerate(jobs):   # zeros, or the optimizer state resumed from
        opt[i, :j.opt.shape[0]] = j.opt
    step, rng, perm, hp, ints = stack("step"), stack("rng"), stack("perm"), stack("hp"), stack("ints")
    ints[:, I_SPREAD] = 0  # the models are the parallelism: each GEMM runs its slabs in order
    xb = np.zeros((k, batch * model.inputs), dtype=dtype)
    yb = np.zeros((k, batch * model.outputs), dtype=dtype)
    acts = np.zeros((k, act), dtype=dtype)
    deltas = np.zeros((k, act), dtype=dtype)
    lrs = np.stack([learning_rates(o, start, epochs - start, epochs) for o in optimizers])
    losses = np.zeros((k, epochs - start))
    masked = [MaskedRun(model, layout, batch, w) for _ in range(k)] if is_masked(model, w) else None
    correct = np.zeros((k, epochs - start), dtype=np.float64 if masked else np.int64)
    done = np.zeros(k, dtype=np.int64)
    diverged = np.zeros(k, dtype=np.bool_)

    x_flat, y_flat, a_off = xs.reshape(-1), ys.reshape(-1), layout.act_offsets(batch)
    args = lambda i: (theta[i], grad[i], backup[i], opt[i], step[i], rng[i], x_flat, y_flat, perm[i], xb[i], yb[i],
                      acts[i], deltas[i], a_off, layout.meta, layout.slopes, hp[i], lrs[i], ints[i], losses[i],
                      correct[i])
    if masked:
        compile_seconds = ensure_compiled(model.dtype, (PREDICT, layout.small)) + masked[0].compile(*args(0))
    else:
        compile_seconds = sum(ensure_compiled(model.dtype, key) for key in {loop_key(i, h) for i, h in zip(ints, hp)})

    def train_range(first: int, stop: int) -> None:
        for i in range(first, stop):
            run_epochs = masked[i] if masked else epoch_loop(ints[i], hp[i])
            done[i], diverged[i] = run_epochs(*args(i))

    # Each thread trains one contiguous run of models: neighbours' rows of the stacked buffers
    # share cache lines, and two threads writing them at once cost 20% here.
    edges = [k * t // n_threads for t in range(n_threads + 1)]
    t0 = time.perf_counter()
    with cfg.threads(1):
        if n_threads == 1:   # no pool to start: a search calls this once per rung and architecture
            train_range(0, k)
        else:
            with ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="train-many") as pool:
                for _ in pool.map(train_range, edges[:-1], edges[1:]):
                    pass
    elapsed = time.perf_counter() - t0

    results = []
    share = elapsed / k
    blas = cfg.blas_kernel()
    scorer = Scorer(ys, rule, w) if train_metrics else None
    for i, job in enumerate(jobs):
        n_done = int(done[i])
        secs = share / max(n_done, 1)
        history = states[i].history.copy() if states[i] is not None else History()
        history.extend_rows(epoch_rows(start, losses[i, :n_done], correct[i, :n_done],
                                       denom if rule != NO_ACCURACY else 0, lrs[i, :n_done], secs,
                                       n_rows / secs if secs > 0 else math.inf))
        n_done += start
        job.theta, job.opt, job.step, job.rng = theta[i], opt[i, :job.opt.shape[0]], step[i], rng[i]
        if scorer is not None:
            train_loss, train_acc, out = _evaluate_outputs(model, layout, theta[i], xs, ys, rule, w)
            scores = scorer.final(out, "train_")
        else:
            train_loss, train_acc, scores = math.nan, math.nan, {}
        final = {"train_loss": train_loss, "train_accuracy": train_acc, "val_loss": math.nan,
                 "val_accuracy": math.nan, **scores}
        reason = DIVERGED if diverged[i] else COMPLETED
        message = (f"the training loss or the weights became non-finite in epoch {n_done + 1}; weights are those "
                   f"after epoch {n_done}") if diverged[i] else ""
        results.append(TrainResult(weights=layout.unpack(theta[i]), history=history, final=final,
                                   stop_reason=reason, epochs_run=n_done, compile_seconds=compile_seconds,
                                   train_seconds=share,
                                   state=job.state(n_done, theta[i], math.inf, 0, history),
                                   message=message, blas=blas))
    return results


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
