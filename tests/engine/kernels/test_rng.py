"""The in-kernel shuffle: a permutation, seeded, uniform enough, resumable from its state."""

import numpy as np

from fusetrain.engine.kernels.rng import seed_state, shuffle


def test_shuffle_is_a_seeded_permutation():
    a, b = np.arange(100), np.arange(100)
    shuffle(a, seed_state(5))
    shuffle(b, seed_state(5))
    np.testing.assert_array_equal(a, b)
    assert sorted(a) == list(range(100)) and not np.array_equal(a, np.arange(100))
    c = np.arange(100)
    shuffle(c, seed_state(6))
    assert not np.array_equal(a, c)


def test_positions_are_roughly_uniform():
    state = seed_state(1)
    counts = np.zeros((5, 5))
    for _ in range(20000):
        p = np.arange(5)
        shuffle(p, state)
        counts[np.arange(5), p] += 1
    assert np.all(np.abs(counts / 20000 - 0.2) < 0.015)


def test_state_continues():
    s = seed_state(9)
    first, second = np.arange(20), np.arange(20)
    shuffle(first, s)
    saved = s.copy()
    shuffle(second, s)
    again = np.arange(20)
    shuffle(again, saved)
    np.testing.assert_array_equal(second, again)
