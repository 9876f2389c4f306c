"""The generated tiny-network loop (engine/tinygen.py) against the generic one, bit for bit.

Every test here runs a job twice: through the loop generated for its architecture, and with
the generated path turned off (kernels/epochs.py's run_epochs_small_fold); weights, per-epoch
losses and accuracies, the optimizer and shuffle state must be identical to the last bit.
"""

import json
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import fusetrain.engine as engine
from fusetrain.engine import (LayerSpec, ModelSpec, OptimizerSpec, ScheduleSpec, TrainConfig, cache,
                              tinygen)
from fusetrain.engine.layout import Layout

pytestmark = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="compiles generated kernels")

RNG = np.random.default_rng(13)
X4 = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
Y_XOR = np.array([[0], [1], [1], [0]], dtype=np.float64)


@pytest.fixture
def used(monkeypatch):
    """The Tiny (or None) each train() call selected; compiles in the foreground."""
    monkeypatch.setattr(tinygen, "BACKGROUND", False)
    seen = []
    real = tinygen.select

    def spy(*args, **kwargs):
        tiny = real(*args, **kwargs)
        seen.append(tiny)
        return tiny

    monkeypatch.setattr(tinygen, "select", spy)
    return seen


def bits(a) -> bytes:
    a = np.asarray(a)
    return a.dtype.str.encode() + a.tobytes()


def same(fast, slow):
    for (w1, b1), (w2, b2) in zip(fast.weights, slow.weights):
        assert bits(w1) == bits(w2)
        assert bits(b1) == bits(b2)
    h1, h2 = fast.history.array(), slow.history.array()
    for name in ("train_loss", "train_accuracy", "learning_rate"):
        assert bits(fast.history.column(name)) == bits(slow.history.column(name)), name
    assert h1.shape == h2.shape
    assert fast.stop_reason == slow.stop_reason and fast.epochs_run == slow.epochs_run
    assert bits(fast.state.rng) == bits(slow.state.rng)
    assert fast.state.step == slow.state.step
    assert bits(fast.state.params) == bits(slow.state.params)


def both(used, monkeypatch, model, opt, config, x, y, **kw):
    """(generated, generic) results of the same job; asserts which path each took."""
    x = np.asarray(x, dtype=model.dtype)
    y = np.asarray(y, dtype=model.dtype)
    fast = engine.train(model, opt, config, x, y, **kw)
    assert used[-1] is not None, "the generated loop was not selected"
    with monkeypatch.context() as m:
        m.setattr(tinygen, "ENABLED", False)
        slow = engine.train(model, opt, config, x, y, **kw)
    assert used[-1] is None
    same(fast, slow)
    return fast, slow


def data(n, inputs, outputs, kind):
    x = RNG.normal(size=(n, inputs))
    if kind == "onehot":
        y = np.eye(outputs)[RNG.integers(0, outputs, n)]
    elif kind == "binary":
        y = RNG.integers(0, 2, (n, outputs)).astype(float)
    else:
        y = RNG.normal(size=(n, outputs))
    return x, y


# (hidden activations, output activation, loss, targets): together every activation, every loss,
# every accuracy rule (one-hot: argmax, 0/1: threshold, real: none).
CASES = [
    (("sigmoid",), "sigmoid", "half_sse", "binary"),
    (("tanh",), "sigmoid", "binary_cross_entropy", "binary"),
    (("relu", "leaky_relu"), "softmax", "softmax_cross_entropy", "onehot"),
    (("leaky_relu",), "identity", "mse", "real"),
    (("tanh", "identity"), "softmax", "half_sse", "onehot"),
    (("relu",), "tanh", "mse", "binary"),
]
RUNS = [  # batch, shuffle, weight decay, schedule
    (0, False, 0.0, "constant"),
    (3, True, 0.0, "cosine"),
    (4, False, 1e-3, "step"),
    (1, True, 1e-2, "exponential"),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join((*c[0], c[1], c[2])))
def test_bit_identical_to_the_generic_loop(used, monkeypatch, case, dtype):
    hidden, out, loss, targets = case
    outputs = 3 if out == "softmax" else 2
    x, y = data(11, 3, outputs, targets)
    layers = [LayerSpec(u, a, leaky_slope=0.1) for u, a in zip((4, 5), hidden)] + [LayerSpec(outputs, out)]
    model = ModelSpec(3, layers, loss=loss, seed=5, dtype=dtype)
    for batch, shuffle, decay, schedule in RUNS:
        opt = OptimizerSpec("sgd", learning_rate=0.1, weight_decay=decay,
                            schedule=ScheduleSpec(schedule, step_size=3, gamma=0.9))
        both(used, monkeypatch, model, opt, TrainConfig(epochs=12, batch_size=batch, shuffle=shuffle, seed=7),
             x, y)


def test_xor_and_the_seeds_shape(used, monkeypatch):
    # The comparison's shapes: 2-2-1 sigmoid full batch, and 7-5-3 sigmoid with shuffled batches of 16
    # (210 rows: a short last batch).
    m = ModelSpec(2, [LayerSpec(2, "sigmoid"), LayerSpec(1, "sigmoid")], loss="half_sse", seed=1, dtype="float32")
    fast, _ = both(used, monkeypatch, m, OptimizerSpec("sgd", learning_rate=0.5), TrainConfig(3000, batch_size=0),
                   X4, Y_XOR)
    x, y = data(210, 7, 3, "onehot")
    m = ModelSpec(7, [LayerSpec(5, "sigmoid"), LayerSpec(3, "sigmoid")], loss="half_sse", seed=1, dtype="float32")
    both(used, monkeypatch, m, OptimizerSpec("sgd", learning_rate=0.3), TrainConfig(50, batch_size=16, seed=3), x, y)


def test_frozen_layers_and_the_worked_example(used, monkeypatch):
    from tests.engine.test_worked_example import X, Y, model

    for dtype in ("float64", "float32"):
        both(used, monkeypatch, model(dtype), OptimizerSpec(learning_rate=0.5), TrainConfig(epochs=200, batch_size=0),
             X, Y)
    x, y = data(9, 3, 2, "binary")
    m = ModelSpec(3, [LayerSpec(4, "tanh", freeze_weights=True), LayerSpec(2, "sigmoid", freeze_bias=True)],
                  loss="half_sse", seed=2, dtype="float32")
    fast, _ = both(used, monkeypatch, m, OptimizerSpec("sgd", learning_rate=0.2, weight_decay=0.01),
                   TrainConfig(epochs=20, batch_size=4, seed=1), x, y)
    w0 = engine.init.initial_weights(m)[0][0]
    assert bits(fast.weights[0][0]) == bits(np.asarray(w0, np.float32))   # frozen, decay or not


def test_divergence_restores_the_epoch_before(used, monkeypatch):
    x, y = data(8, 2, 1, "real")
    m = ModelSpec(2, [LayerSpec(3, "relu"), LayerSpec(1, "identity")], loss="mse", seed=1, dtype="float32")
    fast, slow = both(used, monkeypatch, m, OptimizerSpec("sgd", learning_rate=1e4),
                      TrainConfig(epochs=50, batch_size=2, seed=1), x * 1e3, y * 1e3)
    assert fast.stop_reason == engine.DIVERGED
    assert fast.epochs_run < 50
    assert np.all(np.isfinite(fast.state.params))


def test_chunks_callbacks_and_resume_are_bit_identical(used, monkeypatch):
    x, y = data(30, 4, 3, "onehot")
    m = ModelSpec(4, [LayerSpec(6, "tanh"), LayerSpec(3, "softmax")], loss="softmax_cross_entropy", seed=4,
                  dtype="float32")
    opt = OptimizerSpec("sgd", learning_rate=0.2, schedule=ScheduleSpec("cosine"))
    cfg = TrainConfig(epochs=40, batch_size=8, seed=9)
    whole = engine.train(m, opt, cfg, x.astype(np.float32), y.astype(np.float32))
    assert used[-1] is not None
    again = engine.train(m, opt, cfg, x.astype(np.float32), y.astype(np.float32))
    same(whole, again)   # deterministic
    seen = []
    watched = engine.train(m, opt, cfg, x.astype(np.float32), y.astype(np.float32),
                           callback=lambda e: seen.append(e.epoch), chunk_seconds=0)
    assert seen == list(range(1, 41))
    same(whole, watched)
    # Stop after 17 epochs, resume from the state: the same bits as one run.
    first = engine.train(m, opt, cfg, x.astype(np.float32), y.astype(np.float32),
                         callback=lambda e: e.epoch >= 17, chunk_seconds=0)
    assert first.epochs_run == 17
    state = engine.TrainState.from_arrays(first.state.arrays())
    rest = engine.train(m, opt, cfg, x.astype(np.float32), y.astype(np.float32), state=state)
    assert used[-1] is not None
    same(whole, rest)


@pytest.mark.parametrize("change", ["adam", "momentum", "clip", "wide", "many", "disabled"])
def test_other_jobs_fall_back_to_the_generic_loop(used, monkeypatch, change):
    inputs = 8 if change == "many" else 3   # 8-8-2: 90 parameters, over MAX_PARAMS
    x, y = data(12, inputs, 2, "binary")
    units, opt = (8 if change == "many" else 4), OptimizerSpec("sgd", learning_rate=0.1)
    if change in ("adam", "momentum"):
        opt = OptimizerSpec(change, learning_rate=0.01)
    elif change == "clip":
        opt = OptimizerSpec("sgd", learning_rate=0.1, clip_norm=1.0)
    elif change == "wide":
        units = tinygen.MAX_UNITS + 1
    else:
        monkeypatch.setattr(tinygen, "ENABLED", False)
    m = ModelSpec(inputs, [LayerSpec(units, "tanh"), LayerSpec(2, "sigmoid")], loss="half_sse", seed=1,
                  dtype="float32")
    assert (Layout.of(m).n_params > tinygen.MAX_PARAMS) == (change == "many")

    def broken(*args, **kwargs):
        raise AssertionError("the generated loop must not run")

    monkeypatch.setattr(tinygen, "load", broken)
    result = engine.train(m, opt, TrainConfig(epochs=5, batch_size=4), x.astype(np.float32), y.astype(np.float32))
    assert used and all(tiny is None for tiny in used)   # (a warm-up's own runs included)
    assert result.epochs_run == 5


def test_a_new_architecture_compiles_in_the_background_when_the_generic_loop_is_ready(monkeypatch):
    # A warmed-up worker: the job runs the generic loop at once, the generated one compiles on a
    # thread, and the next job runs it. Results are the same bits either way.
    engine.warmup(dtypes=("float32",), paths=[(True, True)])
    monkeypatch.setattr(tinygen, "BACKGROUND", True)
    slope = float(np.random.default_rng().uniform(0.01, 0.5))   # a fresh key: nothing compiled or cached
    m = ModelSpec(2, [LayerSpec(3, "leaky_relu", leaky_slope=slope), LayerSpec(1, "sigmoid")], loss="half_sse",
                  seed=1, dtype="float32")
    x, y = X4.astype(np.float32), Y_XOR.astype(np.float32)
    opt, cfg = OptimizerSpec("sgd", learning_rate=0.5), TrainConfig(epochs=100, batch_size=0)
    calls = []
    real = tinygen.compile_later
    monkeypatch.setattr(tinygen, "compile_later", lambda *a: calls.append(a) or real(*a))
    first = engine.train(m, opt, cfg, x, y)
    assert len(calls) == 1
    tinygen.wait_background()
    key = calls[0][0].key
    assert tinygen.key_digest(key) in tinygen._compiled
    second = engine.train(m, opt, cfg, x, y)
    assert len(calls) == 1 and second.compile_seconds < 0.5
    same(first, second)


PROBE = """
import json, numpy as np
import fusetrain.engine as engine
from fusetrain.engine import LayerSpec, ModelSpec, OptimizerSpec, TrainConfig, cache, tinygen
tinygen.BACKGROUND = False
m = ModelSpec(2, [LayerSpec(2, "sigmoid"), LayerSpec(1, "sigmoid")], loss="half_sse", seed=1, dtype="float32")
x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32); y = np.array([[0], [1], [1], [0]], np.float32)
seen = []
real = tinygen.select
tinygen.select = lambda *a: seen.append(real(*a)) or seen[-1]
r = engine.train(m, OptimizerSpec("sgd", learning_rate=0.5), TrainConfig(epochs=100, batch_size=0), x, y)
t = seen[0]
print(json.dumps({"dir": str(cache.cache_dir()), "path": str(t.path), "hits": sum(t.run.stats.cache_hits.values()),
                  "misses": sum(t.run.stats.cache_misses.values()), "sha": __import__("hashlib").sha256(
                  r.state.params.tobytes()).hexdigest()}))
"""


def test_generated_source_and_its_cache_live_in_the_build_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "nc")

    def probe():
        out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    cold = probe()
    build = tmp_path / "nc" / f"engine-{cache.source_digest()}"
    assert cold["dir"] == str(build)
    path = build / "tiny" / os.path.basename(cold["path"])
    assert cold["path"] == str(path) and path.exists()
    assert cold["misses"] == 1 and cold["hits"] == 0
    # Numba's index and code sit beside the generated source, nowhere else.
    assert list(path.parent.glob(path.stem + ".run_epochs-*.nbi"))
    assert list(path.parent.glob(path.stem + ".run_epochs-*.nbc"))
    assert not [p for p in (tmp_path / "nc").rglob("*.nbi") if "tiny_" in p.name and p.parent != path.parent]
    stamp = path.stat().st_mtime_ns
    warm = probe()
    assert warm["hits"] == 1 and warm["misses"] == 0   # loaded, not compiled
    assert path.stat().st_mtime_ns == stamp           # the source was not rewritten
    assert warm["sha"] == cold["sha"]


def test_the_key_names_the_file_and_fixes_the_architecture():
    from fusetrain.engine.buffers import JobBuffers
    from fusetrain.engine.layout import Layout

    def key(model, opt=OptimizerSpec("sgd"), y=Y_XOR):
        layout = Layout.of(model)
        buf = JobBuffers(model, opt, TrainConfig(), layout, np.zeros(layout.n_params, model.dtype), 4,
                         engine.buffers.accuracy_rule(model.loss, y), None)
        return tinygen.arch_key(layout, buf.ints, model.dtype)

    base = ModelSpec(2, [LayerSpec(2, "sigmoid"), LayerSpec(1, "sigmoid")], loss="half_sse")
    keys = {key(base),
            key(ModelSpec(2, [LayerSpec(3, "sigmoid"), LayerSpec(1, "sigmoid")], loss="half_sse")),
            key(ModelSpec(2, [LayerSpec(2, "tanh"), LayerSpec(1, "sigmoid")], loss="half_sse")),
            key(ModelSpec(2, [LayerSpec(2, "sigmoid"), LayerSpec(1, "sigmoid")], loss="mse")),
            key(ModelSpec(2, [LayerSpec(2, "sigmoid", freeze_bias=True), LayerSpec(1, "sigmoid")], loss="half_sse")),
            key(ModelSpec(2, [LayerSpec(2, "sigmoid"), LayerSpec(1, "sigmoid")], loss="half_sse", dtype="float64")),
            key(base, y=Y_XOR * 0.5)}
    assert len(keys) == 7
    assert len({tinygen.source_path(k) for k in keys}) == 7
    # The learning rate, weight decay, seed and batch are run-time arguments, not part of the key.
    assert key(base, OptimizerSpec("sgd", learning_rate=3.0, weight_decay=0.1)) == key(base)
    assert all(tinygen.source_path(k).parent == cache.cache_dir() / "tiny" for k in keys)
