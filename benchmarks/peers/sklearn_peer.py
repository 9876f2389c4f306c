"""scikit-learn MLPClassifier, solver="sgd" with no momentum, a constant rate, no early stop.

The initial weights are set by a one-epoch warm-start fit (which also warms the code up),
after which the coefficients are overwritten with the shared initial weights and the timed
fit runs all the epochs. scikit-learn's classifier has a logistic (2 classes) or softmax
output with log-loss, so on the half-squared-error shapes (tiny, small) its loss differs;
the arithmetic per row is the same to within the output layer.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from compare_shapes import Shape
from peers import INNER

LIBRARY = "sklearn"
IMPORTS = ("sklearn.neural_network",)   # what the memory table's "before" figure has imported
OPTIMIZERS = ("sgd",)


def prepare(threads: int) -> None:
    pass


def version() -> str:
    import sklearn
    return sklearn.__version__


def _model(shape: Shape):
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(
        hidden_layer_sizes=shape.sizes[1:-1],
        activation="logistic" if shape.hidden == "sigmoid" else "relu",
        solver="sgd", alpha=0.0, batch_size=shape.batch, learning_rate="constant",
        learning_rate_init=shape.learning_rate, momentum=0.0, nesterovs_momentum=False,
        max_iter=1, shuffle=not shape.full_batch, random_state=1, tol=0.0,
        n_iter_no_change=10**9, early_stopping=False, warm_start=True,
    )


def _reset(model, layers: list) -> None:
    """Back to the shared initial weights, with no memory of the previous fit's losses."""
    for k, (w, b) in enumerate(layers):
        model.coefs_[k][...] = w.T         # scikit-learn stores W as (inputs, units)
        model.intercepts_[k][...] = b
    model.best_loss_ = np.inf
    model._no_improvement_count = 0


def train_seeds(shape: Shape, data: dict, layers: list, threads: int, seeds: list) -> list:
    """One run per shuffle seed (random_state, which a fit draws its shuffles from) from the same weights."""
    import threadpoolctl
    from sklearn.exceptions import ConvergenceWarning

    x, labels = data["x"], data["labels"]
    model = _model(shape)
    out = []
    with threadpoolctl.threadpool_limits(limits=threads, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, labels)                       # sets up the layer arrays
        model.max_iter = shape.epochs
        for seed in seeds:
            _reset(model, layers)
            model.random_state = seed
            model.fit(x, labels)
            out.append([(c.T.copy(), i.copy()) for c, i in zip(model.coefs_, model.intercepts_)])
    return out


def train(shape: Shape, data: dict, layers: list, threads: int, optimizer: str = "sgd") -> dict:
    import threadpoolctl
    from sklearn.exceptions import ConvergenceWarning

    if optimizer != "sgd":
        raise ValueError(f"sklearn peer runs plain SGD only, not {optimizer}")
    x, labels = data["x"], data["labels"]
    model = _model(shape)
    with threadpoolctl.threadpool_limits(limits=threads, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, labels)                       # warm-up, and sets up the layer arrays
        model.max_iter = shape.epochs
        seconds, weights = float("inf"), None
        for _ in range(INNER):
            _reset(model, layers)
            t0 = time.perf_counter()
            model.fit(x, labels)
            took = time.perf_counter() - t0
            if took < seconds:
                seconds = took
                weights = [(c.T.copy(), i.copy()) for c, i in zip(model.coefs_, model.intercepts_)]
    assert model.coefs_[0].dtype == np.float32, "scikit-learn trained in float64"
    return {"seconds": seconds, "compile_seconds": 0.0, "samples": shape.rows * shape.epochs,
            "weights": weights, "threads": threads, "epochs_run": int(model.n_iter_)}
