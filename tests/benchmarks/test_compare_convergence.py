"""Convergence parity in the comparison: mean ± sd over shuffle seeds, and seed 1 reproducing the speed row."""

from __future__ import annotations

import math
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import compare_convergence  # noqa: E402
from compare_shapes import SHAPES, evaluate, load, save  # noqa: E402


def test_mean_sd_is_the_mean_and_the_sample_standard_deviation():
    values = [0.35, 0.56, 0.41, 0.47, 0.52]
    mean, sd = compare_convergence.mean_sd(values)
    assert mean == pytest.approx(statistics.fmean(values))
    assert sd == pytest.approx(statistics.stdev(values))          # n - 1, not n
    assert sd != pytest.approx(statistics.pstdev(values))
    assert compare_convergence.mean_sd([1, 2, 3, 4]) == pytest.approx((2.5, math.sqrt(5 / 3)))


def test_mean_sd_of_one_value_has_no_spread_and_of_none_is_an_error():
    assert compare_convergence.mean_sd([0.25]) == (0.25, 0.0)
    assert compare_convergence.mean_sd([0.3, 0.3, 0.3]) == pytest.approx((0.3, 0.0))
    with pytest.raises(ValueError):
        compare_convergence.mean_sd([])


def test_summarise_keeps_every_seed_and_the_range():
    s = compare_convergence.summarise([0.4, 0.2, 0.3], [0.8, 0.9, 0.85], [1, 2, 3])
    assert s["seeds"] == [1, 2, 3] and s["loss"] == [0.4, 0.2, 0.3]
    assert (s["loss_min"], s["loss_max"]) == (0.2, 0.4)
    assert s["loss_mean"] == pytest.approx(0.3) and s["loss_sd"] == pytest.approx(0.1)
    assert s["accuracy_mean"] == pytest.approx(0.85) and s["accuracy_sd"] == pytest.approx(0.05)


def test_only_shuffled_shapes_are_measured():
    assert sorted(compare_convergence.shuffled(SHAPES)) == ["large", "medium", "small", "wide"]
    assert compare_convergence.shuffled({"tiny": SHAPES["tiny"]}) == {}


def test_fusetrain_seed_one_is_the_speed_rows_run_and_other_seeds_differ(tmp_path):
    from peers import fusetrain_peer

    shape = replace(SHAPES["small"], epochs=3)
    path = tmp_path / "small.npz"
    save(shape, path)
    out = compare_convergence.measure(fusetrain_peer, {"small": shape}, {"small": str(path)}, 1, seeds=(1, 2, 3))
    row = out["small"]
    assert row["seeds"] == [1, 2, 3] and len(row["loss"]) == 3
    data, layers = load(path)
    speed = fusetrain_peer.train(shape, data, layers, 1)
    assert row["loss"][0] == evaluate(shape, speed["weights"], data["x"], data["y"])["loss"]
    assert len(set(row["loss"])) == 3                               # the order of the batches matters
    assert row["loss_min"] <= row["loss_mean"] <= row["loss_max"]
