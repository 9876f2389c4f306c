"""The kept epochs of a long run: every one up to the limit, then every k-th, first and last."""

from __future__ import annotations

import numpy as np
import pytest

from fusetrain.service import history


def _rows(n: int) -> np.ndarray:
    rows = np.zeros((n, 3))
    rows[:, 0] = np.arange(1, n + 1)
    return rows


@pytest.mark.parametrize("epochs, limit", [(10, 10), (11, 10), (1_000_000, 10_000), (20_000, 500),
                                           (999, 3), (5, 0)])
def test_at_most_limit_rows_evenly_spaced_with_first_and_last(epochs, limit):
    out = history.thin(_rows(epochs), epochs, limit)[:, 0].astype(int).tolist()
    assert out[0] == 1 and out[-1] == epochs and out == sorted(set(out))
    if limit <= 0 or epochs <= limit:
        assert out == list(range(1, epochs + 1))
    else:
        assert len(out) <= limit
        k = history.stride(epochs, limit)
        assert all(e % k == 0 for e in out[1:-1]) and len(out) >= limit // 2


def test_an_early_stop_keeps_its_last_epoch():
    out = history.thin(_rows(12_345), 1_000_000, 100)[:, 0].astype(int)
    assert out[-1] == 12_345 and len(out) <= 100


def test_events_sent_in_blocks_keep_the_same_epochs_as_the_whole():
    """The recorder filters each block of epochs as it arrives: together, the same rows."""
    rows, epochs, limit = _rows(7_000), 7_000, 300
    blocks = np.array_split(rows, 37)
    kept = np.concatenate([b[history.kept(b[:, 0], epochs, limit)] for b in blocks])
    assert np.array_equal(kept, history.thin(rows, epochs, limit))
