"""fusetrain's engine, given the same initial weights through explicit LayerSpec values."""

from __future__ import annotations

import time

import numpy as np

from compare_shapes import Shape
from peers import ADAM, INNER, MOMENTUM

LIBRARY = "fusetrain.engine"
OPTIMIZERS = ("sgd", "momentum", "adam")


def prepare(threads: int) -> None:
    pass


def version() -> str:
    from importlib.metadata import version as dist_version
    return dist_version("fusetrain")


def model_spec(shape: Shape, layers: list | None, seed: int = 0):
    """The engine's ModelSpec for `shape`; explicit initial weights when `layers` is given."""
    import fusetrain.engine as engine

    specs = []
    for k, units in enumerate(shape.sizes[1:]):
        last = k == len(shape.sizes) - 2
        w, b = layers[k] if layers is not None else (None, None)
        specs.append(engine.LayerSpec(units, shape.output if last else shape.hidden,
                                      weights=w, bias=b))
    return engine.ModelSpec(shape.sizes[0], specs, loss=shape.loss, seed=seed, dtype="float32")


def optimizer_spec(shape: Shape, kind: str):
    import fusetrain.engine as engine

    if kind == "sgd":
        return engine.OptimizerSpec("sgd", learning_rate=shape.learning_rate)
    if kind == "momentum":
        return engine.OptimizerSpec("momentum", learning_rate=shape.learning_rate / 5,
                                    momentum=MOMENTUM)
    if kind == "adam":
        return engine.OptimizerSpec("adam", learning_rate=ADAM["learning_rate"],
                                    beta1=ADAM["beta1"], beta2=ADAM["beta2"],
                                    epsilon=ADAM["epsilon"])
    raise ValueError(kind)


def config(shape: Shape, threads: int, epochs: int | None = None, seed: int = 1):
    import fusetrain.engine as engine

    return engine.TrainConfig(epochs=epochs or shape.epochs,
                              batch_size=0 if shape.full_batch else shape.batch,
                              shuffle=not shape.full_batch, seed=seed, threads=threads)


def train(shape: Shape, data: dict, layers: list, threads: int, optimizer: str = "sgd") -> dict:
    import fusetrain.engine as engine

    model = model_spec(shape, layers)
    opt = optimizer_spec(shape, optimizer)
    x, y = data["x"], data["y"]

    # First call: compiles (or loads from Numba's cache). A short run of the same model.
    warm = min(x.shape[0], 4 * shape.batch)
    first = engine.train(model, opt, config(shape, threads, epochs=1), x[:warm], y[:warm])

    result, wall = None, 0.0
    for _ in range(INNER):
        t0 = time.perf_counter()
        run = engine.train(model, opt, config(shape, threads), x, y)
        took = time.perf_counter() - t0
        if result is None or run.train_seconds < result.train_seconds:
            result, wall = run, took
    return {"seconds": result.train_seconds, "wall_seconds": wall,
            "compile_seconds": first.compile_seconds,
            "second_call_compile_seconds": result.compile_seconds,
            "samples": shape.rows * result.epochs_run, "epochs_run": result.epochs_run,
            "stop_reason": result.stop_reason, "weights": _weights(result), "threads": threads}


def _weights(result) -> list:
    return [(np.asarray(w, np.float32), np.asarray(b, np.float32)) for w, b in result.weights]


def train_seeds(shape: Shape, data: dict, layers: list, threads: int, seeds: list) -> list:
    """One untimed run per shuffle seed from the same initial weights; each run's weights."""
    import fusetrain.engine as engine

    model, opt = model_spec(shape, layers), optimizer_spec(shape, "sgd")
    return [_weights(engine.train(model, opt, config(shape, threads, seed=s), data["x"], data["y"]))
            for s in seeds]
