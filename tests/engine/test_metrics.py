"""engine/metrics.py against scikit-learn's `metrics`, and the scores a training run reports."""

from __future__ import annotations

import math

import numpy as np
import pytest

sk = pytest.importorskip("sklearn.metrics", reason="scikit-learn checks the scores")

from fusetrain import engine  # noqa: E402
from fusetrain.engine.buffers import accuracy_rule  # noqa: E402
from fusetrain.engine.kernels.losses import ARGMAX, NO_ACCURACY, THRESHOLD  # noqa: E402
from fusetrain.engine.metrics import Scorer, class_codes  # noqa: E402

WEIGHTS = (None, "weights")


def _weights(kind, n, rng):
    return None if kind is None else rng.uniform(0.1, 3.0, n)


def _rmse(y, out, w):
    if hasattr(sk, "root_mean_squared_error"):
        return sk.root_mean_squared_error(y, out, sample_weight=w)
    per = np.sqrt(sk.mean_squared_error(y, out, sample_weight=w, multioutput="raw_values"))
    return float(per.mean())


@pytest.mark.parametrize("outputs", [1, 3])
@pytest.mark.parametrize("kind", WEIGHTS)
def test_regression_scores_match_sklearn(outputs, kind):
    rng = np.random.default_rng(outputs)
    y = rng.normal(size=(40, outputs)) * [1.0, 5.0, 0.1][:outputs]
    out = (y + rng.normal(scale=0.3, size=y.shape)).astype(np.float32)
    w = _weights(kind, 40, rng)
    got = Scorer(y, NO_ACCURACY, w).scores(out)
    assert set(got) == {"mae", "rmse", "r2"}
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(y, out, sample_weight=w), rel=1e-12)
    assert got["rmse"] == pytest.approx(_rmse(y, out, w), rel=1e-12)
    assert got["r2"] == pytest.approx(sk.r2_score(y, out, sample_weight=w), rel=1e-12)


def test_r2_of_a_constant_target_follows_sklearn():
    y = np.array([[2.0, 1.0], [2.0, 2.0], [2.0, 3.0]])
    for out in (y.copy(), y + [[0.5, 0.0]] * 3):
        assert Scorer(y, NO_ACCURACY).scores(out)["r2"] == pytest.approx(sk.r2_score(y, out))
    with pytest.warns(Warning, match="less than two samples"):
        want = sk.r2_score(y[:1], y[:1] + 0.5)          # not defined for one row: NaN
    assert math.isnan(want) and math.isnan(Scorer(y[:1], NO_ACCURACY).scores(y[:1] + 0.5)["r2"])


def _one_hot(labels, k):
    return np.eye(k)[labels]


@pytest.mark.parametrize("kind", WEIGHTS)
def test_one_hot_scores_match_sklearn(kind):
    rng = np.random.default_rng(3)
    true = rng.integers(0, 4, 60)
    true[true == 3] = 0                                  # class 3 never true ...
    out = rng.random((60, 4))
    out[:, 3] = 0                                         # ... nor predicted: left out of the average
    out[:, 2] += 0.5 * (true == 2)
    w = _weights(kind, 60, rng)
    s = Scorer(_one_hot(true, 4), ARGMAX, w)
    pred = out.argmax(axis=1)
    cm = s.confusion(out)
    np.testing.assert_allclose(cm, sk.confusion_matrix(true, pred, labels=range(4), sample_weight=w))
    assert s.scores(out)["macro_f1"] == pytest.approx(sk.f1_score(true, pred, average="macro",
                                                                  sample_weight=w), rel=1e-12)
    final = s.final(out, "val_")
    assert set(final) == {"val_macro_f1", "val_confusion"} and np.shape(final["val_confusion"]) == (4, 4)


@pytest.mark.parametrize("kind", WEIGHTS)
def test_binary_scores_match_sklearn(kind):
    rng = np.random.default_rng(4)
    y = (rng.random((50, 1)) > 0.6).astype(np.float64)
    out = np.clip(y + rng.normal(scale=0.4, size=y.shape), 0, 1)
    w = _weights(kind, 50, rng)
    s = Scorer(y, THRESHOLD, w)
    true, pred = y[:, 0] > 0.5, out[:, 0] > 0.5
    np.testing.assert_allclose(s.confusion(out), sk.confusion_matrix(true, pred, labels=[False, True],
                                                                     sample_weight=w))
    assert s.scores(out)["macro_f1"] == pytest.approx(sk.f1_score(true, pred, average="macro",
                                                                  sample_weight=w), rel=1e-12)
    # Every row of one class, every prediction right: only that class counts, F1 1.
    ones = np.ones((5, 1))
    assert Scorer(ones, THRESHOLD).scores(ones)["macro_f1"] == 1.0


@pytest.mark.parametrize("kind", WEIGHTS)
def test_multi_label_scores_match_sklearn(kind):
    rng = np.random.default_rng(5)
    y = (rng.random((30, 3)) > 0.5).astype(np.float64)
    y[:, 2] = 0                                          # an output never on: F1 0 in the average
    out = np.clip(y + rng.normal(scale=0.45, size=y.shape), 0, 1)
    out[:, 2] = 0
    w = _weights(kind, 30, rng)
    s = Scorer(y, THRESHOLD, w)
    true, pred = y > 0.5, out > 0.5
    np.testing.assert_allclose(s.confusion(out), sk.multilabel_confusion_matrix(true, pred, sample_weight=w))
    with np.errstate(all="ignore"):
        want = sk.f1_score(true, pred, average="macro", sample_weight=w, zero_division=0)
    assert s.scores(out)["macro_f1"] == pytest.approx(want, rel=1e-12)


def test_class_codes_follow_the_accuracy_rule():
    one_hot = _one_hot([2, 0, 1, 2], 3)
    assert class_codes(one_hot, "half_sse").tolist() == [2, 0, 1, 2]
    assert class_codes(np.array([[0.0], [1.0], [1.0]]), "half_sse").tolist() == [0, 1, 1]
    pairs = np.array([[0, 1], [1, 1], [0, 1], [0, 0]], dtype=float)    # multi-label: each combination
    codes = class_codes(pairs, "binary_cross_entropy")
    assert codes[0] == codes[2] and len(set(codes.tolist())) == 3
    assert class_codes(np.array([[0.3], [1.2]]), "mse") is None
    assert accuracy_rule("mse", np.array([[0.3], [1.2]])) == NO_ACCURACY


def _blobs(n=90, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 4)) + labels[:, None] * 1.5
    return x, _one_hot(labels, 3)


def _model(outputs, activation, loss):
    return engine.ModelSpec(4, [engine.LayerSpec(6, "tanh"), engine.LayerSpec(outputs, activation)],
                            loss=loss, seed=1, dtype="float64")


def test_a_classifier_reports_f1_and_confusion_per_epoch_and_at_the_end():
    x, y = _blobs()
    model = _model(3, "softmax", "softmax_cross_entropy")
    r = engine.train(model, engine.OptimizerSpec("adam", learning_rate=0.05),
                     engine.TrainConfig(epochs=15, batch_size=16, threads=1), x[:60], y[:60],
                     x_val=x[60:], y_val=y[60:])
    f1 = r.history.column("val_macro_f1")
    assert len(f1) == 15 and np.all((f1 >= 0) & (f1 <= 1))
    assert np.isnan(r.history.column("val_r2")).all()
    true_val = y[60:].argmax(axis=1)
    pred_val = engine.predict(model, r.weights, x[60:]).argmax(axis=1)
    assert r.final["val_macro_f1"] == pytest.approx(sk.f1_score(true_val, pred_val, average="macro"))
    assert f1[-1] == r.final["val_macro_f1"]          # the last epoch's model is the final one
    np.testing.assert_array_equal(r.final["val_confusion"], sk.confusion_matrix(true_val, pred_val,
                                                                                labels=range(3)))
    pred_train = engine.predict(model, r.weights, x[:60]).argmax(axis=1)
    assert np.sum(r.final["train_confusion"]) == 60
    assert r.final["train_macro_f1"] == pytest.approx(sk.f1_score(y[:60].argmax(axis=1), pred_train,
                                                                  average="macro"))
    assert "train_r2" not in r.final


def test_a_regression_reports_mae_rmse_r2():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(80, 4))
    y = np.stack([np.sin(x[:, 0]) + x[:, 1], x[:, 2] * x[:, 3]], axis=1)
    model = _model(2, "identity", "mse")
    r = engine.train(model, engine.OptimizerSpec("adam", learning_rate=0.02),
                     engine.TrainConfig(epochs=30, batch_size=8, threads=1, validation_fraction=0.25), x, y)
    for name in ("val_mae", "val_rmse", "val_r2"):
        column = r.history.column(name)
        assert len(column) == 30 and np.isfinite(column).all()
        assert column[-1] == pytest.approx(r.final[name], rel=1e-12)
    assert r.history.column("val_r2")[-1] > r.history.column("val_r2")[0]          # it learns
    assert np.isnan(r.history.column("val_macro_f1")).all() and "train_confusion" not in r.final
    out = engine.predict(model, r.weights, x)
    scores = engine.evaluate(model, r.weights, x, y)
    assert scores["r2"] == pytest.approx(sk.r2_score(y, out), rel=1e-12)
    assert scores["mae"] == pytest.approx(sk.mean_absolute_error(y, out), rel=1e-12)
    assert scores["rmse"] == pytest.approx(_rmse(y, out, None), rel=1e-12)


def test_scoring_the_validation_rows_leaves_the_weights_bit_identical():
    # A separate validation set changes nothing in training: the weights with the per-epoch
    # scores computed equal those of the same run without them, bit for bit.
    x, y = _blobs()
    model = engine.ModelSpec(4, [engine.LayerSpec(6, "tanh"), engine.LayerSpec(3, "sigmoid")], seed=3)
    args = (model, engine.OptimizerSpec("momentum", learning_rate=0.1),
            engine.TrainConfig(epochs=12, batch_size=8, threads=1), x[:60], y[:60])
    plain = engine.train(*args)
    scored = engine.train(*args, x_val=x[60:], y_val=y[60:])
    assert not math.isnan(scored.history.column("val_macro_f1")[-1])
    for (w0, b0), (w1, b1) in zip(plain.weights, scored.weights):
        assert w0.tobytes() == w1.tobytes() and b0.tobytes() == b1.tobytes()


def test_a_history_saved_before_the_new_metrics_resumes_with_them_unset():
    old = np.arange(16, dtype=np.float64).reshape(2, 8)            # 8 columns: the metrics before these
    h = engine.result.History(old)
    assert len(h) == 2 and h[1].samples_per_second == 15.0 and math.isnan(h[1].val_r2)
