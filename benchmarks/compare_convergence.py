"""Convergence parity: each library's final loss and accuracy over several shuffle seeds, as mean ± sd.

On the shapes that shuffle, one seed's final loss says little: the order of the mini-batches
alone moves it a lot (medium: 0.35-0.56 for fusetrain, 0.28-0.42 for PyTorch over five seeds,
from the same initial weights). So every library trains each shuffled shape once per seed,
from the shape's shared initial weights, for the shape's own epochs, untimed, and the report
gives the mean ± sample standard deviation of the final training loss and accuracy (computed
alike for all by compare_shapes.evaluate). Each library draws its permutations from its own
generator, so seed k is not the same order in two libraries; only the spread is comparable.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

SEEDS = (1, 2, 3, 4, 5)   # seed 1 is the order the speed rows train in


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0.0 for a single value)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_sd of no values")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def summarise(losses, accuracies, seeds) -> dict:
    """The per-seed figures and their mean, sd, min and max."""
    lm, ls = mean_sd(losses)
    am, asd = mean_sd(accuracies)
    return {"seeds": list(seeds), "loss": list(losses), "accuracy": list(accuracies),
            "loss_mean": lm, "loss_sd": ls, "loss_min": min(losses), "loss_max": max(losses),
            "accuracy_mean": am, "accuracy_sd": asd}


def shuffled(shapes: dict) -> dict:
    """The shapes whose mini-batches are shuffled (all but the full-batch ones)."""
    return {n: s for n, s in shapes.items() if not s.full_batch}


def measure(peer, shapes: dict, paths: dict, threads: int, seeds=SEEDS) -> dict:
    """Worker side: {shape: summarise(...)} for one library, every shape once per seed."""
    from compare_shapes import evaluate, load

    out = {}
    for sname, shape in shapes.items():
        data, layers = load(Path(paths[sname]))
        t0 = time.perf_counter()
        try:
            runs = peer.train_seeds(shape, data, layers, threads, list(seeds))
        except Exception as exc:   # one shape failing must not sink the others
            out[sname] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        figures = [evaluate(shape, w, data["x"], data["y"]) for w in runs]
        out[sname] = summarise([f["loss"] for f in figures], [f["accuracy"] for f in figures], seeds)
        out[sname]["epochs"] = shape.epochs
        out[sname]["seconds"] = time.perf_counter() - t0
    return out


def run(runner, names: list[str], shapes: dict, job: dict) -> dict:
    """Parent side: one worker per library over every shuffled shape; {library: {shape: ...}}."""
    todo = shuffled(shapes)
    out = {}
    if not todo:
        return out
    for name in names:
        print(f" {name}", end="", flush=True)
        sub = {**job, "shapes": {n: s.to_dict() for n, s in todo.items()}, "library": name}
        res, _ = runner.spawn("convergence", sub, quiet=False)
        out[name] = res
    return out


def lines(report: dict, display_name) -> list[str]:
    """The convergence table: loss and accuracy mean ± sd (and the loss's range) per shape and library."""
    from compare_report import _table

    conv = report.get("convergence")
    if not conv:
        return []
    seeds = next((r["seeds"] for lib in conv.values() if "error" not in lib
                  for r in lib.values() if "seeds" in r), list(SEEDS))
    out = ["", f"Convergence over {len(seeds)} shuffle seeds ({', '.join(map(str, seeds))}; seed 1 is the "
               f"speed rows' order), the same initial weights, each shape's own epochs; final training loss "
               f"and accuracy, mean ± sample sd, and the loss's range:"]
    header = ["shape", "library", "loss mean ± sd", "acc % mean ± sd", "loss min - max"]
    table = []
    measured = [s for s in report["shapes"] if any(s in lib for lib in conv.values() if "error" not in lib)]
    for sname in measured:
        first = True
        for name in ["fusetrain"] + [n for n in conv if n != "fusetrain"]:
            lib = conv.get(name)
            if lib is None:
                continue
            row = lib if "error" in lib else lib.get(sname)
            if row is None:
                continue
            cell, first = (sname if first else ""), False
            if "error" in row:
                table.append([cell, display_name(report, name), "error: " + row["error"][:60], "", ""])
                continue
            table.append([cell, display_name(report, name), f"{row['loss_mean']:.4g} ± {row['loss_sd']:.2g}",
                          f"{100 * row['accuracy_mean']:.1f} ± {100 * row['accuracy_sd']:.1f}",
                          f"{row['loss_min']:.4g} - {row['loss_max']:.4g}"])
    out.extend(_table(header, table, right=set()))
    if "sklearn" in conv and "small" in conv["sklearn"]:
        out.append("  scikit-learn's classifier trains log-loss on small; its loss there is the shape's "
                   "half_sse of its outputs, like the others'.")
    return out
