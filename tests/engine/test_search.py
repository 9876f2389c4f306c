"""engine.search: rungs, train_many resuming from states, successive halving and ASHA, and the
promise that every candidate re-run alone for the epochs it got gives the same weights."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

import fusetrain.engine as engine
from fusetrain.engine import LayerSpec, ModelSpec, OptimizerSpec, TrainConfig
from fusetrain.engine import search
from fusetrain.engine.kernels.epochs import loops_compiled


def blobs(rows=180, inputs=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(classes, size=rows)
    centres = rng.normal(scale=2.0, size=(classes, inputs))
    x = (centres[labels] + rng.normal(size=(rows, inputs))).astype(np.float32)
    return x, np.eye(classes, dtype=np.float32)[labels]


def split(x, y, n_val=60):
    return x[n_val:], y[n_val:], x[:n_val], y[:n_val]


def model(units=8, seed=0):
    return ModelSpec(inputs=6, layers=[LayerSpec(units, "tanh"), LayerSpec(3, "sigmoid")], loss="half_sse",
                     seed=seed)


def candidates(n=9, shapes=(8,)):
    """n candidates: learning rate, momentum, weight decay, seed, batch size and shape vary."""
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        opt = OptimizerSpec(kind="momentum", learning_rate=float(10 ** rng.uniform(-2.5, -0.5)),
                            momentum=float(rng.uniform(0, 0.9)), weight_decay=float(10 ** rng.uniform(-6, -3)))
        out.append(search.Candidate(model(shapes[i % len(shapes)], seed=i), opt,
                                    TrainConfig(epochs=1, batch_size=(8, 16, 32)[i % 3], seed=i)))
    return out


def alone(c: search.Candidate, epochs: int, x, y):
    return engine.train(c.model, c.optimizer, replace(c.config, epochs=epochs), x, y)


def test_rungs():
    assert search.rungs(1, 27, 3) == [1, 3, 9, 27]
    assert search.rungs(2, 20, 3) == [2, 6, 18, 20]
    assert search.rungs(5, 5, 3) == [5]
    assert search.rungs(1, 4, 1.5) == [1, 2, 3, 4]
    with pytest.raises(engine.InvalidSpec, match="search.eta"):
        search.rungs(1, 9, 1.0)
    with pytest.raises(engine.InvalidSpec, match="search.min_epochs"):
        search.rungs(10, 9, 3)


def test_train_many_resumes_from_states_bit_identically():
    x, y = blobs()
    opts = [OptimizerSpec(kind="adam", learning_rate=0.01), OptimizerSpec(kind="momentum", learning_rate=0.05)]
    confs = [TrainConfig(epochs=12, batch_size=16, seed=s) for s in (3, 4)]
    straight = engine.train_many(model(), opts, confs, x, y, seeds=[1, 2])
    first = engine.train_many(model(), opts, [replace(c, epochs=5) for c in confs], x, y, seeds=[1, 2])
    rest = engine.train_many(model(), opts, confs, x, y, seeds=[1, 2], states=[r.state for r in first])
    for a, b in zip(straight, rest):
        assert np.array_equal(a.state.params, b.state.params)
        assert b.epochs_run == 12
        assert [(m.epoch, m.train_loss) for m in a.history] == [(m.epoch, m.train_loss) for m in b.history]
    quiet = engine.train_many(model(), opts, confs, x, y, seeds=[1, 2], states=[r.state for r in first],
                              train_metrics=False)
    for a, b in zip(rest, quiet):
        assert np.array_equal(a.state.params, b.state.params)
        assert math.isnan(b.final["train_loss"]) and a.final["train_loss"] > 0
    with pytest.raises(engine.InvalidSpec, match="states"):
        engine.train_many(model(), opts, confs, x, y, seeds=[1, 2], states=[first[0].state, None])


@pytest.mark.parametrize("shapes", [(8,), (8, 12)], ids=["one-shape", "two-shapes"])
def test_halving_survivors_equal_training_alone(shapes):
    x, y = blobs()
    xt, yt, xv, yv = split(x, y)
    cands = candidates(9, shapes)
    before = None
    calls = []
    real = search.train_many

    def counting(*args, **kwargs):   # the rungs after the first compile nothing
        nonlocal before
        calls.append(len(args[1]))
        if before is None and kwargs.get("states") is not None:
            before = loops_compiled()
        return real(*args, **kwargs)

    search.train_many = counting
    try:
        found = search.successive_halving(cands, xt, yt, xv, yv, eta=3, min_epochs=2, max_epochs=18,
                                          metric="val_accuracy")
    finally:
        search.train_many = real
    assert loops_compiled() == before
    assert calls[:len(shapes)] == [9 // len(shapes) + (i < 9 % len(shapes)) for i in range(len(shapes))]
    reached = sorted(found.epochs(i) for i in range(9))
    assert reached == [2] * 6 + [6] * 2 + [18]
    assert found.model_epochs == sum(reached)
    assert found.epochs(found.winner) == 18
    # The survivors of each rung were the best third of it.
    for level, epochs in enumerate([2, 6]):
        at = [i for i in range(9) if len(found.rungs[i]) > level]
        ranked = sorted(at, key=lambda i: (-found.rungs[i][level].value, i))
        assert {i for i in at if len(found.rungs[i]) > level + 1} == set(ranked[:len(at) // 3])
    # Every candidate, re-run alone from its spec for the epochs it got: the same weights.
    for i, c in enumerate(cands):
        solo = alone(c, found.epochs(i), xt, yt)
        assert np.array_equal(solo.state.params, found.states[i].params), i
    res = found.result
    assert res.final["val_accuracy"] == engine.evaluate(cands[found.winner].model, res.weights, xv, yv)["accuracy"]


def test_asha_candidates_of_different_shapes_equal_training_alone():
    x, y = blobs()
    xt, yt, xv, yv = split(x, y)
    cands = candidates(9, (4, 8, 16))
    found = search.asha(cands, xt, yt, xv, yv, eta=3, min_epochs=2, max_epochs=18, metric="val_loss")
    reached = [found.epochs(i) for i in range(9)]
    assert max(reached) == 18 and min(reached) == 2
    assert found.model_epochs == sum(reached)
    assert found.order("val_loss")[0] == found.winner and found.epochs(found.winner) == 18
    for i, c in enumerate(cands):
        assert np.array_equal(alone(c, reached[i], xt, yt).state.params, found.states[i].params), i


def test_random_is_one_rung_and_the_best_wins():
    x, y = blobs()
    xt, yt, xv, yv = split(x, y)
    cands = candidates(4)
    found = search.successive_halving(cands, xt, yt, xv, yv, min_epochs=6, max_epochs=6, metric="val_loss")
    values = [found.rungs[i][0].value for i in range(4)]
    assert [found.epochs(i) for i in range(4)] == [6] * 4
    assert found.winner == int(np.argmin(values))
    losses = [engine.evaluate(c.model, alone(c, 6, xt, yt).weights, xv, yv)["loss"] for c in cands]
    assert values == losses


def test_diverged_candidates_rank_last():
    x, y = blobs()
    xt, yt, xv, yv = split(x, y)
    linear = ModelSpec(inputs=6, layers=[LayerSpec(8, "relu"), LayerSpec(3, "identity")], loss="mse")
    cands = [replace(c, model=replace(linear, seed=i)) for i, c in enumerate(candidates(3))]
    cands[0] = replace(cands[0], optimizer=OptimizerSpec(kind="sgd", learning_rate=1e30))
    found = search.successive_halving(cands, xt, yt, xv, yv, eta=3, min_epochs=2, max_epochs=6)
    assert found.diverged[0] and math.isnan(found.rungs[0][0].value)
    assert found.winner != 0 and found.order("val_loss")[-1] == 0


def test_bad_searches_name_the_field():
    x, y = blobs()
    xt, yt, xv, yv = split(x, y)
    with pytest.raises(engine.InvalidSpec, match="search.metric"):
        search.successive_halving(candidates(2), xt, yt, xv, yv, min_epochs=1, max_epochs=2, metric="f1")
    cosine = candidates(1)[0]
    cosine.optimizer.schedule = engine.ScheduleSpec(kind="cosine")
    with pytest.raises(engine.InvalidSpec, match="optimizer.schedule.kind"):
        search.asha([cosine], xt, yt, xv, yv, min_epochs=1, max_epochs=2)
    with pytest.raises(engine.InvalidSpec, match="search.candidates"):
        search.asha([], xt, yt, xv, yv, min_epochs=1, max_epochs=2)
