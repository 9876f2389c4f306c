"""Bit-identical results: whatever the thread count, in a batch of models, and after a resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import thread_runs as thread_runs_module

import fusetrain.engine as engine
from fusetrain.engine import LayerSpec, ModelSpec, OptimizerSpec, TrainConfig


def data(rows=512, inputs=64, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, inputs))
    return x, np.eye(classes)[rng.integers(0, classes, rows)]


def big_model(dtype="float32"):
    # 64*256 and 256*10 multiply-adds per row: both layers take the BLAS path.
    return ModelSpec(inputs=64, layers=[LayerSpec(256, "relu"), LayerSpec(10, "softmax")],
                     loss="softmax_cross_entropy", initializer="he_normal", seed=4, dtype=dtype)


def same(a, b):
    for (wa, ba), (wb, bb) in zip(a.weights, b.weights):
        np.testing.assert_array_equal(wa, wb)
        np.testing.assert_array_equal(ba, bb)


@pytest.fixture(scope="module")
def thread_runs() -> dict:
    """{case: weights sha256} from tests/engine/thread_runs.py, run with a pool of 4 Numba threads."""
    env = dict(os.environ, NUMBA_NUM_THREADS="4")
    out = subprocess.run([sys.executable, str(Path(__file__).with_name("thread_runs.py"))], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = json.loads(out.stdout)
    assert runs.pop("_threads") == 4
    runs.pop("_layer")
    return runs


def by_case(runs: dict, prefix: str) -> dict:
    """{case without its last word (the thread count): {last word: sha}} for keys starting with prefix."""
    groups: dict = {}
    for key, sha in runs.items():
        if key.startswith(prefix):
            case, last = key.rsplit(" ", 1)
            groups.setdefault(case, {})[last] = sha
    return groups


@pytest.mark.parametrize("shape", list(thread_runs_module.SHAPES))
def test_thread_count_does_not_change_weights_at_long_k(thread_runs, shape):
    # 784 inputs (K = 784 in the first layer's GEMMs), batches of 128 and 256, both dtypes,
    # SGD (the folded update), momentum and Adam, 1 to 4 threads (past the cores here).
    groups = by_case(thread_runs, f"train {shape} ")
    assert len(groups) == 2 * 2 * 3
    for case, shas in groups.items():
        assert set(shas) == {f"t{t}" for t in thread_runs_module.THREADS}
        assert len(set(shas.values())) == 1, f"{case}: {shas}"


def test_thread_count_does_not_change_predictions(thread_runs):
    groups = by_case(thread_runs, "predict ")
    assert len(groups) == 3 * 2
    for case, shas in groups.items():
        assert len(set(shas.values())) == 1, f"{case}: {shas}"


def test_dropout_and_weights_do_not_depend_on_the_thread_count(thread_runs):
    groups = by_case(thread_runs, "masked ")
    assert len(groups) == 2
    for case, shas in groups.items():
        assert set(shas) == {f"t{t}" for t in thread_runs_module.THREADS}
        assert len(set(shas.values())) == 1, f"{case}: {shas}"


def test_batch_of_models_matches_single_runs_at_any_thread_count(thread_runs):
    groups = by_case(thread_runs, "many ")
    assert len(groups) == 2
    for case, shas in groups.items():
        assert set(shas) == {"alone"} | {f"t{t}" for t in thread_runs_module.THREADS}
        assert len(set(shas.values())) == 1, f"{case}: {shas}"


def test_many_models_match_single_runs():
    x, y = data(rows=210, inputs=7, classes=3)
    model = ModelSpec(inputs=7, layers=[LayerSpec(5, "sigmoid"), LayerSpec(3, "sigmoid")], loss="half_sse")
    opts = [OptimizerSpec(learning_rate=lr, kind=kind) for lr, kind in
            [(0.3, "sgd"), (0.1, "momentum"), (0.01, "adam"), (0.05, "nesterov"), (0.01, "rmsprop")]]
    confs = [TrainConfig(epochs=20, batch_size=16, seed=s) for s in range(5)]
    seeds = [10, 11, 12, 13, 14]
    batch = engine.train_many(model, opts, confs, x, y, seeds=seeds, threads=2)
    for opt, conf, seed, got in zip(opts, confs, seeds, batch):
        alone = engine.train(ModelSpec(**{**model.__dict__, "seed": seed}), opt, conf, x, y)
        same(got, alone)
        assert [m.train_loss for m in got.history] == [m.train_loss for m in alone.history]
        assert got.final == alone.final


def test_many_models_blas_shape_matches_single():
    x, y = data(rows=256)
    model = big_model()
    opts = [OptimizerSpec(learning_rate=0.01), OptimizerSpec(kind="adam", learning_rate=0.001)]
    confs = [TrainConfig(epochs=2, batch_size=64)]
    batch = engine.train_many(model, opts, confs, x, y, seeds=[1, 2], threads=2)
    for opt, seed, got in zip(opts, [1, 2], batch):
        same(got, engine.train(ModelSpec(**{**model.__dict__, "seed": seed}), opt, confs[0], x, y))


@pytest.mark.parametrize("kind", ["sgd", "adam", "momentum"])
def test_resume_is_bit_identical(kind):
    x, y = data(rows=300, inputs=64)
    opt = OptimizerSpec(kind=kind, learning_rate=0.01,
                        schedule=engine.ScheduleSpec(kind="cosine", min_lr=0.001))
    conf = TrainConfig(epochs=9, batch_size=32, seed=3)
    whole = engine.train(big_model(), opt, conf, x, y)
    part = engine.train(big_model(), opt, conf, x, y, callback=lambda m: m.epoch >= 4, chunk_seconds=0.0)
    assert part.epochs_run == 4
    # Through the plain-array form a service would store.
    state = engine.TrainState.from_arrays({k: v.copy() for k, v in part.state.arrays().items()})
    rest = engine.train(big_model(), opt, conf, x, y, state=state)
    assert rest.epochs_run == 9 and rest.stop_reason == engine.COMPLETED
    same(whole, rest)
    assert [m.train_loss for m in rest.history] == [m.train_loss for m in whole.history]


def test_checkpoints_resume_bit_identically():
    x, y = data(rows=300, inputs=64)
    opt, conf = OptimizerSpec(kind="adam", learning_rate=0.01), TrainConfig(epochs=6, batch_size=32)
    saved = []
    whole = engine.train(big_model(), opt, conf, x, y, checkpoint=saved.append, checkpoint_seconds=0.0)
    assert len(saved) >= 2
    mid = saved[len(saved) // 2]
    assert 0 < mid.epoch < 6
    same(whole, engine.train(big_model(), opt, conf, x, y, state=mid))


def test_resume_rejects_a_state_of_another_model():
    x, y = data(rows=100)
    part = engine.train(big_model(), OptimizerSpec(kind="adam"), TrainConfig(epochs=1), x, y)
    with pytest.raises(engine.InvalidSpec, match="state.opt_state"):
        engine.train(big_model(), OptimizerSpec(kind="sgd"), TrainConfig(epochs=2), x, y, state=part.state)
    small = ModelSpec(inputs=64, layers=[LayerSpec(10, "softmax")], loss="softmax_cross_entropy")
    with pytest.raises(engine.InvalidSpec, match="state.params"):
        engine.train(small, OptimizerSpec(kind="adam"), TrainConfig(epochs=2), x, y, state=part.state)
