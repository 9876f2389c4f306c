"""engine/memory.py: each term of the per-job estimate against the arrays the engine really makes.

The buffers are compared with what JobBuffers, Layout and TrainState allocate for the same spec;
whole runs with the peak of NumPy's allocations as tracemalloc sees them (NumPy reports every
array's data there), so the estimate cannot drift from the engine unnoticed. The resident-memory
figures of larger runs are tests/reliability/memory_figures.py's (docs/RELIABILITY.md).
"""

import tracemalloc

import numba
import numpy as np
import pytest

import fusetrain.engine as engine
from fusetrain.engine import EarlyStopping, LayerSpec, ModelSpec, OptimizerSpec, TrainConfig
from fusetrain.engine.buffers import JobBuffers
from fusetrain.engine.config import EVAL_BLOCK_ROWS
from fusetrain.engine.init import initial_weights
from fusetrain.engine.layout import Layout
from fusetrain.engine.memory import job_bytes, parameters, split_rows, terms

compiled_only = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="plain-Python kernels allocate temporaries")


def model_of(units, dtype="float32", inputs=16, loss="half_sse"):
    out = "softmax" if loss == "softmax_cross_entropy" else "sigmoid"
    layers = [LayerSpec(u, "relu") for u in units[:-1]] + [LayerSpec(units[-1], out)]
    return ModelSpec(inputs=inputs, layers=layers, dtype=dtype, loss=loss)


SPECS = [
    (model_of([32, 1]), "sgd", 0, 500),
    (model_of([300, 200, 3], "float64"), "adam", 64, 1000),
    (model_of([8, 8, 2]), "momentum", 1, 77),
    (model_of([4096, 1], "float64"), "rmsprop", 500, 300),     # batch over the rows: the full batch
]


@pytest.mark.parametrize("model, kind, batch, rows", SPECS)
def test_buffer_terms_are_the_job_buffers(model, kind, batch, rows):
    """parameters, activations, batch and order are exactly what JobBuffers (plus train's copy of
    the best weights) allocates."""
    opt, config = OptimizerSpec(kind=kind), TrainConfig(epochs=3, batch_size=batch)
    layout = Layout.of(model)
    dtype = np.dtype(model.dtype)
    buf = JobBuffers(model, opt, config, layout, layout.pack(initial_weights(model), dtype), rows, 0, None)
    t = terms(model, opt, config, rows)
    assert parameters(model) == layout.n_params
    best = buf.theta.nbytes
    assert t["parameters"] == buf.theta.nbytes + buf.grad.nbytes + buf.backup.nbytes + buf.opt.nbytes + best
    assert t["activations"] == buf.acts.nbytes + buf.deltas.nbytes
    assert t["batch"] == buf.xb.nbytes + buf.yb.nbytes
    assert t["order"] == buf.perm.nbytes


@pytest.mark.parametrize("model, kind, batch, rows", SPECS[:3])
def test_copies_term_is_the_result_and_its_state(model, kind, batch, rows):
    x = np.random.default_rng(0).normal(size=(rows, model.inputs))
    y = np.random.default_rng(1).uniform(size=(rows, model.outputs))
    opt, config = OptimizerSpec(kind=kind), TrainConfig(epochs=1, batch_size=batch)
    result = engine.train(model, opt, config, x, y)
    s = result.state
    made = (sum(w.nbytes + b.nbytes for w, b in result.weights) + s.params.nbytes + s.opt_state.nbytes
            + s.best_params.nbytes)
    assert terms(model, opt, config, rows)["copies"] == made


@compiled_only
@pytest.mark.parametrize("rows", [10, EVAL_BLOCK_ROWS, 3000])
def test_evaluation_term_is_what_a_metric_pass_allocates(rows):
    """The pass over the rows after training (engine.evaluate runs the same one) allocates the
    outputs, with a block of activations and then the loss's scratch: the evaluation term, beside
    the weights."""
    model = model_of([500, 40, 3])
    x = np.random.default_rng(0).normal(size=(rows, 16)).astype(np.float32)
    y = np.random.default_rng(1).uniform(size=(rows, 3)).astype(np.float32)
    weights = initial_weights(model)
    engine.evaluate(model, weights, x[:2], y[:2])
    tracemalloc.start()
    try:
        engine.evaluate(model, weights, x, y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    term = terms(model, OptimizerSpec(), TrainConfig(), rows)["evaluation"]
    theta = parameters(model) * 4
    assert term <= peak - theta <= term + (64 << 10)
    assert term == (rows * 3 + max(min(rows, EVAL_BLOCK_ROWS) * 543, rows * 3)) * 4


@pytest.mark.parametrize("rows, fraction", [(10, 0.2), (1000, 0.1), (999, 0.35), (7, 0.5)])
def test_held_out_rows_are_those_train_holds_out(rows, fraction):
    config = TrainConfig(validation_fraction=fraction)
    x, y = np.zeros((rows, 2)), np.zeros((rows, 1))
    x_train, _, x_val, _ = engine.split_validation(config, x, y)
    assert split_rows(config, rows) == (len(x_train), len(x_val))
    assert split_rows(TrainConfig(), rows, 5) == (rows, 5)


# name: model, optimizer, config, rows, separate validation rows
RUNS = {
    "full batch": (model_of([2048, 1]), "adam", TrainConfig(epochs=2, batch_size=0), 3000, 0),
    "float64 sgd": (model_of([1024, 1], "float64"), "sgd", TrainConfig(epochs=2, batch_size=32), 3000, 0),
    "deep": (model_of([512, 512, 512, 4]), "adam", TrainConfig(epochs=1, batch_size=64), 2000, 0),
    "batch 1": (model_of([2048, 1]), "momentum", TrainConfig(epochs=1, batch_size=1), 1500, 0),
    "validation fraction": (model_of([2048, 1]), "adam",
                            TrainConfig(epochs=3, batch_size=128, validation_fraction=0.25), 4000, 0),
    "validation set": (model_of([1024, 10], "float64", loss="softmax_cross_entropy"), "rmsprop",
                       TrainConfig(epochs=3, batch_size=64, early_stopping=EarlyStopping(patience=5)), 3000, 1000),
    "many rows": (model_of([16, 10], loss="softmax_cross_entropy"), "adam",
                  TrainConfig(epochs=1, batch_size=256), 200_000, 0),
    "many epochs": (model_of([4, 1]), "adam", TrainConfig(epochs=40_000, batch_size=0), 4, 0),
}


@compiled_only
@pytest.mark.parametrize("watched", [False, True], ids=["unwatched", "callback"])
@pytest.mark.parametrize("name", RUNS)
def test_estimate_bounds_the_allocations_of_a_run(name, watched):
    """Data loaded as float64, then train: NumPy's peak allocation stays under the estimate and
    comes within 30% of it less its runtime term (memory outside NumPy's arrays, and slack)."""
    model, kind, config, rows, val_rows = RUNS[name]
    opt = OptimizerSpec(kind=kind)
    engine.warmup((model.dtype,))
    classes = model.loss == "softmax_cross_entropy"

    def data(n, seed):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, model.inputs))
        y = np.eye(model.outputs)[rng.integers(0, model.outputs, n)] if classes else rng.uniform(size=(n, model.outputs))
        return x, y

    kwargs = dict(callback=lambda m: False, checkpoint=lambda s: s.arrays(), checkpoint_seconds=0.0) if watched else {}
    tracemalloc.start()
    try:
        x, y = data(rows, 0)
        x_val, y_val = data(val_rows, 1) if val_rows else (None, None)
        engine.train(model, opt, config, x, y, x_val=x_val, y_val=y_val, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    t = terms(model, opt, config, rows, val_rows)
    estimate = job_bytes(model, opt, config, rows, val_rows)
    assert 0.7 * (estimate - t["runtime"]) <= peak <= estimate, (peak / estimate, t)


def test_estimate_is_arithmetic_only():
    """A model far past any memory gets a figure, not an allocation."""
    model = ModelSpec(inputs=65_536, layers=[LayerSpec(65_536)] * 64)
    need = job_bytes(model, OptimizerSpec(kind="adam"), TrainConfig(epochs=10**7, batch_size=0), 50_000_000)
    assert need > 2**50
    assert job_bytes(model_of([4, 1]), OptimizerSpec(), TrainConfig(epochs=1), 1) < 16 << 20
