"""Fair share: at equal priority, owners take turns in the queue instead of first come, first served.

An owner's next waiting job at a priority takes turn max(its last turn + 1, the turn now being
started): one owner's thousand queued jobs get turns 0..999, and a job another owner queues
meanwhile takes the turn last started, so it goes next, not after the thousand. The queue sorts by
(-priority, turn, submission order).
"""

from __future__ import annotations

from collections import defaultdict


class FairTurns:
    def __init__(self):
        self._next: dict = {}                      # (owner, priority) -> its next turn
        self._current: defaultdict = defaultdict(int)   # priority -> the turn last started

    def take(self, owner: str, priority: int) -> int:
        """The turn of a job `owner` queues now at `priority`."""
        turn = max(self._next.get((owner, priority), 0), self._current[priority])
        self._next[(owner, priority)] = turn + 1
        return turn

    def started(self, priority: int, turn: int) -> None:
        """A job of `turn` at `priority` left the queue for a worker."""
        self._current[priority] = max(self._current[priority], turn)
