"""Run by test_determinism.py in a fresh process with NUMBA_NUM_THREADS=4: train the long-K shapes
at 1 to 4 threads and print one JSON object {case: weights sha256} on stdout.

A fresh process, because Numba fixes its thread pool size when it starts: the test process has
as many threads as cores, and the thread counts here go past the cores of a small machine.
"""

import hashlib
import json
import sys

import numba
import numpy as np

import fusetrain.engine as engine
from fusetrain.engine import LayerSpec, ModelSpec, OptimizerSpec, TrainConfig
from fusetrain.engine import config as cfg
from fusetrain.engine.spec import Limits

# 784 inputs: the first layer's GEMMs sum over K = 784, where two-thread OpenBLAS changed order.
SHAPES = {"784-256-10": (256,), "784-512-256-10": (512, 256), "784-2048-10": (2048,)}
THREADS = (1, 2, 3, 4)
OPTIMIZERS = {"sgd": OptimizerSpec(kind="sgd", learning_rate=0.05),
              "momentum": OptimizerSpec(kind="momentum", learning_rate=0.01, momentum=0.9),
              "adam": OptimizerSpec(kind="adam", learning_rate=0.001)}
ROWS = 612  # batches of 128 and 256 plus a short last one of 100 rows
LIMITS = Limits(max_threads=max(THREADS))


def data(rows=ROWS, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((rows, 784))
    return x, np.eye(10)[rng.integers(0, 10, rows)]


def model(hidden, dtype, seed=7):
    layers = [LayerSpec(u, "relu") for u in hidden] + [LayerSpec(10, "softmax")]
    return ModelSpec(inputs=784, layers=layers, loss="softmax_cross_entropy", initializer="he_uniform",
                     seed=seed, dtype=dtype)


def sha(weights) -> str:
    h = hashlib.sha256()
    for w, b in weights:
        h.update(np.ascontiguousarray(w).tobytes())
        h.update(np.ascontiguousarray(b).tobytes())
    return h.hexdigest()


def main() -> dict:
    out = {"_threads": numba.config.NUMBA_NUM_THREADS, "_layer": cfg.threading_layer()}
    x, y = data()
    for name, hidden in SHAPES.items():
        for dtype in ("float32", "float64"):
            for batch in (128, 256):
                for kind, opt in OPTIMIZERS.items():
                    for t in THREADS:
                        r = engine.train(model(hidden, dtype), opt, TrainConfig(epochs=1, batch_size=batch, seed=3,
                                                                             threads=t), x, y,
                                         limits=LIMITS)
                        out[f"train {name} {dtype} b{batch} {kind} t{t}"] = sha(r.weights)
            # Predict over more rows than one evaluation block (1024), and a batch of models.
            w = engine.train(model(hidden, dtype), OPTIMIZERS["sgd"], TrainConfig(epochs=1, batch_size=128), x, y).weights
            xp = np.random.default_rng(1).random((1500, 784))
            for t in THREADS:
                with cfg.threads(t):
                    out[f"predict {name} {dtype} t{t}"] = hashlib.sha256(
                        engine.predict(model(hidden, dtype), w, xp).tobytes()).hexdigest()
    # Dropout and row weights (the masked loop), both dtypes.
    weights = np.random.default_rng(2).uniform(0.5, 2.0, ROWS)
    for dtype in ("float32", "float64"):
        dropped = model((256,), dtype)
        dropped.layers[0].dropout = 0.3
        for t in THREADS:
            r = engine.train(dropped, OPTIMIZERS["adam"], TrainConfig(epochs=1, batch_size=128, seed=3, threads=t),
                             x, y, sample_weight=weights, limits=LIMITS)
            out[f"masked {dtype} t{t}"] = sha(r.weights)
    m = model((256,), "float32")
    opts = [OPTIMIZERS["sgd"], OPTIMIZERS["adam"]]
    conf = TrainConfig(epochs=1, batch_size=128, seed=3)
    for t in THREADS:
        batch = engine.train_many(m, opts, [conf], x, y, seeds=[1, 2], threads=t, limits=LIMITS)
        for i, r in enumerate(batch):
            out[f"many {i} t{t}"] = sha(r.weights)
    for i, (opt, seed) in enumerate(zip(opts, [1, 2])):
        alone = engine.train(model((256,), "float32", seed=seed), opt, conf, x, y)
        out[f"many {i} alone"] = sha(alone.weights)
    return out


if __name__ == "__main__":
    json.dump(main(), sys.stdout)
