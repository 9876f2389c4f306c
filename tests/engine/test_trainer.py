"""train(): the features of a training run, each checked by behaviour."""

import math

import numpy as np
import pytest

import fusetrain.engine as engine
from fusetrain.engine import (EarlyStopping, InvalidSpec, LayerSpec, ModelSpec, OptimizerSpec,
                              ScheduleSpec, TrainConfig)

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([[0], [1], [1], [0]], dtype=float)


def xor_model(dtype="float32", seed=3):
    return ModelSpec(inputs=2, layers=[LayerSpec(4, "tanh"), LayerSpec(1, "sigmoid")],
                     loss="binary_cross_entropy", seed=seed, dtype=dtype)


def blobs(rows=300, inputs=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3, size=(classes, inputs))
    labels = rng.integers(0, classes, rows)
    x = centers[labels] + rng.normal(size=(rows, inputs))
    return x, np.eye(classes)[labels]


def clf_model(inputs=6, classes=3, hidden=16, dtype="float32", seed=0, loss="softmax_cross_entropy"):
    return ModelSpec(inputs=inputs, layers=[LayerSpec(hidden, "relu"), LayerSpec(classes, "softmax")],
                     loss=loss, initializer="he_uniform", seed=seed, dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_xor_learned_to_full_accuracy(dtype):
    result = engine.train(xor_model(dtype), OptimizerSpec(learning_rate=0.5, kind="momentum"),
                          TrainConfig(epochs=2000, batch_size=0), XOR_X, XOR_Y)
    assert result.final["train_accuracy"] == 1.0
    assert result.stop_reason == engine.COMPLETED and result.epochs_run == 2000
    pred = engine.predict(xor_model(dtype), result.weights, XOR_X)
    np.testing.assert_array_equal(pred > 0.5, XOR_Y > 0.5)


def test_xor_with_textbook_sigmoid_sse_online():
    m = ModelSpec(inputs=2, layers=[LayerSpec(3, "sigmoid"), LayerSpec(1, "sigmoid")], loss="half_sse",
                  initializer="uniform", init_scale=1.0, seed=1)
    r = engine.train(m, OptimizerSpec(learning_rate=2.0), TrainConfig(epochs=3000, batch_size=1), XOR_X, XOR_Y)
    assert r.final["train_accuracy"] == 1.0


def test_single_layer_logistic_regression():
    x, y = blobs(classes=2)
    y = y[:, :1]
    m = ModelSpec(inputs=6, layers=[LayerSpec(1, "sigmoid")], loss="binary_cross_entropy")
    r = engine.train(m, OptimizerSpec(learning_rate=0.1), TrainConfig(epochs=50, batch_size=16), x, y)
    assert r.final["train_accuracy"] > 0.95
    assert len(r.weights) == 1 and r.weights[0][0].shape == (1, 6)


def test_metrics_per_epoch():
    x, y = blobs()
    r = engine.train(clf_model(), OptimizerSpec(learning_rate=0.05), TrainConfig(epochs=8, batch_size=32),
                     x, y, callback=lambda m: None)
    assert [m.epoch for m in r.history] == list(range(1, 9))
    for m in r.history:
        assert m.train_loss > 0 and 0 <= m.train_accuracy <= 1
        assert m.learning_rate == pytest.approx(0.05)
        assert m.seconds > 0 and m.samples_per_second > 0
        assert math.isnan(m.val_loss)
    assert r.history[-1].train_loss < r.history[0].train_loss
    # The final metrics come from a pass after the last update, so they differ from the epoch mean.
    assert r.final["train_loss"] == pytest.approx(engine.evaluate(clf_model(), r.weights, x, y)["loss"], rel=1e-6)
    assert r.compile_seconds >= 0 and r.train_seconds > 0


def test_accuracy_is_nan_for_regression():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]])
    m = ModelSpec(inputs=3, layers=[LayerSpec(1, "identity")], loss="mse")
    r = engine.train(m, OptimizerSpec(learning_rate=0.05), TrainConfig(epochs=200, batch_size=10), x, y)
    assert math.isnan(r.history[0].train_accuracy) and math.isnan(r.final["train_accuracy"])
    np.testing.assert_allclose(r.weights[0][0], [[1.0, -2.0, 0.5]], atol=1e-3)


@pytest.mark.parametrize("kind", list(engine.OPTIMIZERS))
def test_every_optimizer_learns(kind):
    x, y = blobs(seed=1)
    lr = {"sgd": 0.05, "momentum": 0.02, "nesterov": 0.02, "adam": 0.01, "adamw": 0.01, "rmsprop": 0.005}[kind]
    r = engine.train(clf_model(), OptimizerSpec(kind=kind, learning_rate=lr, weight_decay=1e-4),
                     TrainConfig(epochs=15, batch_size=16), x, y)
    assert r.final["train_accuracy"] > 0.9
    assert r.history[-1].train_loss < r.history[0].train_loss / 2


def test_weight_decay_shrinks_weights():
    x, y = blobs()
    plain = engine.train(clf_model(), OptimizerSpec(learning_rate=0.05), TrainConfig(epochs=20, batch_size=32), x, y)
    decayed = engine.train(clf_model(), OptimizerSpec(learning_rate=0.05, weight_decay=0.05),
                           TrainConfig(epochs=20, batch_size=32), x, y)
    norm = lambda r: sum(float(np.sum(w ** 2)) for w, _ in r.weights)
    assert norm(decayed) < 0.8 * norm(plain)


def test_clip_norm_bounds_the_step():
    m = ModelSpec(inputs=2, layers=[LayerSpec(1, "identity", weights=[[0.0, 0.0]], bias=[0.0])], loss="half_sse")
    x = np.array([[100.0, 0.0]])
    y = np.array([[1000.0]])
    r = engine.train(m, OptimizerSpec(learning_rate=1.0, clip_norm=0.5), TrainConfig(epochs=1, batch_size=0), x, y)
    w, b = r.weights[0]
    step = np.sqrt(np.sum(w ** 2) + np.sum(b ** 2))
    assert step == pytest.approx(0.5, rel=1e-4)


@pytest.mark.parametrize("kind,expected", [
    ("constant", [0.1, 0.1, 0.1, 0.1]),
    ("step", [0.1, 0.1, 0.05, 0.05]),
    ("exponential", [0.1, 0.05, 0.025, 0.0125]),
    ("inverse_scaling", [0.1, 0.1 / 2 ** 0.5, 0.1 / 3 ** 0.5, 0.05]),
    ("cosine", [0.1, 0.01 + 0.09 * (1 + math.cos(math.pi / 4)) / 2, 0.055, 0.01 + 0.09 * (1 + math.cos(3 * math.pi / 4)) / 2]),
])
def test_learning_rate_schedules(kind, expected):
    x, y = blobs(rows=40)
    sched = ScheduleSpec(kind=kind, step_size=2, gamma=0.5, power=0.5, min_lr=0.01)
    r = engine.train(clf_model(), OptimizerSpec(learning_rate=0.1, schedule=sched), TrainConfig(epochs=4), x, y,
                     callback=lambda m: None)
    np.testing.assert_allclose([m.learning_rate for m in r.history], expected, rtol=1e-12)


def test_frozen_layers_do_not_move():
    x, y = blobs()
    m = clf_model()
    m.layers[0].freeze_weights = True
    m.layers[1].freeze_bias = True
    start = engine.init.initial_weights(m)
    r = engine.train(m, OptimizerSpec(kind="adam", learning_rate=0.01), TrainConfig(epochs=3), x, y)
    np.testing.assert_array_equal(r.weights[0][0], start[0][0])
    np.testing.assert_array_equal(r.weights[1][1], start[1][1])
    assert not np.array_equal(r.weights[0][1], start[0][1])
    assert not np.array_equal(r.weights[1][0], start[1][0])


def test_validation_fraction_and_separate_set():
    x, y = blobs(rows=200)
    r = engine.train(clf_model(), OptimizerSpec(learning_rate=0.05), TrainConfig(epochs=5, validation_fraction=0.25),
                     x, y)
    assert all(np.isfinite(m.val_loss) and 0 <= m.val_accuracy <= 1 for m in r.history)
    assert np.isfinite(r.final["val_loss"])
    r2 = engine.train(clf_model(), OptimizerSpec(learning_rate=0.05), TrainConfig(epochs=5), x[:150], y[:150],
                      x_val=x[150:], y_val=y[150:])
    assert r2.final["val_accuracy"] == pytest.approx(
        engine.evaluate(clf_model(), r2.weights, x[150:], y[150:])["accuracy"])


def test_early_stopping_restores_best():
    x, y = blobs(rows=120, seed=5)
    rng = np.random.default_rng(1)
    y_noisy = np.eye(3)[rng.integers(0, 3, 120)]  # random labels: validation loss soon rises
    es = EarlyStopping(patience=3, min_delta=0.0, restore_best=True)
    r = engine.train(clf_model(hidden=64), OptimizerSpec(kind="adam", learning_rate=0.02),
                     TrainConfig(epochs=500, batch_size=8, validation_fraction=0.3, early_stopping=es), x, y_noisy)
    assert r.stop_reason == engine.EARLY_STOPPED
    assert r.epochs_run < 500 and r.epochs_run - r.best_epoch == 3
    best = min(m.val_loss for m in r.history)
    assert r.history[r.best_epoch - 1].val_loss == best
    assert r.final["val_loss"] == pytest.approx(best, rel=1e-5)


def test_divergence_stops_and_keeps_finite_weights():
    x, y = blobs()
    m = ModelSpec(inputs=6, layers=[LayerSpec(16, "relu"), LayerSpec(3, "identity")], loss="mse", seed=1)
    r = engine.train(m, OptimizerSpec(learning_rate=50.0), TrainConfig(epochs=100, batch_size=8), x, y * 1e3)
    assert r.stop_reason == engine.DIVERGED
    assert r.epochs_run < 100 and "non-finite" in r.message
    assert all(np.all(np.isfinite(w)) and np.all(np.isfinite(b)) for w, b in r.weights)
    assert all(np.isfinite(h.train_loss) for h in r.history)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch", [0, 2])
@pytest.mark.parametrize("opt", [OptimizerSpec(learning_rate=0.1, weight_decay=1e308),
                                 OptimizerSpec(kind="momentum", learning_rate=1e308),
                                 OptimizerSpec(kind="adam", learning_rate=1e308)], ids=["decay", "momentum", "adam"])
def test_overflowing_weights_count_as_divergence_and_the_last_finite_weights_stay(opt, batch, dtype):
    # A huge rate or weight decay overflows the weights while the epoch's loss, taken before
    # each update, may still be finite; the epoch is undone all the same, so no inf/NaN weight
    # is returned (before, 5 of the 8 weight-decay and momentum cases returned non-finite weights).
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype)
    y = np.array([[0], [1], [1], [0]], dtype=dtype)
    m = ModelSpec(inputs=2, layers=[LayerSpec(4, "tanh"), LayerSpec(1, "sigmoid")], loss="binary_cross_entropy",
                  seed=1, dtype=dtype)
    r = engine.train(m, opt, TrainConfig(epochs=20, batch_size=batch), x, y)
    assert all(np.all(np.isfinite(w)) and np.all(np.isfinite(b)) for w, b in r.weights)
    assert r.stop_reason in (engine.DIVERGED, engine.COMPLETED)
    if opt.weight_decay:
        assert r.stop_reason == engine.DIVERGED and "non-finite" in r.message


def test_callback_can_stop_training():
    x, y = blobs()
    seen = []

    def cb(m):
        seen.append(m.epoch)
        return m.epoch >= 3

    r = engine.train(clf_model(), OptimizerSpec(learning_rate=0.05), TrainConfig(epochs=1000, batch_size=32), x, y,
                     callback=cb, chunk_seconds=0.0)
    assert r.stop_reason == engine.STOPPED
    assert r.epochs_run == 3 and seen == [1, 2, 3]


def test_unknown_names_and_bad_values_name_the_field():
    x, y = blobs()
    cases = [
        (lambda: clf_model(loss="hinge"), OptimizerSpec(), TrainConfig(), "model.loss"),
        (lambda: ModelSpec(inputs=6, layers=[LayerSpec(3, "swish")]), OptimizerSpec(), TrainConfig(), "model.layers[0].activation"),
        (clf_model, OptimizerSpec(kind="lbfgs"), TrainConfig(), "optimizer.kind"),
        (clf_model, OptimizerSpec(learning_rate=-1), TrainConfig(), "optimizer.learning_rate"),
        (clf_model, OptimizerSpec(momentum=1.5), TrainConfig(), "optimizer.momentum"),
        (clf_model, OptimizerSpec(), TrainConfig(epochs=0), "training.epochs"),
        (clf_model, OptimizerSpec(), TrainConfig(batch_size=-2), "training.batch_size"),
        (clf_model, OptimizerSpec(), TrainConfig(threads=10_000), "training.threads"),
        (lambda: ModelSpec(inputs=6, layers=[LayerSpec(0)]), OptimizerSpec(), TrainConfig(), "model.layers[0].units"),
        (lambda: ModelSpec(inputs=6, layers=[LayerSpec(3, "softmax"), LayerSpec(3)]), OptimizerSpec(), TrainConfig(),
         "model.layers[0].activation"),
        (lambda: ModelSpec(inputs=6, layers=[LayerSpec(3, "relu")], loss="softmax_cross_entropy"),
         OptimizerSpec(), TrainConfig(), "model.layers[0].activation"),
        (lambda: ModelSpec(inputs=6, layers=[LayerSpec(3, weights=np.zeros((6, 3)))]), OptimizerSpec(), TrainConfig(),
         "model.layers[0].weights"),
        (lambda: ModelSpec(inputs=6, layers=[LayerSpec(3)], dtype="float16"), OptimizerSpec(), TrainConfig(), "model.dtype"),
    ]
    for make, opt, conf, field in cases:
        with pytest.raises(InvalidSpec) as err:
            engine.train(make(), opt, conf, x, y)
        assert err.value.field == field, (field, str(err.value))


def test_bad_data_names_the_problem():
    x, y = blobs()
    bad_x = x.copy()
    bad_x[7, 2] = np.nan
    with pytest.raises(InvalidSpec, match=r"train.x: contains NaN or infinity \(first at row 7\)"):
        engine.train(clf_model(), OptimizerSpec(), TrainConfig(), bad_x, y)
    with pytest.raises(InvalidSpec, match="train.x: has 5 columns but model.inputs is 6"):
        engine.train(clf_model(), OptimizerSpec(), TrainConfig(), x[:, :5], y)
    with pytest.raises(InvalidSpec, match="train.y: has 299 rows"):
        engine.train(clf_model(), OptimizerSpec(), TrainConfig(), x, y[:299])
    with pytest.raises(InvalidSpec, match="train.x: must be numeric"):
        engine.train(clf_model(), OptimizerSpec(), TrainConfig(), np.array([["a"] * 6]), y[:1])
    with pytest.raises(InvalidSpec, match="train.x: is empty"):
        engine.train(clf_model(), OptimizerSpec(), TrainConfig(), np.zeros((0, 6)), np.zeros((0, 3)))
    with pytest.raises(InvalidSpec, match=r"targets of softmax_cross_entropy must lie in \[0, 1\]"):
        engine.train(clf_model(), OptimizerSpec(), TrainConfig(), x, y * 2)


def test_limits_are_checked_before_allocating():
    limits = engine.Limits(max_parameters=1000, max_rows=100)
    x, y = blobs()
    with pytest.raises(engine.LimitExceeded, match="model.layers"):
        engine.train(ModelSpec(inputs=6, layers=[LayerSpec(2 ** 15), LayerSpec(2 ** 15)]),
                     OptimizerSpec(), TrainConfig(), x, y[:, :1], limits=limits)
    with pytest.raises(engine.LimitExceeded, match="train.x: 300 rows is over the limit of 100"):
        engine.train(clf_model(), OptimizerSpec(), TrainConfig(), x, y, limits=limits)
    # 2**40 units: refused from the spec alone, with Python integers.
    with pytest.raises(engine.LimitExceeded, match=r"model.layers\[0\].units"):
        engine.train(ModelSpec(inputs=6, layers=[LayerSpec(2 ** 40)]), OptimizerSpec(), TrainConfig(), x, y)


@pytest.mark.parametrize("name", engine.INITIALIZERS)
def test_initializers_draw_with_the_documented_spread(name):
    m = ModelSpec(inputs=400, layers=[LayerSpec(300, "relu"), LayerSpec(10)], initializer=name, init_scale=0.2,
                  seed=7, dtype="float64")
    w = engine.init.initial_weights(m)[0][0]
    expected_std = {"uniform": 0.2 / math.sqrt(3), "normal": 0.2, "glorot_uniform": math.sqrt(2 / 700),
                    "glorot_normal": math.sqrt(2 / 700), "he_uniform": math.sqrt(2 / 400),
                    "he_normal": math.sqrt(2 / 400)}[name]
    assert w.std() == pytest.approx(expected_std, rel=0.02)
    assert abs(w.mean()) < 0.01
    again = engine.init.initial_weights(m)[0][0]
    np.testing.assert_array_equal(w, again)
    other = engine.init.initial_weights(ModelSpec(**{**m.__dict__, "seed": 8}))[0][0]
    assert not np.array_equal(w, other)


def test_shuffle_is_seeded():
    x, y = blobs()
    run = lambda seed, shuffle=True: engine.train(clf_model(), OptimizerSpec(learning_rate=0.05),
                                                  TrainConfig(epochs=3, batch_size=16, seed=seed, shuffle=shuffle),
                                                  x, y).weights[0][0]
    np.testing.assert_array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))
    assert not np.array_equal(run(1), run(1, shuffle=False))


def test_batch_size_online_and_full():
    x, y = blobs(rows=50)
    m = ModelSpec(inputs=6, layers=[LayerSpec(3, "softmax")], loss="softmax_cross_entropy", dtype="float64")
    start = engine.init.initial_weights(m)
    # Full batch (0 or >= rows): one update per epoch = one reference gradient step.
    from reference import sgd_train
    ref, _ = sgd_train(start, x, y, ["softmax"], "softmax_cross_entropy", 0.1, 2)
    for bs in (0, 50, 500):
        r = engine.train(m, OptimizerSpec(learning_rate=0.1), TrainConfig(epochs=2, batch_size=bs, shuffle=False), x, y)
        np.testing.assert_allclose(r.weights[0][0], ref[0][0], rtol=1e-12)
    ref1, _ = sgd_train(start, x, y, ["softmax"], "softmax_cross_entropy", 0.1, 2, batch=1)
    r1 = engine.train(m, OptimizerSpec(learning_rate=0.1), TrainConfig(epochs=2, batch_size=1, shuffle=False), x, y)
    np.testing.assert_allclose(r1.weights[0][0], ref1[0][0], rtol=1e-10)
