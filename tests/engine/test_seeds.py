"""UCI wheat seeds, the classic backpropagation tutorial: 7-5-3 sigmoid, online SGD, 5-fold CV."""

from pathlib import Path

import numpy as np
import pytest

import fusetrain.engine as engine
from fusetrain.engine import LayerSpec, ModelSpec, OptimizerSpec, TrainConfig

SEEDS_CSV = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "seeds_dataset.csv"


@pytest.fixture(scope="module")
def seeds():
    if not SEEDS_CSV.exists():
        pytest.skip(f"UCI seeds data not found at {SEEDS_CSV} (the shared datasets folder beside the repo)")
    data = np.loadtxt(SEEDS_CSV, delimiter=",")
    assert data.shape == (210, 8)
    x = data[:, :7]
    x = (x - x.min(axis=0)) / (x.max(axis=0) - x.min(axis=0))  # min-max, as in the tutorial
    y = np.eye(3)[data[:, 7].astype(int) - 1]
    return x, y


def test_five_fold_cross_validation(seeds):
    x, y = seeds
    folds = np.array_split(np.random.default_rng(1).permutation(len(x)), 5)
    scores = []
    for k, test_idx in enumerate(folds):
        train_idx = np.concatenate([f for j, f in enumerate(folds) if j != k])
        model = ModelSpec(inputs=7, layers=[LayerSpec(5, "sigmoid"), LayerSpec(3, "sigmoid")], loss="half_sse",
                          initializer="uniform", init_scale=0.5, seed=k)
        result = engine.train(model, OptimizerSpec(learning_rate=0.3), TrainConfig(epochs=500, batch_size=1, seed=k),
                              x[train_idx], y[train_idx])
        scores.append(engine.evaluate(model, result.weights, x[test_idx], y[test_idx])["accuracy"])
    mean = float(np.mean(scores))
    print(f"seeds 5-fold accuracy: {[round(s, 3) for s in scores]} mean {mean:.3f}")
    assert mean >= 0.90, scores
    assert min(scores) >= 0.80, scores
