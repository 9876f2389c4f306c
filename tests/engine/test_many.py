"""engine.many.ManyRun: training K models in steps is bit-identical to one call and to each model
trained alone, a model stopped between steps is the job stopped there, and tiny networks run their
generated loop in a batch too."""

from __future__ import annotations

import numpy as np
import pytest

import fusetrain.engine as engine
from fusetrain.engine import LayerSpec, ModelSpec, OptimizerSpec, ScheduleSpec, TrainConfig, tinygen
from fusetrain.engine.many import ManyRun


def blobs(rows=150, inputs=7, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(classes, size=rows)
    x = (rng.normal(scale=2.0, size=(classes, inputs))[labels] + rng.normal(size=(rows, inputs))).astype(np.float32)
    return x, np.eye(classes, dtype=np.float32)[labels]


TINY = ModelSpec(inputs=7, layers=[LayerSpec(5, "sigmoid"), LayerSpec(3, "sigmoid")], loss="half_sse")
WIDER = ModelSpec(inputs=7, layers=[LayerSpec(24, "tanh"), LayerSpec(3, "softmax")], loss="softmax_cross_entropy")
COSINE = ScheduleSpec(kind="cosine", min_lr=0.01)
OPTS = [OptimizerSpec(learning_rate=0.3, schedule=COSINE), OptimizerSpec(kind="adam", learning_rate=0.01),
        OptimizerSpec(learning_rate=0.2), OptimizerSpec(kind="momentum", learning_rate=0.05, schedule=COSINE)]


def alone(model, opt, conf, seed, x, y, stop_after=None):
    cb = None if stop_after is None else (lambda m: m.epoch >= stop_after)
    return engine.train(ModelSpec(**{**model.__dict__, "seed": seed}), opt, conf, x, y, callback=cb,
                        chunk_seconds=0.0 if cb else 0.1)


def same_weights(a, b):
    for (wa, ba), (wb, bb) in zip(a.weights, b.weights):
        assert np.array_equal(wa, wb) and np.array_equal(ba, bb)


@pytest.mark.parametrize("model", [TINY, WIDER], ids=["tiny", "wider"])
@pytest.mark.parametrize("threads", [1, 2])
def test_steps_match_one_call_and_each_model_alone(model, threads):
    x, y = blobs()
    conf = TrainConfig(epochs=23, batch_size=16, seed=4)
    seeds = [3, 4, 5, 6]
    whole = engine.train_many(model, OPTS, [conf], x, y, seeds=seeds, threads=threads)
    run = ManyRun(model, OPTS, [conf], x, y, seeds=seeds, threads=threads)
    rows = [run.advance(until) for until in (1, 2, 9, 17, 23)]
    assert run.live() == [] and sum(len(r[0]) for r in rows) == 23
    for i, (opt, seed) in enumerate(zip(OPTS, seeds)):
        stepped, single = run.result(i), alone(model, opt, conf, seed, x, y)
        for got in (stepped, whole[i]):
            same_weights(got, single)
            assert got.stop_reason == engine.COMPLETED and got.epochs_run == 23
            assert got.final == single.final
            assert [m.train_loss for m in got.history] == [m.train_loss for m in single.history]
            assert [m.learning_rate for m in got.history] == [m.learning_rate for m in single.history]
        # the rows each step returned are the history, in order
        assert np.array_equal(np.concatenate([r[i] for r in rows])[:, 1], stepped.history.array()[:, 1])


def test_a_model_left_behind_is_the_job_stopped_there_and_can_go_on():
    x, y = blobs()
    conf = TrainConfig(epochs=30, batch_size=8)
    run = ManyRun(TINY, OPTS[:2], [conf], x, y, seeds=[1, 2])
    run.advance(12)
    run.advance(30, models=[1])            # model 0 stays after epoch 12
    stopped = run.result(0)
    single = alone(TINY, OPTS[0], conf, 1, x, y, stop_after=12)
    assert stopped.stop_reason == engine.STOPPED and stopped.epochs_run == 12 == single.epochs_run
    same_weights(stopped, single)
    assert stopped.final == single.final
    assert run.live() == [0]
    run.advance()                          # and it trains on to the end as if never paused
    same_weights(run.result(0), alone(TINY, OPTS[0], conf, 1, x, y))
    same_weights(run.result(1), alone(TINY, OPTS[1], conf, 2, x, y))
    # its state resumes in `train` bit-identically too
    resumed = engine.train(ModelSpec(**{**TINY.__dict__, "seed": 1}), OPTS[0], conf, x, y, state=stopped.state)
    same_weights(resumed, run.result(0))


def test_a_diverged_model_stops_and_the_rest_go_on():
    x, y = blobs()
    conf = TrainConfig(epochs=20, batch_size=8)
    model = ModelSpec(inputs=7, layers=[LayerSpec(16, "relu"), LayerSpec(3, "identity")], loss="mse")
    opts = [OptimizerSpec(learning_rate=50.0), OptimizerSpec(learning_rate=1e-4)]
    y = y * 1e3
    run = ManyRun(model, opts, [conf], x, y, seeds=[1, 2])
    run.advance(5)
    assert run.diverged[0] and run.live() == [1]
    run.advance()
    bad, good = run.result(0), run.result(1)
    assert bad.stop_reason == engine.DIVERGED and bad.epochs_run < 5
    assert good.stop_reason == engine.COMPLETED
    same_weights(good, alone(model, opts[1], conf, 2, x, y))
    same_weights(bad, alone(model, opts[0], conf, 1, x, y))


def test_tiny_networks_run_their_generated_loop_in_a_batch():
    x, y = blobs()
    run = ManyRun(TINY, [OptimizerSpec(learning_rate=0.3), OptimizerSpec(kind="adam", learning_rate=0.01)],
                  [TrainConfig(epochs=3)], x, y, seeds=[1, 2])
    if not tinygen.ENABLED:
        pytest.skip("FUSETRAIN_TINY=0")
    tiny = tinygen.load(tinygen.arch_key(run.layout, run.ints[0], TINY.dtype))
    assert run.loops[0] is tiny.run              # plain SGD: the generated loop
    assert run.loops[1] is not tiny.run          # Adam: the generic loop


def test_until_out_of_range_is_refused_by_name():
    x, y = blobs()
    run = ManyRun(TINY, [OPTS[0]], [TrainConfig(epochs=5)], x, y)
    for bad in (0, 6):
        with pytest.raises(engine.InvalidSpec, match="until"):
            run.advance(bad)
