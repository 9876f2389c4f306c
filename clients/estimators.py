"""scikit-learn estimators that train with fusetrain: FusetrainClassifier and FusetrainRegressor.

    from fusetrain.client.estimators import FusetrainClassifier
    clf = FusetrainClassifier(hidden_layer_sizes=(32,), max_iter=200, random_state=0).fit(X, y)
    clf.predict(X), clf.predict_proba(X), clf.score(X, y), clf.loss_curve_

They follow scikit-learn's estimator conventions (parameters stored as given by __init__ and
validated in fit, fitted attributes end in `_`, `random_state` as scikit-learn means it), so they
work under clone, in a Pipeline, in GridSearchCV and cross_val_score. By default `fit` runs
fusetrain's engine in this process (imported inside `fit`, so importing this module needs
scikit-learn and numpy, not numba); with `server="host:port"` it sends the job to a fusetrain
server through `fusetrain.client.Client` (the rows inline in the job when small, else uploaded
once as a content-addressed dataset), waits for it and fetches the weights. Predictions are then
computed here: with the engine after an in-process fit, with numpy (float64) after a server fit,
so a server-fitted estimator predicts, pickles and unpickles without numba or a server.

The model is an MLP with `hidden_layer_sizes` hidden layers of `activation`, then
- classifier: one sigmoid output with binary cross-entropy for two classes, a softmax over the
  classes with softmax cross-entropy for more, one sigmoid per label (binary cross-entropy) for a
  multilabel indicator matrix;
- regressor: identity outputs (as many as y has columns) with the half squared error
  (½·Σ over outputs, mean over rows).
Inputs are used as given: put a StandardScaler in front (a Pipeline), as with MLPClassifier.
"""

from __future__ import annotations

import numbers
import time
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from fusetrain.wire.metrics import EPOCH_FIELDS

from .estimator_parts import engine_model, job_spec, numpy_forward, schedule_fields

__all__ = ["FusetrainClassifier", "FusetrainRegressor"]

# scikit-learn's activation names alongside fusetrain's.
_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "sigmoid": "sigmoid", "tanh": "tanh",
                "relu": "relu", "leaky_relu": "leaky_relu"}
_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop")
_SCHEDULES = ("constant", "step", "exponential", "inverse_scaling", "cosine", "plateau")
_EARLY_STOPPING = {False: None, True: "val_loss", "val_loss": "val_loss", "train_loss": "train_loss"}
HISTORY_FIELDS = EPOCH_FIELDS      # history_'s keys: the wire's per-epoch metric names
SEED_BOUND = 2**31 - 1


class _FusetrainMLP(BaseEstimator):
    """Shared parameters, fit and forward pass (see the module docstring)."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, optimizer="adam",
                 learning_rate=0.001, batch_size="auto", max_iter=200, shuffle=True, random_state=None,
                 weight_decay=0.0, momentum=0.9, beta_1=0.9, beta_2=0.999, epsilon=1e-8, rho=0.9, clip_norm=0.0,
                 schedule="constant", early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, tol=1e-4, initializer="glorot_uniform", leaky_slope=0.01,
                 dtype="float32", threads=None, server=None, timeout=600.0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.rho = rho
        self.clip_norm = clip_norm
        self.schedule = schedule
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.initializer = initializer
        self.leaky_slope = leaky_slope
        self.dtype = dtype
        self.threads = threads
        self.server = server
        self.timeout = timeout

    # ------------------------------------------------------------------------------ settings

    def _check_params(self) -> dict:
        """The parameters checked and resolved; the engine checks the numbers' ranges again."""
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral):
            sizes = [sizes]
        try:
            sizes = [int(s) for s in sizes]
        except (TypeError, ValueError):
            raise ValueError(f"hidden_layer_sizes must be an int or a sequence of ints, got {sizes!r}") from None
        if any(s < 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive, got {list(sizes)}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)}; got {self.activation!r}")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(_OPTIMIZERS)}; got {self.optimizer!r}")
        if self.schedule not in _SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(_SCHEDULES)}; got {self.schedule!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        early = self.early_stopping
        if isinstance(early, (bool, np.bool_)):
            early = bool(early)
        if not isinstance(early, (bool, str)) or early not in _EARLY_STOPPING:
            raise ValueError(f"early_stopping must be False, True ('val_loss') or 'train_loss'; got {early!r}")
        monitor = _EARLY_STOPPING[early]
        if self.batch_size == "auto":
            batch = 200      # scikit-learn's min(200, n_samples): at or over n_samples means full batch
        elif isinstance(self.batch_size, numbers.Integral) and not isinstance(self.batch_size, bool) \
                and self.batch_size >= 0:
            batch = int(self.batch_size)
        else:
            raise ValueError(f"batch_size must be 'auto' or an int >= 0 (0 = full batch), got {self.batch_size!r}")
        if not isinstance(self.max_iter, numbers.Integral) or isinstance(self.max_iter, bool) \
                or self.max_iter < 1:
            raise ValueError(f"max_iter (epochs) must be an int >= 1, got {self.max_iter!r}")
        if self.threads is not None and (not isinstance(self.threads, numbers.Integral) or self.threads < 1):
            raise ValueError(f"threads must be None or an int >= 1, got {self.threads!r}")
        if monitor == "val_loss" and not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1) with early stopping, "
                             f"got {self.validation_fraction!r}")
        if monitor is not None and (not isinstance(self.n_iter_no_change, numbers.Integral)
                                    or self.n_iter_no_change < 1):
            raise ValueError(f"n_iter_no_change must be an int >= 1, got {self.n_iter_no_change!r}")
        return {"sizes": sizes, "activation": _ACTIVATIONS[self.activation], "batch": batch,
                "monitor": monitor}

    def _seed(self) -> int:
        """An int random_state is the job's seed (initial weights, shuffling and the validation
        split); None or a RandomState draws one, so refits differ, as scikit-learn expects."""
        rs = self.random_state
        if isinstance(rs, numbers.Integral) and not isinstance(rs, bool):
            if rs < 0:
                raise ValueError(f"random_state must be non-negative, got {rs}")
            return int(rs)
        return int(check_random_state(rs).randint(SEED_BOUND))

    def _plan(self, n_features: int, out_units: int, out_activation: str, loss: str) -> dict:
        """The job as plain values, the same for the engine and for a server."""
        p = self._check_params()
        seed = self._seed()
        layers = [(units, p["activation"]) for units in p["sizes"]] + [(out_units, out_activation)]
        early = None
        if p["monitor"] is not None:
            early = {"patience": int(self.n_iter_no_change), "min_delta": float(self.tol),
                     "restore_best": True, "monitor": p["monitor"]}
        return {
            "inputs": int(n_features), "layers": layers, "loss": loss, "initializer": self.initializer,
            "leaky_slope": float(self.leaky_slope), "seed": seed, "dtype": self.dtype,
            "optimizer": {"kind": self.optimizer, "learning_rate": float(self.learning_rate),
                          "momentum": float(self.momentum), "beta1": float(self.beta_1),
                          "beta2": float(self.beta_2), "epsilon": float(self.epsilon), "rho": float(self.rho),
                          "weight_decay": float(self.weight_decay), "clip_norm": float(self.clip_norm)},
            "schedule": self.schedule,
            "training": {"epochs": int(self.max_iter), "batch_size": p["batch"], "shuffle": bool(self.shuffle),
                         "seed": seed,
                         "validation_fraction": float(self.validation_fraction) if p["monitor"] == "val_loss"
                         else 0.0},
            "early_stopping": early,
            "threads": None if self.threads is None else int(self.threads),
        }

    # --------------------------------------------------------------------------------- fitting

    def _fit_arrays(self, X, Y, plan: dict, sample_weight=None) -> None:
        t0 = time.perf_counter()
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
            if np.all(sample_weight == 1.0):
                sample_weight = None       # unit weights: the unweighted fit, bit for bit
        if self.server is None:
            out = self._fit_engine(X, Y, plan, sample_weight)
        else:
            out = self._fit_server(X, Y, plan, sample_weight)
        weights, history, stop_reason, message, best_epoch = out
        self.fit_seconds_ = time.perf_counter() - t0
        self.coefs_ = [np.ascontiguousarray(np.asarray(w).T) for w, _ in weights]
        self.intercepts_ = [np.array(b) for _, b in weights]
        self.history_ = history
        self.loss_curve_ = [float(v) for v in history["train_loss"]]
        self.n_iter_ = len(self.loss_curve_)
        self.stop_reason_ = stop_reason
        self.best_epoch_ = best_epoch
        self.seed_ = plan["seed"]
        self.n_layers_ = len(plan["layers"]) + 1
        self.out_activation_ = plan["layers"][-1][1]
        self._arch = [(act, plan["leaky_slope"]) for _, act in plan["layers"]]
        self._loss = plan["loss"]
        if stop_reason == "DIVERGED":
            warnings.warn(f"{type(self).__name__}: training diverged ({message}); lower learning_rate",
                          ConvergenceWarning, stacklevel=3)

    def _fit_engine(self, X, Y, plan: dict, sample_weight=None):
        from fusetrain import engine    # numba: imported only when fitting in-process
        model = engine_model(engine, plan)
        o = plan["optimizer"]
        optimizer = engine.OptimizerSpec(
            kind=o["kind"], learning_rate=o["learning_rate"], momentum=o["momentum"], beta1=o["beta1"],
            beta2=o["beta2"], rho=o["rho"], epsilon=o["epsilon"], weight_decay=o["weight_decay"],
            clip_norm=o["clip_norm"], schedule=engine.ScheduleSpec(**schedule_fields(plan)))
        t = plan["training"]
        es = plan["early_stopping"]
        config = engine.TrainConfig(
            epochs=t["epochs"], batch_size=t["batch_size"], shuffle=t["shuffle"], seed=t["seed"],
            validation_fraction=t["validation_fraction"],
            early_stopping=None if es is None else engine.EarlyStopping(**es),
            threads=plan["threads"] or 1)
        result = engine.train(model, optimizer, config, X, Y, sample_weight=sample_weight)
        history = {name: result.history.column(name) for name in HISTORY_FIELDS}
        self.backend_ = "engine"
        self.job_id_ = None
        return result.weights, history, result.stop_reason, result.message, result.best_epoch

    def _fit_server(self, X, Y, plan: dict, sample_weight=None):
        from .client import Client
        from .errors import JobFailed
        spec = job_spec(plan, type(self).__name__)
        message = ""
        with Client(self.server, timeout=float(self.timeout)) as client:
            try:
                result = client.train(spec, X, Y, sample_weight=sample_weight)
            except JobFailed as exc:
                job = exc.job
                if job.failure_reason != "DIVERGED" or not job.has_result:
                    raise
                result = client.result(job.id)      # diverged, its last finite weights kept: warn
                result.stop_reason, message = "DIVERGED", job.message
        history = {name: result.history.column(name) for name in HISTORY_FIELDS}
        self.backend_ = f"server {self.server}"
        self.job_id_ = result.job_id
        return result.weights, history, result.stop_reason, message, result.best_epoch or None

    # ------------------------------------------------------------------------------- predicting

    def _forward(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        weights = [(c.T, b) for c, b in zip(self.coefs_, self.intercepts_)]
        if self.backend_ == "engine":
            from fusetrain import engine
            plan = {"inputs": self.n_features_in_, "loss": self._loss, "initializer": "glorot_uniform",
                    "layers": [(len(b), act) for b, (act, _) in zip(self.intercepts_, self._arch)],
                    "leaky_slope": self._arch[0][1], "seed": self.seed_, "dtype": self.coefs_[0].dtype.name}
            out = engine.predict(engine_model(engine, plan), weights, np.asarray(X, dtype=plan["dtype"]))
            return np.asarray(out, dtype=np.float64)
        return numpy_forward(weights, self._arch, X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        return tags


def _check_sample_weight(sample_weight, X) -> np.ndarray:
    """scikit-learn's checks of sample_weight: one finite non-negative number per row."""
    from sklearn.utils.validation import _check_sample_weight as check
    return check(sample_weight, X, dtype=np.float64, ensure_non_negative=True)


class FusetrainClassifier(ClassifierMixin, _FusetrainMLP):
    """A multi-layer perceptron classifier trained by fusetrain (in-process, or on `server`).

    Parameters (the job spec's knobs; scikit-learn's names where MLPClassifier has one)
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer; () for none (a linear model).
    activation : {'relu', 'tanh', 'logistic' or 'sigmoid', 'leaky_relu', 'identity'}, default='relu'
        Activation of the hidden layers.
    optimizer : {'adam', 'adamw', 'sgd', 'momentum', 'nesterov', 'rmsprop'}, default='adam'
        The update rule (PyTorch's formulas).
    learning_rate : float, default=0.001
        The base learning rate (MLPClassifier's learning_rate_init).
    batch_size : int or 'auto', default='auto'
        Rows per mini-batch; 'auto' is min(200, n_samples) as in scikit-learn; 1 = online,
        0 = full batch.
    max_iter : int, default=200
        Epochs (passes over the training rows).
    shuffle : bool, default=True
        Shuffle the rows every epoch.
    random_state : int, RandomState or None, default=None
        An int is the job's seed (initial weights, shuffling, validation split): fits are
        reproducible, bit for bit. None or a RandomState instance draws the seed at each fit.
    weight_decay : float, default=0.0
        L2 weight decay on weights and biases, PyTorch style (gradient += weight_decay·θ;
        decoupled for 'adamw'). scikit-learn's `alpha` penalises weights only and is divided by
        the batch size: alpha ≈ weight_decay · batch_size.
    momentum : float, default=0.9
        For 'momentum' and 'nesterov'.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        For 'adam' and 'adamw' (epsilon for 'rmsprop' too).
    rho : float, default=0.9
        For 'rmsprop'.
    clip_norm : float, default=0.0
        Clip the global gradient norm to this; 0 = off.
    schedule : {'constant', 'step', 'exponential', 'inverse_scaling', 'cosine', 'plateau'}, default='constant'
        Learning rate per epoch (the engine's defaults for the schedule's own numbers); 'plateau'
        divides it by 10 after 10 epochs without improvement of the training loss (as
        MLPClassifier's 'adaptive' does on its tolerance).
    early_stopping : bool or 'train_loss', default=False
        True: hold out `validation_fraction` of the rows and stop when the validation loss has not
        improved by `tol` for `n_iter_no_change` epochs, keeping the best epoch's weights.
        'train_loss': the same on the training loss, no rows held out (MLPClassifier's stopping
        rule without early_stopping). False: train all `max_iter` epochs.
    validation_fraction : float, default=0.1
        Used only with early_stopping=True.
    n_iter_no_change : int, default=10
        Patience of early stopping, in epochs.
    tol : float, default=1e-4
        Minimum improvement of the monitored loss for early stopping.
    initializer : str, default='glorot_uniform'
        uniform, normal, glorot_uniform, glorot_normal, he_uniform, he_normal.
    leaky_slope : float, default=0.01
        Slope below 0 of 'leaky_relu'.
    dtype : {'float32', 'float64'}, default='float32'
        The arithmetic of training.
    threads : int or None, default=None
        Threads of one job (results are bit-identical whatever the count); None is 1 in-process,
        the server's threads per worker on a server.
    server : str or None, default=None
        None: train in this process with fusetrain's engine (needs numba). "host:port": train on
        that fusetrain server ($FUSETRAIN_TOKEN is sent when set).
    timeout : float, default=600.0
        Deadline in seconds of each call to the server.

    Attributes
    ----------
    classes_ : ndarray of the original labels (strings too), or 0..n_labels-1 for multilabel
    n_features_in_, feature_names_in_ (when fitted on a DataFrame with string column names)
    n_outputs_ : output units (1 for two classes)
    coefs_, intercepts_ : per layer, weights (n_in, n_out) and biases (n_out,), as in MLPClassifier
    loss_curve_ : list of the training loss per epoch
    history_ : dict of per-epoch arrays: epoch, train_loss, train_accuracy, val_loss,
        val_accuracy, learning_rate, seconds, samples_per_second (NaN where not measured)
    n_iter_ : epochs run; best_epoch_ : the kept epoch with early stopping, else None
    stop_reason_ : 'COMPLETED', 'EARLY_STOPPED' or 'DIVERGED' (with a ConvergenceWarning)
    seed_ : the seed the job used; fit_seconds_ : wall seconds of the fit's training call
    backend_ : 'engine' or 'server HOST:PORT'; job_id_ : the server's job id (None in-process)
    out_activation_ : 'sigmoid' or 'softmax'
    """

    def fit(self, X, y, sample_weight=None):
        """Train on (X, y); sample_weight (n_samples,) weighs each row's loss, as in scikit-learn."""
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], multi_output=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        lb = LabelBinarizer()
        Y = lb.fit_transform(y)
        if len(lb.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes in the data, "
                             f"got 1 class: {lb.classes_[0]!r}")
        multiclass = lb.y_type_ == "multiclass"
        out_activation, loss = ("softmax", "softmax_cross_entropy") if multiclass else \
            ("sigmoid", "binary_cross_entropy")
        plan = self._plan(X.shape[1], Y.shape[1], out_activation, loss)
        self._binarizer = lb
        self.classes_ = lb.classes_
        self.n_outputs_ = Y.shape[1]
        self._fit_arrays(np.asarray(X, dtype=self.dtype), np.asarray(Y, dtype=self.dtype), plan, sample_weight)
        return self

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes); per label (n_samples, n_labels) for multilabel."""
        check_is_fitted(self)
        out = self._forward(X)
        if self._binarizer.y_type_ == "binary":
            return np.hstack([1.0 - out, out])
        return out

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class (the original labels); a 0/1 indicator matrix for multilabel."""
        check_is_fitted(self)
        return self._binarizer.inverse_transform(self._forward(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class FusetrainRegressor(RegressorMixin, _FusetrainMLP):
    """A multi-layer perceptron regressor trained by fusetrain (in-process, or on `server`).

    The parameters and attributes are FusetrainClassifier's (see there); the output layer has
    identity units, one per column of y (multi-output regression), trained with the half squared
    error (MLPRegressor's loss for one output). predict returns (n_samples,) for one output,
    (n_samples, n_outputs) otherwise. Targets are used as given (scale them with
    TransformedTargetRegressor when their range is large).
    """

    def fit(self, X, y, sample_weight=None):
        """Train on (X, y); sample_weight (n_samples,) weighs each row's loss, as in scikit-learn."""
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], multi_output=True, y_numeric=True)
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        plan = self._plan(X.shape[1], Y.shape[1], "identity", "half_sse")
        self.n_outputs_ = Y.shape[1]
        self._fit_arrays(np.asarray(X, dtype=self.dtype), np.asarray(Y, dtype=self.dtype), plan, sample_weight)
        return self

    def predict(self, X):
        out = self._forward(X)
        return out.ravel() if out.shape[1] == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
