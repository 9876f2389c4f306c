"""FusetrainClassifier and FusetrainRegressor: scikit-learn's own estimator checks over both, the
meta-estimators (clone, Pipeline, GridSearchCV, cross_val_score), labels, histories, seeds, and a
fit on a real in-process server (server=) against the same fit in this process."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the estimators need scikit-learn (pip install scikit-learn)")

from sklearn.base import clone, is_classifier, is_regressor  # noqa: E402
from sklearn.datasets import load_iris, make_regression  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fusetrain.client.estimators import FusetrainClassifier, FusetrainRegressor  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

# Small networks and few epochs keep scikit-learn's ~50 checks per estimator quick; the learning
# rate is raised so that the checks' accuracy and R² floors are still met in those epochs.
CHECKED = [
    FusetrainClassifier(hidden_layer_sizes=(16,), max_iter=60, learning_rate=0.02, random_state=0),
    FusetrainRegressor(hidden_layer_sizes=(16,), max_iter=60, learning_rate=0.02, random_state=0),
]


def expected_failed_checks(estimator) -> dict:
    """Checks that cannot pass, and why."""
    return {"check_sample_weight_equivalence_on_dense_data":
            "float32 training: weighted rows and repeated rows sum in different orders, so the "
            "probabilities differ in the 7th digit (the check's rtol is 1e-7); in float64 they agree "
            "(test_sample_weight_is_repeated_rows_in_float64)"}


@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def iris():
    x, y = load_iris(return_X_y=True)
    return x, np.array(["setosa", "versicolor", "virginica"])[y]


def small(cls, **params):
    return cls(**{"hidden_layer_sizes": (8,), "max_iter": 150, "learning_rate": 0.02, "random_state": 0,
                  **params})


def test_import_needs_no_numba():
    code = ("import sys, fusetrain.client.estimators, fusetrain.client as c; "
            "assert c.FusetrainClassifier is fusetrain.client.estimators.FusetrainClassifier; "
            "assert 'numba' not in sys.modules and 'fusetrain.engine' not in sys.modules, "
            "sorted(m for m in sys.modules if 'numba' in m or 'engine' in m)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_tags_and_defaults():
    assert is_classifier(FusetrainClassifier()) and is_regressor(FusetrainRegressor())
    params = FusetrainClassifier().get_params()
    assert params["hidden_layer_sizes"] == (100,) and params["max_iter"] == 200 and params["server"] is None
    with pytest.raises(NotFittedError):
        FusetrainClassifier().predict(np.zeros((2, 3)))


def test_string_labels_proba_history():
    x, y = iris()
    clf = make_pipeline(StandardScaler(), small(FusetrainClassifier)).fit(x, y)
    est = clf[-1]
    assert list(est.classes_) == ["setosa", "versicolor", "virginica"]
    assert est.n_features_in_ == 4 and est.n_outputs_ == 3 and est.out_activation_ == "softmax"
    assert set(clf.predict(x)) <= set(y) and clf.score(x, y) > 0.9
    proba = clf.predict_proba(x)
    assert proba.shape == (150, 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert np.array_equal(clf.predict(x), est.classes_[proba.argmax(axis=1)])
    assert len(est.loss_curve_) == est.n_iter_ == 150 and est.loss_curve_[-1] < est.loss_curve_[0]
    assert np.array_equal(est.history_["epoch"], np.arange(1, 151))
    assert np.array_equal(est.history_["train_loss"], est.loss_curve_)
    assert np.isnan(est.history_["val_loss"]).all()
    assert [c.shape for c in est.coefs_] == [(4, 8), (8, 3)] and [b.shape for b in est.intercepts_] == [(8,), (3,)]
    assert est.stop_reason_ == "COMPLETED" and est.backend_ == "engine" and est.seed_ == 0


def test_binary_and_multilabel():
    x, y = iris()
    binary = np.where(y == "setosa", "yes", "no")
    clf = small(FusetrainClassifier).fit(StandardScaler().fit_transform(x), binary)
    assert clf.n_outputs_ == 1 and clf.out_activation_ == "sigmoid" and list(clf.classes_) == ["no", "yes"]
    assert clf.predict_proba(x).shape == (150, 2)
    labels = np.stack([y == "setosa", y != "virginica"], axis=1).astype(int)
    ml = small(FusetrainClassifier).fit(StandardScaler().fit_transform(x), labels)
    assert ml.predict(StandardScaler().fit_transform(x)).shape == (150, 2)
    assert ml.score(StandardScaler().fit_transform(x), labels) > 0.8


def test_single_class_refused():
    with pytest.raises(ValueError, match="class"):
        small(FusetrainClassifier).fit(np.zeros((5, 2)), ["a"] * 5)


def test_multi_output_regression():
    x, y = make_regression(n_samples=200, n_features=5, n_targets=3, noise=1.0, random_state=0)
    y = StandardScaler().fit_transform(y)
    reg = small(FusetrainRegressor, max_iter=300).fit(x, y)
    assert reg.predict(x).shape == (200, 3) and reg.n_outputs_ == 3 and reg.score(x, y) > 0.9
    one = small(FusetrainRegressor).fit(x, y[:, 0])
    assert one.predict(x).shape == (200,)


def test_random_state_semantics():
    x, y = iris()
    a = small(FusetrainClassifier).fit(x, y)
    b = clone(a).fit(x, y)
    assert all(np.array_equal(p, q) for p, q in zip(a.coefs_, b.coefs_))      # an int: bit for bit
    c = small(FusetrainClassifier, random_state=1).fit(x, y)
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])
    d = small(FusetrainClassifier, random_state=None)
    seeds = {d.fit(x, y).seed_ for _ in range(3)}
    assert len(seeds) == 3                                                     # None: a new seed per fit
    rs = np.random.RandomState(7)
    e1 = small(FusetrainClassifier, random_state=rs).fit(x, y).seed_
    e2 = small(FusetrainClassifier, random_state=np.random.RandomState(7)).fit(x, y).seed_
    assert e1 == e2


def test_early_stopping():
    x, y = iris()
    clf = small(FusetrainClassifier, max_iter=2000, early_stopping=True, validation_fraction=0.2,
                n_iter_no_change=5, learning_rate=0.05).fit(StandardScaler().fit_transform(x), y)
    assert clf.stop_reason_ == "EARLY_STOPPED" and clf.n_iter_ < 2000
    assert clf.best_epoch_ <= clf.n_iter_ and not np.isnan(clf.history_["val_loss"]).any()
    tl = small(FusetrainClassifier, max_iter=5000, early_stopping="train_loss", tol=1e-3).fit(x, y)
    assert tl.stop_reason_ == "EARLY_STOPPED" and np.isnan(tl.history_["val_loss"]).all()


def test_bad_parameters_raise_in_fit_not_init():
    x, y = iris()
    for params in ({"activation": "swish"}, {"optimizer": "lbfgs"}, {"max_iter": 0}, {"batch_size": -1},
                   {"hidden_layer_sizes": (0,)}, {"dtype": "float16"}, {"early_stopping": "yes"},
                   {"learning_rate": -1.0}):
        est = FusetrainClassifier(**params)                 # nothing checked here
        with pytest.raises(ValueError):
            est.fit(x, y)


def test_grid_search_cross_val_pickle():
    x, y = iris()
    pipe = make_pipeline(StandardScaler(), small(FusetrainClassifier, max_iter=80))
    grid = GridSearchCV(pipe, {"fusetrainclassifier__hidden_layer_sizes": [(4,), (8,)],
                               "fusetrainclassifier__learning_rate": [0.01, 0.05]}, cv=3)
    grid.fit(x, y)
    assert grid.best_score_ > 0.85 and len(grid.cv_results_["params"]) == 4
    scores = cross_val_score(pipe, x, y, cv=5)
    assert scores.shape == (5,) and scores.mean() > 0.85
    fitted = pipe.fit(x, y)
    again = pickle.loads(pickle.dumps(fitted))
    assert np.array_equal(again.predict_proba(x), fitted.predict_proba(x))


# ------------------------------------------------------------------------------------ server=

@pytest.fixture(scope="module")
def server_address(tmp_path_factory):
    """An in-process fusetrain server on 127.0.0.1 (the service tests' set-up: real servicer,
    manager and store, jobs on a thread of this process)."""
    pytest.importorskip("fusetrain.service.server")
    sys.path.insert(0, str(ROOT / "tests" / "service"))
    from service_helpers import ThreadExecutor

    from fusetrain.service.config import ServerConfig, ServiceLimits
    from fusetrain.service.server import Server
    limits = ServiceLimits(max_queued_jobs=50, max_dataset_bytes=8 << 20, max_epochs=100_000,
                           max_parameters=1_000_000, max_job_seconds=600)
    server = Server(ServerConfig(address="127.0.0.1:0", data_dir=tmp_path_factory.mktemp("sk") / "data",
                                 workers=1, limits=limits), executor_factory=ThreadExecutor)
    server.start()
    try:
        yield server.address
    finally:
        server.stop(grace=1)


def test_server_fit_matches_in_process(server_address):
    x, y = iris()
    x = StandardScaler().fit_transform(x)
    local = small(FusetrainClassifier).fit(x, y)
    remote = small(FusetrainClassifier, server=server_address).fit(x, y)
    assert remote.backend_ == f"server {server_address}" and remote.job_id_
    assert list(remote.classes_) == list(local.classes_)
    for a, b in zip(local.coefs_ + local.intercepts_, remote.coefs_ + remote.intercepts_):
        assert np.array_equal(a, b)                        # the same job: the same bits
    assert np.array_equal(remote.history_["train_loss"], local.history_["train_loss"])
    assert np.allclose(remote.predict_proba(x), local.predict_proba(x), atol=1e-5)
    assert np.array_equal(remote.predict(x), local.predict(x))
    reg = small(FusetrainRegressor, server=server_address).fit(x[:, :3], x[:, 3])
    assert reg.score(x[:, :3], x[:, 3]) > 0.8
    # Sample weights and the plateau schedule travel with the job: the same bits again.
    w = 1.0 + (np.arange(len(x)) % 3)
    local = small(FusetrainClassifier, schedule="plateau").fit(x, y, sample_weight=w)
    remote = small(FusetrainClassifier, schedule="plateau", server=server_address).fit(x, y, sample_weight=w)
    for a, b in zip(local.coefs_ + local.intercepts_, remote.coefs_ + remote.intercepts_):
        assert np.array_equal(a, b)


def test_server_in_grid_search_and_large_data(server_address):
    x, y = iris()
    pipe = make_pipeline(StandardScaler(), small(FusetrainClassifier, max_iter=60, server=server_address))
    grid = GridSearchCV(pipe, {"fusetrainclassifier__hidden_layer_sizes": [(4,), (8,)]}, cv=2).fit(x, y)
    assert grid.best_score_ > 0.8
    rng = np.random.default_rng(0)
    big = rng.normal(size=(3000, 10))                      # 240 KB: uploaded as a dataset, not inline
    target = big[:, 0] - 2 * big[:, 1]
    reg = small(FusetrainRegressor, max_iter=30, server=server_address).fit(big, target)
    assert reg.score(big, target) > 0.9


def test_server_errors_surface(server_address):
    from fusetrain.client import InvalidArgument
    x, y = iris()
    with pytest.raises(InvalidArgument, match="learning_rate"):
        small(FusetrainClassifier, learning_rate=0.0, server=server_address).fit(x, y)


def test_sklearn_compare_example_runs(capsys):
    """examples/sklearn_compare.py end to end on one data set, two folds, a few epochs."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("sklearn_compare", ROOT / "examples" / "sklearn_compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--folds", "2", "--epochs", "3", "--datasets", "digits"]) == 0
    out = capsys.readouterr().out
    assert "| digits | 1797 x 64, 10 classes | 64-64-10 |" in out


@pytest.mark.parametrize("cls", [FusetrainClassifier, FusetrainRegressor])
def test_sample_weight_is_repeated_rows_in_float64(cls):
    x, y = iris()
    if cls is FusetrainRegressor:
        y = x[:, 0] * 2 - x[:, 1]
    w = np.arange(len(x)) % 3
    est = small(cls, dtype="float64", batch_size=0, shuffle=False)
    weighted = clone(est).fit(x, y, sample_weight=w)
    repeated = clone(est).fit(np.repeat(x, w, axis=0), np.repeat(y, w, axis=0))
    for a, b in zip(weighted.coefs_, repeated.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # Unit weights are the unweighted fit, bit for bit.
    ones = clone(est).fit(x, y, sample_weight=np.ones(len(x)))
    plain = clone(est).fit(x, y)
    assert all(np.array_equal(a, b) for a, b in zip(ones.coefs_, plain.coefs_))
    with pytest.raises(ValueError, match="[Nn]egative"):
        clone(est).fit(x, y, sample_weight=-np.ones(len(x)))
