"""Which epochs of a run are kept: every one up to max_history_rows, then every k-th.

A result's history and the epoch events WatchJob replays both follow this rule, so a million-epoch
job stores about max_history_rows rows of each, not a million. Beyond the limit the kept epochs
are the first, every multiple of the stride k = ceil(epochs / (limit - 2)), and the last: at most
`limit` rows, evenly spaced, each with its own epoch number.
"""

from __future__ import annotations

import math

import numpy as np


def stride(epochs: int, limit: int) -> int:
    """1 when a run of `epochs` fits `limit` rows (or no limit is set); else the step k."""
    if limit <= 0 or epochs <= limit:
        return 1
    return math.ceil(epochs / max(1, limit - 2))


def kept(epoch_numbers: np.ndarray, epochs: int, limit: int, last: int = 0) -> np.ndarray:
    """A mask of the rows to keep, from their 1-based epoch numbers (`epochs`: the run's planned
    length, `last`: an epoch to keep as well, e.g. where an early stop ended the run)."""
    k = stride(epochs, limit)
    e = np.asarray(epoch_numbers).astype(np.int64)
    if k == 1:
        return np.ones(e.shape, dtype=bool)
    return (e % k == 0) | (e == 1) | (e == epochs) | (e == last)


def thin(rows: np.ndarray, epochs: int, limit: int) -> np.ndarray:
    """The kept rows of a history array whose column 0 is the epoch number; its last row (the
    last epoch run) is always among them."""
    if not len(rows):
        return rows
    return rows[kept(rows[:, 0], max(epochs, len(rows)), limit, last=int(rows[-1, 0]))]
