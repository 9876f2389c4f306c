"""Dropout, sample and class weights, and the plateau schedule through engine.train and train_many."""

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, log_loss
from sklearn.utils.class_weight import compute_class_weight

import fusetrain.engine as engine
from fusetrain.engine import InvalidSpec, LayerSpec, ModelSpec, OptimizerSpec, ScheduleSpec, TrainConfig
from fusetrain.engine.init import initial_weights
from reference import sgd_train


def data(rows=240, inputs=24, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, rows)
    x = rng.normal(size=(rows, inputs)) + labels[:, None] * 0.4
    return x, np.eye(classes)[labels], rng.uniform(0.2, 2.0, rows)


def model(dropout=(0.25, 0.1), seed=3, dtype="float32"):
    # 24*32 and 32*16 multiply-adds per row: the BLAS path.
    return ModelSpec(inputs=24, layers=[LayerSpec(32, "relu", dropout=dropout[0]),
                                        LayerSpec(16, "tanh", dropout=dropout[1]), LayerSpec(3, "softmax")],
                     loss="softmax_cross_entropy", initializer="he_uniform", seed=seed, dtype=dtype)


def same(a, b):
    for (wa, ba), (wb, bb) in zip(a.weights, b.weights):
        np.testing.assert_array_equal(wa, wb)
        np.testing.assert_array_equal(ba, bb)


def metrics(result) -> np.ndarray:
    """The per-epoch metrics but the timings."""
    return np.stack([result.history.column(name) for name in
                     ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate")])


ADAM = OptimizerSpec(kind="adam", learning_rate=0.01)
PLATEAU = OptimizerSpec(kind="momentum", learning_rate=0.2,
                        schedule=ScheduleSpec(kind="plateau", factor=0.5, patience=2, cooldown=1, min_lr=0.02,
                                              threshold=0.0))


def test_dropout_and_weights_are_bit_identical_at_any_thread_count():
    x, y, w = data()
    runs = [engine.train(model(), ADAM, TrainConfig(epochs=4, batch_size=32, seed=1, threads=t), x, y,
                         sample_weight=w) for t in (1, 2)]
    same(*runs)
    np.testing.assert_array_equal(metrics(runs[0]), metrics(runs[1]))


def test_dropout_changes_training_and_is_off_when_predicting():
    x, y, _ = data()
    conf = TrainConfig(epochs=3, batch_size=32, seed=1)
    plain = engine.train(model(dropout=(0, 0)), ADAM, conf, x, y)
    dropped = engine.train(model(), ADAM, conf, x, y)
    assert not np.array_equal(plain.weights[0][0], dropped.weights[0][0])
    # The final metrics and evaluate() use the whole network, no masks: they agree, and repeat.
    ev = engine.evaluate(model(), dropped.weights, x, y)
    assert dropped.final["train_loss"] == pytest.approx(ev["loss"], rel=1e-6)
    np.testing.assert_array_equal(engine.predict(model(), dropped.weights, x),
                                  engine.predict(model(), dropped.weights, x))


def test_a_rate_of_zero_everywhere_is_the_plain_job():
    x, y, _ = data()
    conf = TrainConfig(epochs=2, batch_size=32, seed=1)
    plain = engine.train(model(dropout=(0, 0)), OptimizerSpec(kind="sgd", learning_rate=0.05), conf, x, y)
    again = engine.train(model(dropout=(0.0, 0.0)), OptimizerSpec(kind="sgd", learning_rate=0.05), conf, x, y)
    same(plain, again)


def test_resume_with_dropout_weights_and_plateau_is_bit_identical():
    x, y, w = data()
    conf = TrainConfig(epochs=10, batch_size=32, seed=2, validation_fraction=0.25)
    whole = engine.train(model(), PLATEAU, conf, x, y, sample_weight=w)
    part = engine.train(model(), PLATEAU, conf, x, y, sample_weight=w, callback=lambda m: m.epoch >= 5)
    assert part.epochs_run == 5 and part.state.schedule is not None
    state = engine.TrainState.from_arrays({k: v.copy() for k, v in part.state.arrays().items()})
    rest = engine.train(model(), PLATEAU, conf, x, y, sample_weight=w, state=state)
    same(whole, rest)
    np.testing.assert_array_equal(metrics(rest), metrics(whole))


def test_plain_states_have_no_schedule_array():
    x, y, _ = data(rows=40)
    state = engine.train(model(dropout=(0, 0)), ADAM, TrainConfig(epochs=1), x, y).state
    assert "schedule" not in state.arrays()
    assert engine.TrainState.from_arrays(state.arrays()).schedule is None


def test_many_models_with_dropout_and_weights_match_single_runs():
    x, y, w = data()
    opts = [ADAM, OptimizerSpec(kind="sgd", learning_rate=0.05)]
    confs = [TrainConfig(epochs=3, batch_size=32, seed=s, class_weight="balanced") for s in (4, 5)]
    batch = engine.train_many(model(), opts, confs, x, y, seeds=[7, 8], threads=2, sample_weight=w)
    for opt, conf, seed, got in zip(opts, confs, [7, 8], batch):
        alone = engine.train(model(seed=seed), opt, conf, x, y, sample_weight=w)
        same(got, alone)
        assert got.history.column("train_loss").tolist() == alone.history.column("train_loss").tolist()
        assert got.final == alone.final


def test_integer_weights_equal_repeated_rows():
    # Full-batch SGD: the weighted mean loss over rows is the plain mean over rows repeated w_r times.
    x, y, _ = data(rows=30)
    w = np.arange(30) % 3          # 0, 1 or 2 copies
    m = model(dropout=(0, 0), dtype="float64")
    opt, conf = OptimizerSpec(kind="sgd", learning_rate=0.1), TrainConfig(epochs=5, batch_size=0, shuffle=False)
    weighted = engine.train(m, opt, conf, x, y, sample_weight=w)
    repeated = engine.train(m, opt, conf, np.repeat(x, w, axis=0), np.repeat(y, w, axis=0))
    for (wa, ba), (wb, bb) in zip(weighted.weights, repeated.weights):
        np.testing.assert_allclose(wa, wb, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ba, bb, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(weighted.history.column("train_loss"), repeated.history.column("train_loss"),
                               rtol=1e-10)


def test_weighted_training_matches_the_numpy_reference():
    x, y, w = data(rows=40)
    m = ModelSpec(inputs=24, layers=[LayerSpec(6, "tanh"), LayerSpec(3, "sigmoid")], loss="half_sse",
                  initializer="normal", init_scale=0.3, seed=1, dtype="float64")
    opt, conf = OptimizerSpec(kind="sgd", learning_rate=0.2), TrainConfig(epochs=4, batch_size=0, shuffle=False)
    # Integer weights (1 to 4), so the reference's plain mean over repeated rows is the weighted mean.
    wi = np.rint(w * 1.5).astype(int) + 1
    got = engine.train(m, opt, conf, x, y, sample_weight=wi)
    ref, history = sgd_train(initial_weights(m), np.repeat(x, wi, axis=0), np.repeat(y, wi, axis=0), ["tanh", "sigmoid"],
                             "half_sse", 0.2, 4)
    for (wa, ba), (wb, bb) in zip(got.weights, ref):
        np.testing.assert_allclose(wa, wb, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ba, bb, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.history.column("train_loss"), history, rtol=1e-9)


def test_weighted_metrics_match_scikit_learn():
    x, y, w = data()
    r = engine.train(model(dropout=(0, 0), dtype="float64"), ADAM, TrainConfig(epochs=3, batch_size=32), x, y,
                     sample_weight=w)
    p = engine.predict(model(dtype="float64"), r.weights, x)
    labels = y.argmax(1)
    assert r.final["train_loss"] == pytest.approx(log_loss(labels, p, sample_weight=w), rel=1e-6)
    assert r.final["train_accuracy"] == pytest.approx(accuracy_score(labels, p.argmax(1), sample_weight=w))


def test_balanced_class_weights_are_scikit_learns():
    x, y, _ = data(rows=90)
    y = np.eye(3)[np.r_[np.zeros(60, int), np.ones(20, int), np.full(10, 2)]]
    conf = TrainConfig(epochs=1, batch_size=0, class_weight="balanced")
    m = model(dropout=(0, 0), dtype="float64")
    labels = y.argmax(1)
    expect = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    np.testing.assert_allclose(engine.spec.class_weights("balanced", y), expect)
    # Balanced class weights train as the same per-row weights given as sample weights.
    same(engine.train(m, ADAM, conf, x, y), engine.train(m, ADAM, TrainConfig(epochs=1, batch_size=0), x, y,
                                                         sample_weight=expect[labels]))
    explicit = TrainConfig(epochs=1, batch_size=0, class_weight=[1.0, 2.0, 0.5])
    same(engine.train(m, ADAM, explicit, x, y, sample_weight=np.full(90, 2.0)),
         engine.train(m, ADAM, TrainConfig(epochs=1, batch_size=0), x, y,
                      sample_weight=2.0 * np.array([1.0, 2.0, 0.5])[labels]))


def test_class_weights_of_a_single_01_output():
    x, y, _ = data(rows=50)
    yb = (y.argmax(1) == 0).astype(float)[:, None]
    m = ModelSpec(inputs=24, layers=[LayerSpec(4, "tanh"), LayerSpec(1, "sigmoid")], loss="binary_cross_entropy")
    r = engine.train(m, ADAM, TrainConfig(epochs=2, class_weight=[1.0, 3.0]), x, yb)
    assert math.isfinite(r.final["train_loss"])
    with pytest.raises(InvalidSpec) as err:
        engine.train(m, ADAM, TrainConfig(epochs=2, class_weight=[1.0, 3.0, 1.0]), x, yb)
    assert err.value.field == "training.class_weight"


def keras_plateau(values, lr, factor, patience, cooldown, min_lr, threshold):
    """Keras's ReduceLROnPlateau (mode min, min_delta) written out: the rate of each epoch."""
    rates, best, wait, cool = [], math.inf, 0, 0
    for v in values:
        rates.append(lr)
        if cool > 0:
            cool -= 1
            wait = 0
        if v < best - threshold:
            best, wait = v, 0
        elif cool <= 0:
            wait += 1
            if wait >= patience and lr > min_lr:
                lr, cool, wait = max(lr * factor, min_lr), cooldown, 0
    return rates


def test_plateau_drops_the_rate_as_keras_does():
    x, y, _ = data()
    conf = TrainConfig(epochs=30, batch_size=16, seed=2, validation_fraction=0.3)
    r = engine.train(model(dropout=(0, 0)), PLATEAU, conf, x, y)
    rates = r.history.column("learning_rate")
    s = PLATEAU.schedule
    assert rates.tolist() == keras_plateau(r.history.column("val_loss"), 0.2, s.factor, s.patience, s.cooldown,
                                           s.min_lr, s.threshold)
    assert rates[0] == 0.2 and rates.min() < 0.2       # it dropped at least once
    train_loss = OptimizerSpec(kind="sgd", learning_rate=0.1,
                               schedule=ScheduleSpec(kind="plateau", monitor="train_loss", patience=1))
    r = engine.train(model(dropout=(0, 0)), train_loss, TrainConfig(epochs=6), x, y)
    assert r.history.column("learning_rate").tolist() == keras_plateau(
        r.history.column("train_loss"), 0.1, 0.1, 1, 0, 0.0, 1e-4)


@pytest.mark.parametrize("make,field", [
    (lambda: (model(dropout=(1.0, 0)), ADAM, TrainConfig()), "model.layers[0].dropout"),
    (lambda: (model(dropout=(-0.1, 0)), ADAM, TrainConfig()), "model.layers[0].dropout"),
    (lambda: (ModelSpec(inputs=24, layers=[LayerSpec(3, "softmax", dropout=0.2)], loss="softmax_cross_entropy"),
              ADAM, TrainConfig()), "model.layers[0].dropout"),
    (lambda: (model(), OptimizerSpec(schedule=ScheduleSpec(kind="plateau", factor=1.0)),
              TrainConfig(validation_fraction=0.2)), "optimizer.schedule.factor"),
    (lambda: (model(), OptimizerSpec(schedule=ScheduleSpec(kind="plateau", patience=0)),
              TrainConfig(validation_fraction=0.2)), "optimizer.schedule.patience"),
    (lambda: (model(), OptimizerSpec(schedule=ScheduleSpec(kind="plateau", cooldown=-1)),
              TrainConfig(validation_fraction=0.2)), "optimizer.schedule.cooldown"),
    (lambda: (model(), OptimizerSpec(schedule=ScheduleSpec(kind="plateau", threshold=-1.0)),
              TrainConfig(validation_fraction=0.2)), "optimizer.schedule.threshold"),
    (lambda: (model(), OptimizerSpec(schedule=ScheduleSpec(kind="plateau", monitor="loss")),
              TrainConfig(validation_fraction=0.2)), "optimizer.schedule.monitor"),
    (lambda: (model(), OptimizerSpec(schedule=ScheduleSpec(kind="plateau")), TrainConfig()),
     "optimizer.schedule.monitor"),
    (lambda: (model(), ADAM, TrainConfig(class_weight="auto")), "training.class_weight"),
    (lambda: (model(), ADAM, TrainConfig(class_weight=[1.0, -1.0, 1.0])), "training.class_weight[1]"),
    (lambda: (model(), ADAM, TrainConfig(class_weight=[1.0, 1.0])), "training.class_weight"),
])
def test_bad_settings_name_their_field(make, field):
    x, y, _ = data(rows=40)
    m, opt, conf = make()
    with pytest.raises(InvalidSpec) as err:
        engine.train(m, opt, conf, x, y)
    assert err.value.field == field, str(err.value)


@pytest.mark.parametrize("weights,field", [
    (np.ones(39), "train.sample_weight"), (-np.ones(40), "train.sample_weight"),
    (np.zeros(40), "train.sample_weight"), (np.full(40, np.nan), "train.sample_weight"),
    (np.ones((40, 2)), "train.sample_weight"),
])
def test_bad_sample_weights_name_their_field(weights, field):
    x, y, _ = data(rows=40)
    with pytest.raises(InvalidSpec) as err:
        engine.train(model(), ADAM, TrainConfig(epochs=1), x, y, sample_weight=weights)
    assert err.value.field == field, str(err.value)


def test_train_many_refuses_a_plateau_and_mixed_class_weights():
    x, y, _ = data(rows=40)
    plateau = OptimizerSpec(schedule=ScheduleSpec(kind="plateau", monitor="train_loss"))
    with pytest.raises(InvalidSpec) as err:
        engine.train_many(model(), [plateau], [TrainConfig(epochs=1)], x, y)
    assert err.value.field == "optimizers[0].schedule.kind"
    with pytest.raises(InvalidSpec) as err:
        engine.train_many(model(), [ADAM], [TrainConfig(epochs=1), TrainConfig(epochs=1, class_weight="balanced")],
                          x, y)
    assert err.value.field == "configs[1].class_weight"
