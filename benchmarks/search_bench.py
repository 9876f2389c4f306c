"""Hyper-parameter search side by side: fusetrain halving, fusetrain random search, scikit-learn's
HalvingRandomSearchCV over MLPClassifier, and Optuna with its successive-halving pruner.

    python benchmarks/search_bench.py [--datasets seeds,pima,digits] [--candidates 27]
                                      [--max-epochs 81] [--min-epochs 3] [--eta 3] [--seeds 3]
                                      [--threads 1] [--json PATH]

Every method searches the same space (learning rate log-uniform, momentum uniform, L2 weight
decay log-uniform, hidden units) for one hidden layer of relu units trained by SGD with
momentum, batch 32, on the same training rows, and is scored on the same held-out validation
rows (a quarter of the data, standardised with the training rows' statistics). Each method gets
the same budget: `candidates` sampled points and at most `max-epochs` epochs each; the halving
methods use the same rungs (min-epochs x eta^k). Figures are means over `seeds` search seeds:
the best validation accuracy found, the wall time of the search (fusetrain's one-time compile
excluded: it is warmed up first and reported apart), and the model-epochs spent. Everything
runs on `threads` threads (fusetrain's train_many threads, scikit-learn's n_jobs; BLAS at 1).
Uses ../shared/datasets (seeds, Pima) and scikit-learn's bundled 8x8 digits.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import SHARED  # noqa: E402

BATCH = 32
UNITS = (8, 16, 32, 64)


def load(name: str):
    """(x float32, labels int) of a data set."""
    if name == "digits":
        from sklearn.datasets import load_digits
        d = load_digits()
        return d.data.astype(np.float32), d.target.astype(int)
    path = SHARED / {"seeds": "seeds_dataset.csv", "pima": "pima-indians-diabetes.csv"}[name]
    if not path.exists():
        raise SystemExit(f"{path} is missing: see ../shared/datasets/README.md")
    raw = np.loadtxt(path, delimiter=",")
    labels = raw[:, -1].astype(int)
    return raw[:, :-1].astype(np.float32), labels - labels.min()


def split(x, labels, seed=0):
    """Shuffled 75/25 split, standardised with the training rows' mean and spread."""
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = len(x) // 4
    val, train = order[:n_val], order[n_val:]
    mu, sd = x[train].mean(0), x[train].std(0)
    sd[sd == 0] = 1
    x = ((x - mu) / sd).astype(np.float32)
    return x[train], labels[train], x[val], labels[val]


def space(rng: np.random.Generator, n: int) -> list[dict]:
    """n points: lr log-uniform [1e-3, 0.3], momentum [0, 0.95], alpha log-uniform [1e-6, 1e-2],
    units in {8, 16, 32, 64}."""
    return [{"lr": float(math.exp(rng.uniform(math.log(1e-3), math.log(0.3)))),
             "momentum": float(rng.uniform(0.0, 0.95)),
             "alpha": float(math.exp(rng.uniform(math.log(1e-6), math.log(1e-2)))),
             "units": int(rng.choice(UNITS))} for _ in range(n)]


# ---------------------------------------------------------------------------------- fusetrain

def fusetrain_search(data, points, args, halving: bool, seed: int) -> dict:
    from fusetrain import engine
    from fusetrain.engine import search
    xt, lt, xv, lv = data
    classes = int(max(lt.max(), lv.max())) + 1
    yt, yv = np.eye(classes, dtype=np.float32)[lt], np.eye(classes, dtype=np.float32)[lv]
    cands = [search.Candidate(
        engine.ModelSpec(inputs=xt.shape[1], layers=[engine.LayerSpec(p["units"], "relu"),
                                                     engine.LayerSpec(classes, "softmax")],
                         loss="softmax_cross_entropy", initializer="he_uniform", seed=seed * 1000 + i),
        engine.OptimizerSpec(kind="momentum", learning_rate=p["lr"], momentum=p["momentum"],
                             weight_decay=p["alpha"]),
        engine.TrainConfig(epochs=1, batch_size=BATCH, seed=seed * 1000 + i)) for i, p in enumerate(points)]
    first = args.min_epochs if halving else args.max_epochs
    t0 = time.perf_counter()
    found = search.successive_halving(cands, xt, yt, xv, yv, eta=args.eta, min_epochs=first,
                                      max_epochs=args.max_epochs, metric="val_accuracy", threads=args.threads)
    wall = time.perf_counter() - t0
    return {"score": found.result.final["val_accuracy"], "wall": wall, "model_epochs": found.model_epochs,
            "compile": found.compile_seconds}


# ------------------------------------------------------------------------------- scikit-learn

def mlp(p: dict, seed: int, max_iter: int):
    from sklearn.neural_network import MLPClassifier
    return MLPClassifier(hidden_layer_sizes=(p["units"],), solver="sgd", learning_rate_init=p["lr"],
                         momentum=p["momentum"], alpha=p["alpha"], batch_size=BATCH, max_iter=max_iter,
                         tol=0.0, n_iter_no_change=10 ** 9, random_state=seed)


def sklearn_halving(data, points, args, seed: int) -> dict:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingRandomSearchCV, PredefinedSplit
    from sklearn.neural_network import MLPClassifier
    xt, lt, xv, lv = data
    x, labels = np.vstack([xt, xv]), np.concatenate([lt, lv])
    fold = PredefinedSplit(np.r_[np.full(len(xt), -1), np.zeros(len(xv), dtype=int)])
    # The sampled points themselves, one per candidate: a list of one-point "distributions".
    grid = [{"hidden_layer_sizes": [(p["units"],)], "learning_rate_init": [p["lr"]], "momentum": [p["momentum"]],
             "alpha": [p["alpha"]]} for p in points]
    est = MLPClassifier(solver="sgd", batch_size=BATCH, tol=0.0, n_iter_no_change=10 ** 9, random_state=seed)
    search = HalvingRandomSearchCV(est, grid, n_candidates=len(points), resource="max_iter",
                                   min_resources=args.min_epochs, max_resources=args.max_epochs,
                                   factor=args.eta, cv=fold, refit=False, n_jobs=args.threads,
                                   random_state=seed)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(x, labels)
    wall = time.perf_counter() - t0
    spent = int(sum(n * r for n, r in zip(search.n_candidates_, search.n_resources_)))
    last = search.cv_results_["iter"] == search.n_iterations_ - 1
    return {"score": float(np.max(search.cv_results_["mean_test_score"][last])), "wall": wall,
            "model_epochs": spent}


# ------------------------------------------------------------------------------------- Optuna

def optuna_halving(data, points, args, seed: int) -> dict:
    import optuna
    from sklearn.exceptions import ConvergenceWarning
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    xt, lt, xv, lv = data
    classes = np.unique(np.concatenate([lt, lv]))
    spent = [0]

    def objective(trial):
        p = {"lr": trial.suggest_float("lr", 1e-3, 0.3, log=True),
             "momentum": trial.suggest_float("momentum", 0.0, 0.95),
             "alpha": trial.suggest_float("alpha", 1e-6, 1e-2, log=True),
             "units": trial.suggest_categorical("units", list(UNITS))}
        model = mlp(p, seed, 1)
        score = 0.0
        for epoch in range(1, args.max_epochs + 1):
            model.partial_fit(xt, lt, classes=classes)
            spent[0] += 1
            score = model.score(xv, lv)
            trial.report(score, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return score

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.SuccessiveHalvingPruner(
                                    min_resource=args.min_epochs, reduction_factor=int(args.eta)))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        study.optimize(objective, n_trials=len(points))
    wall = time.perf_counter() - t0
    return {"score": float(study.best_value), "wall": wall, "model_epochs": spent[0]}   # of the completed trials


# -------------------------------------------------------------------------------------- report

METHODS = {
    "fusetrain halving": lambda d, p, a, s: fusetrain_search(d, p, a, True, s),
    "fusetrain random (full budget)": lambda d, p, a, s: fusetrain_search(d, p, a, False, s),
    "sklearn HalvingRandomSearchCV": sklearn_halving,
    "Optuna TPE + SuccessiveHalvingPruner": optuna_halving,
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="seeds,pima,digits")
    ap.add_argument("--candidates", type=int, default=27)
    ap.add_argument("--max-epochs", type=int, default=81)
    ap.add_argument("--min-epochs", type=int, default=3)
    ap.add_argument("--eta", type=float, default=3.0)
    ap.add_argument("--seeds", type=int, default=3, help="search seeds to average over")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    methods = dict(METHODS)
    try:
        import optuna  # noqa: F401
    except ImportError:
        print("Optuna is not installed (pip install optuna): its row is left out", file=sys.stderr)
        methods.pop("Optuna TPE + SuccessiveHalvingPruner")
    rows = []
    for name in args.datasets.split(","):
        x, labels = load(name)
        data = split(x, labels)
        # Compile (or load from the cache) first, every loop the search may use: tiny and BLAS
        # networks take different ones.
        warm = fusetrain_search(data, [{"lr": 0.01, "momentum": 0.5, "alpha": 1e-4, "units": u} for u in UNITS],
                                argparse.Namespace(**{**vars(args), "max_epochs": 2, "min_epochs": 1}), True, 99)
        for method, run in methods.items():
            runs = [run(data, space(np.random.default_rng(s), args.candidates), args, s) for s in range(args.seeds)]
            rows.append({"dataset": name, "method": method, "rows": f"{len(data[0])}/{len(data[2])}",
                         "score": float(np.mean([r["score"] for r in runs])),
                         "scores": [r["score"] for r in runs],
                         "wall": float(np.mean([r["wall"] for r in runs])),
                         "model_epochs": float(np.mean([r["model_epochs"] for r in runs])),
                         "compile": warm["compile"] if method.startswith("fusetrain") else None})
            r = rows[-1]
            print(f"  {name:7s} {method:38s} val acc {100 * r['score']:5.1f}%  {r['wall']:7.2f} s  "
                  f"{r['model_epochs']:7.0f} model-epochs", file=sys.stderr, flush=True)
    print_table(rows, args)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows},
                                        indent=1))
    return 0


def print_table(rows: list, args) -> None:
    print(f"\n{args.candidates} candidates, at most {args.max_epochs} epochs each, halving rungs from "
          f"{args.min_epochs} epochs by eta={args.eta:g}; means over {args.seeds} search seeds; "
          f"{args.threads} thread(s)\n")
    print("| data (train/val rows) | method | best val accuracy | wall s | model-epochs |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['dataset']} ({r['rows']}) | {r['method']} | {100 * r['score']:.1f}% | {r['wall']:.2f} | "
              f"{r['model_epochs']:.0f} |")
    print()
    for name in dict.fromkeys(r["dataset"] for r in rows):
        by = {r["method"]: r for r in rows if r["dataset"] == name}
        h, full = by["fusetrain halving"], by["fusetrain random (full budget)"]
        line = (f"{name}: halving vs full random search: {100 * (h['score'] - full['score']):+.1f} points at "
                f"{h['wall'] / full['wall']:.2f}x the wall time")
        sk = by.get("sklearn HalvingRandomSearchCV")
        if sk:
            line += (f"; vs sklearn halving: {sk['wall'] / h['wall']:.0f}x faster, "
                     f"{100 * (h['score'] - sk['score']):+.1f} points")
        op = by.get("Optuna TPE + SuccessiveHalvingPruner")
        if op:
            line += f"; vs Optuna: {op['wall'] / h['wall']:.0f}x faster, {100 * (h['score'] - op['score']):+.1f} points"
        print(line)


if __name__ == "__main__":
    raise SystemExit(main())
