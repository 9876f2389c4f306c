"""History and TrainState: plain-array round trips and list-like access."""

import math

import numpy as np
import pytest

from fusetrain.engine.result import FIELDS, EpochMetrics, History, TrainState


def test_history_behaves_like_a_list_of_epoch_metrics():
    h = History()
    rows = np.zeros((3, len(FIELDS)))
    rows[:, 0] = [1, 2, 3]
    rows[:, 1] = [0.5, 0.4, 0.3]
    rows[:, 3] = math.nan
    h.extend_rows(rows)
    h.extend_rows(rows[:1] + [[3] + [0] * (len(FIELDS) - 1)])
    assert len(h) == 4
    assert isinstance(h[0], EpochMetrics) and h[0].epoch == 1 and isinstance(h[0].epoch, int)
    assert h[-1].epoch == 4 and h[-2].train_loss == 0.3
    assert [m.epoch for m in h] == [1, 2, 3, 4]
    assert [m.epoch for m in h[1:3]] == [2, 3]
    np.testing.assert_array_equal(h.column("train_loss"), [0.5, 0.4, 0.3, 0.5])
    with pytest.raises(IndexError):
        h[4]
    copy = h.copy()
    assert copy == h
    copy.extend_rows(rows)
    assert len(h) == 4 and copy != h


def test_train_state_round_trips_through_plain_arrays():
    rows = np.arange(2 * len(FIELDS), dtype=float).reshape(2, len(FIELDS))
    state = TrainState(params=np.arange(5, dtype=np.float32), opt_state=np.ones((2, 5), np.float32), step=7,
                       rng=np.array([123], np.uint64), epoch=2, best_params=np.zeros(5, np.float32), best_value=0.25,
                       best_epoch=1, history=History(rows))
    arrays = state.arrays()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in arrays.values())
    back = TrainState.from_arrays(arrays)
    np.testing.assert_array_equal(back.params, state.params)
    np.testing.assert_array_equal(back.opt_state, state.opt_state)
    assert (back.step, back.epoch, back.best_epoch, back.best_value) == (7, 2, 1, 0.25)
    assert back.rng.dtype == np.uint64 and back.rng[0] == 123
    assert back.history == state.history
