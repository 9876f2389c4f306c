"""fusetrain-only rows of the comparison: many small models at once, and compile seconds.

Many models: K seeds-sized models (the "small" shape: 7-5-3, batch 16, 500 epochs), each
with its own initial-weight seed and shuffling seed, trained by one `engine.train_many` call
against the same K models trained one after another with `engine.train`.

Compile: one fresh process per shape trains it for one epoch twice, first against an empty
Numba cache directory (cold), then again in a new process against that same directory
(cached). The engine reports its compile seconds itself; the wall time of the first call
minus that of the second is printed beside it as a cross-check.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from compare_shapes import Shape, load


def measure(shape: Shape, path: str, models: int, threads: int) -> dict:
    import fusetrain.engine as engine
    from peers.fusetrain_peer import config, model_spec, optimizer_spec

    data, _ = load(Path(path))
    x, y = data["x"], data["y"]
    model = model_spec(shape, None)
    opt = optimizer_spec(shape, "sgd")
    seeds = list(range(models))
    configs = [config(shape, threads, seed=s) for s in seeds]

    # Warm up both paths (compilation is excluded from both timings).
    engine.train_many(model, [opt], [config(shape, threads, epochs=1)], x, y, seeds=[0, 1],
                      threads=threads)
    engine.train(model, opt, config(shape, threads, epochs=1), x, y)

    t0 = time.perf_counter()
    batch = engine.train_many(model, [opt], configs, x, y, seeds=seeds, threads=threads)
    batch_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    alone = [engine.train(replace(model, seed=s), opt, c, x, y) for s, c in zip(seeds, configs)]
    alone_seconds = time.perf_counter() - t0

    identical = all(
        all(np.array_equal(wa, wb) and np.array_equal(ba, bb)
            for (wa, ba), (wb, bb) in zip(a.weights, b.weights))
        for a, b in zip(batch, alone))
    samples = shape.rows * shape.epochs * models
    return {
        "models": models, "arch": shape.arch(), "epochs": shape.epochs, "batch": shape.batch,
        "threads": threads, "batch_seconds": batch_seconds, "alone_seconds": alone_seconds,
        "batch_samples_per_s": samples / batch_seconds, "alone_samples_per_s": samples / alone_seconds,
        "speedup": alone_seconds / batch_seconds, "identical": bool(identical),
        "mean_accuracy": float(np.mean([r.final["train_accuracy"] for r in batch])),
    }


def probe(shape: Shape, path: str, threads: int) -> dict:
    """In a fresh process: import the engine, train one epoch twice, time everything."""
    t0 = time.perf_counter()
    import fusetrain.engine as engine
    from peers.fusetrain_peer import config, model_spec, optimizer_spec
    import_seconds = time.perf_counter() - t0

    data, layers = load(Path(path))
    model, opt = model_spec(shape, layers), optimizer_spec(shape, "sgd")
    cfg = config(shape, threads, epochs=1)
    walls, reported = [], []
    for _ in range(2):
        t0 = time.perf_counter()
        result = engine.train(model, opt, cfg, data["x"], data["y"])
        walls.append(time.perf_counter() - t0)
        reported.append(result.compile_seconds)
    return {"import_seconds": import_seconds, "compile_seconds": reported[0],
            "first_call_seconds": walls[0], "second_call_seconds": walls[1],
            "wall_difference": walls[0] - walls[1]}
