"""FusetrainClassifier beside scikit-learn's MLPClassifier on the same data, folds and settings.

    .venv/bin/python examples/sklearn_compare.py [--folds 5] [--epochs 200] [--datasets iris,seeds,pima,digits]

Iris, UCI wheat seeds and Pima come from ../shared/datasets (beside the repository; a data set
whose file is missing there is skipped, and the table says so); digits is scikit-learn's
bundled copy (load_digits, offline). Each data set runs the same stratified k-fold split
(shuffled, seed 0) for both libraries, each model inside make_pipeline(StandardScaler(), model),
with the same architecture and settings:

- hidden layers as listed per data set, ReLU, softmax output with cross-entropy (one logistic
  output for the two classes of Pima), Adam (lr 0.01, betas 0.9/0.999, eps 1e-8), mini-batches of
  32 shuffled every epoch, exactly `--epochs` epochs (MLPClassifier's tolerance-based stop is
  switched off with n_iter_no_change=epochs), no L2 penalty (alpha=0, weight_decay=0), seed 0;
- MLPClassifier computes in float64 (its default for float64 data), fusetrain in float32 (its
  default); `--dtype float64` runs fusetrain in float64 too;
- one thread each: fusetrain's default in-process, and scikit-learn's BLAS limited to one
  thread with threadpoolctl (`--blas-threads N` changes that).

Fit time is the wall time of the pipeline's fit, summed over the folds. fusetrain loads (or
compiles) its kernels once per process; a warm-up fit before the timed folds keeps that out
(the table says how long it took).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

try:
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits
except ImportError as exc:   # pragma: no cover - a hint for a bare install
    sys.exit(f"this example needs scikit-learn and threadpoolctl: pip install scikit-learn ({exc})")

from fusetrain.client.estimators import FusetrainClassifier

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
HIDDEN = {"iris": (16,), "seeds": (16,), "pima": (16,), "digits": (64,)}


def load(name: str, data_dir: Path):
    """(x, y, where from) or None with the reason when the file is missing."""
    if name == "digits":
        x, y = load_digits(return_X_y=True)
        return x, y, "sklearn.datasets.load_digits"
    files = {"iris": "iris.csv", "seeds": "seeds_dataset.csv", "pima": "pima-indians-diabetes.csv"}
    path = data_dir / files[name]
    if not path.exists():
        return None, None, f"missing: {path} not found"
    if name == "iris":
        raw = np.genfromtxt(path, delimiter=",", dtype=str)
        raw = raw[raw[:, 0] != ""]
        return raw[:, :4].astype(float), raw[:, 4], str(path)
    raw = np.loadtxt(path, delimiter=",")
    return raw[:, :-1], raw[:, -1].astype(int), str(path)


def models(hidden, epochs: int, dtype: str):
    common = dict(hidden_layer_sizes=hidden, activation="relu")
    sk = MLPClassifier(**common, solver="adam", learning_rate_init=0.01, beta_1=0.9, beta_2=0.999,
                       epsilon=1e-8, batch_size=32, max_iter=epochs, shuffle=True, alpha=0.0,
                       n_iter_no_change=epochs, tol=0.0, random_state=0)
    ft = FusetrainClassifier(**common, optimizer="adam", learning_rate=0.01, beta_1=0.9, beta_2=0.999,
                             epsilon=1e-8, batch_size=32, max_iter=epochs, shuffle=True, weight_decay=0.0,
                             random_state=0, dtype=dtype, threads=1)
    return {"scikit-learn": sk, "fusetrain": ft}


def run_cv(model, x, y, folds: int):
    accs, seconds = [], 0.0
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=0).split(x, y):
        pipe = make_pipeline(StandardScaler(), model)
        t0 = time.perf_counter()
        pipe.fit(x[train], y[train])
        seconds += time.perf_counter() - t0
        accs.append(pipe.score(x[test], y[test]))
    return np.array(accs), seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--datasets", default="iris,seeds,pima,digits")
    ap.add_argument("--data-dir", type=Path, default=DATASETS)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--blas-threads", type=int, default=1)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)     # MLPClassifier at max_iter: as intended

    t0 = time.perf_counter()
    warm_x, warm_y = load_digits(return_X_y=True)
    for cols, hidden in ((4, (8,)), (64, (64,))):     # the tiny-network and the BLAS kernel families
        models(hidden, 1, args.dtype)["fusetrain"].fit(warm_x[:100, :cols], warm_y[:100])
    warm = time.perf_counter() - t0

    rows, notes = [], []
    with threadpool_limits(args.blas_threads):
        for name in args.datasets.split(","):
            x, y, origin = load(name, args.data_dir)
            if x is None:
                notes.append(f"{name}: skipped ({origin})")
                continue
            hidden = HIDDEN[name]
            shape = f"{x.shape[0]} x {x.shape[1]}, {len(np.unique(y))} classes"
            classes = len(np.unique(y))
            arch = "-".join(str(v) for v in (x.shape[1], *hidden, classes if classes > 2 else 1))
            result = {}
            for lib, model in models(hidden, args.epochs, args.dtype).items():
                result[lib] = run_cv(model, x, y, args.folds)
            (sk_acc, sk_s), (ft_acc, ft_s) = result["scikit-learn"], result["fusetrain"]
            rows.append((name, shape, arch, f"{sk_acc.mean():.1%} ± {sk_acc.std():.1%}",
                         f"{ft_acc.mean():.1%} ± {ft_acc.std():.1%}", f"{sk_s:.2f}", f"{ft_s:.3f}",
                         f"{sk_s / ft_s:.1f}x"))
            notes.append(f"{name}: {origin}")

    header = ("data set", "rows x features", "network", f"MLPClassifier acc ({args.folds}-fold)",
              f"fusetrain acc ({args.folds}-fold)", "MLPClassifier fit s", "fusetrain fit s", "speed-up")
    print(f"{args.folds}-fold stratified CV (same folds for both), StandardScaler + MLP, ReLU, Adam lr 0.01, "
          f"batch 32, {args.epochs} epochs, no L2, seed 0; MLPClassifier float64, fusetrain {args.dtype}; "
          f"1 thread each (BLAS threads {args.blas_threads}); fit seconds summed over the folds")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"fusetrain kernels loaded or compiled once before the timed fits: {warm:.2f} s")
    for note in notes:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
