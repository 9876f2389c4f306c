"""Fair share: the queue order the process pool uses, (-priority, turn, submission order)."""

from __future__ import annotations

import bisect
import itertools

from fusetrain.service.fairshare import FairTurns


class _Queue:
    """The pool's queue discipline without processes: push with a turn, pop the smallest key."""

    def __init__(self):
        self.turns, self.items, self.order = FairTurns(), [], itertools.count()

    def push(self, owner: str, name: str, priority: int = 0) -> None:
        key = (-priority, self.turns.take(owner, priority), next(self.order))
        bisect.insort(self.items, (key, name), key=lambda e: e[0])


def _run(queue: _Queue, n: int) -> list[str]:
    out = []
    for _ in range(n):
        (neg, turn, _), name = queue.items.pop(0)
        queue.turns.started(-neg, turn)
        out.append(name)
    return out


def test_owners_take_turns_at_equal_priority():
    q = _Queue()
    for i in range(5):
        q.push("alice", f"a{i}")
    q.push("bob", "b0")
    q.push("bob", "b1")
    assert _run(q, 7) == ["a0", "b0", "a1", "b1", "a2", "a3", "a4"]


def test_a_late_owner_waits_one_turn_not_the_whole_queue():
    q = _Queue()
    for i in range(100):
        q.push("alice", f"a{i}")
    assert _run(q, 10) == [f"a{i}" for i in range(10)]
    q.push("bob", "b0")
    assert _run(q, 2) == ["b0", "a10"]              # next, not after the 90 still waiting


def test_priority_still_comes_first():
    q = _Queue()
    for i in range(3):
        q.push("alice", f"a{i}")
    q.push("bob", "urgent", priority=5)
    assert _run(q, 4) == ["urgent", "a0", "a1", "a2"]
