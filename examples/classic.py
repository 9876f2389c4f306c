"""The classic backpropagation examples on the engine alone, in-process: `make classic`.

2-2-1 worked example, XOR, UCI wheat seeds with 5-fold cross-validation (when the shared
datasets folder is beside the repository), and 1,000 seeds-sized models trained as one batch.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import fusetrain.engine as engine
from fusetrain.engine import LayerSpec, ModelSpec, OptimizerSpec, TrainConfig

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def worked_example() -> None:
    model = ModelSpec(inputs=2, dtype="float64", loss="half_sse", layers=[
        LayerSpec(2, "sigmoid", weights=[[0.15, 0.20], [0.25, 0.30]], bias=[0.35, 0.35], freeze_bias=True),
        LayerSpec(2, "sigmoid", weights=[[0.40, 0.45], [0.50, 0.55]], bias=[0.60, 0.60], freeze_bias=True)])
    x, y = [[0.05, 0.10]], [[0.01, 0.99]]
    before = engine.evaluate(model, engine.init.initial_weights(model), x, y)["loss"]
    one = engine.train(model, OptimizerSpec(learning_rate=0.5), TrainConfig(epochs=1, batch_size=0), x, y)
    many = engine.train(model, OptimizerSpec(learning_rate=0.5), TrainConfig(epochs=10_000, batch_size=0), x, y)
    out = engine.predict(model, many.weights, x)[0]
    print("2-2-1 worked example (sigmoid, half squared error, SGD lr 0.5, biases frozen)")
    print(f"  error before training   {before:.9f}")
    print(f"  after the first update  {one.final['train_loss']:.9f}")
    print(f"  after 10,000 updates    {many.final['train_loss']:.9f}   outputs {out[0]:.6f} {out[1]:.6f}")


def xor() -> None:
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    model = ModelSpec(inputs=2, layers=[LayerSpec(4, "tanh"), LayerSpec(1, "sigmoid")],
                      loss="binary_cross_entropy", seed=3)
    r = engine.train(model, OptimizerSpec(kind="momentum", learning_rate=0.5), TrainConfig(epochs=2000, batch_size=0),
                     x, y)
    pred = engine.predict(model, r.weights, x).ravel()
    print("XOR 2-4-1 (tanh, sigmoid, cross-entropy, momentum), 2,000 full-batch epochs")
    print(f"  predictions {np.round(pred, 3).tolist()}  accuracy {r.final['train_accuracy']:.0%}"
          f"  in {r.train_seconds * 1e3:.1f} ms ({4 * r.epochs_run / r.train_seconds / 1e6:.1f}M samples/s)")


def seeds() -> None:
    path = DATASETS / "seeds_dataset.csv"
    if not path.exists():
        print(f"UCI seeds: skipped, {path} not found (pass the shared datasets folder beside the repo)")
        return
    data = np.loadtxt(path, delimiter=",")
    x = data[:, :7]
    x = (x - x.min(axis=0)) / (x.max(axis=0) - x.min(axis=0))
    y = np.eye(3)[data[:, 7].astype(int) - 1]
    folds = np.array_split(np.random.default_rng(1).permutation(len(x)), 5)
    scores, t0 = [], time.perf_counter()
    for k, test in enumerate(folds):
        train_rows = np.concatenate([f for j, f in enumerate(folds) if j != k])
        model = ModelSpec(inputs=7, layers=[LayerSpec(5, "sigmoid"), LayerSpec(3, "sigmoid")], loss="half_sse",
                          initializer="uniform", init_scale=0.5, seed=k)
        r = engine.train(model, OptimizerSpec(learning_rate=0.3), TrainConfig(epochs=500, batch_size=1, seed=k),
                         x[train_rows], y[train_rows])
        scores.append(engine.evaluate(model, r.weights, x[test], y[test])["accuracy"])
    print("UCI wheat seeds 7-5-3 (sigmoid, min-max inputs, online SGD lr 0.3, 500 epochs), 5-fold CV")
    print(f"  fold accuracy {[f'{s:.1%}' for s in scores]}  mean {np.mean(scores):.1%}"
          f"  in {time.perf_counter() - t0:.2f} s")


def many_models() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((210, 7))
    y = np.eye(3)[rng.integers(0, 3, 210)]
    model = ModelSpec(inputs=7, layers=[LayerSpec(5, "sigmoid"), LayerSpec(3, "sigmoid")], loss="half_sse")
    k = 1000
    engine.train_many(model, [OptimizerSpec(learning_rate=0.3)], [TrainConfig(epochs=1, batch_size=16)], x, y,
                      seeds=range(2))  # compile outside the timing
    t0 = time.perf_counter()
    results = engine.train_many(model, [OptimizerSpec(learning_rate=0.3)], [TrainConfig(epochs=500, batch_size=16)],
                                x, y, seeds=range(k), threads=engine.config.cpu_count())
    secs = time.perf_counter() - t0
    print(f"{k} seeds-sized models (7-5-3, 500 epochs, batch 16) as one batch on {engine.config.cpu_count()} threads")
    print(f"  {secs:.2f} s, {k * 500 * 210 / secs / 1e6:.1f}M samples/s;"
          f" final losses {min(r.final['train_loss'] for r in results):.4f} .. "
          f"{max(r.final['train_loss'] for r in results):.4f}")


def main() -> int:
    t0 = time.perf_counter()
    secs = engine.warmup(("float32", "float64"))
    print(f"kernels ready in {secs:.2f} s (compiled, or loaded from the Numba cache)\n")
    for demo in (worked_example, xor, seeds, many_models):
        demo()
        print()
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
