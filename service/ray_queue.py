"""The Ray driver's queue: runs ordered by JobSpec priority, then owners' turns (fairshare), taken
one at a time or, for small jobs of one kind, K at a time as a pack (packing.py)."""

from __future__ import annotations

import bisect
import itertools
import math
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Optional

from . import executor as ex
from .fairshare import FairTurns
from .packing import estimate_seconds, pack_key, pack_size


@dataclass
class Run:
    """One attempt of a job and what the driver knows of it."""

    task: ex.Task
    token: int
    future: Future
    cpus: int = 1
    ref: object = None               # set once it is handed to Ray
    started: bool = False
    deadline: Optional[float] = None
    kill_outcome: Optional[ex.Outcome] = None
    abandoned: bool = False          # its future was resolved already (cancelled before it started)
    last_state: Optional[dict] = None   # its latest checkpoint (TrainState arrays)
    retried: int = 0                 # runs of the job again before this one
    key: Optional[tuple] = None      # packing.pack_key, when it may train in a pack
    seconds: float = math.inf        # its training time, estimated
    packed: bool = False             # handed to Ray in a pack of more than one
    turn: int = field(default=-1, repr=False)


class RunQueue:
    """Runs waiting for a CPU, next first: (-priority, turn, submission order); a retry goes first."""

    def __init__(self, pack_seconds: float):
        self.pack_seconds = pack_seconds
        self._entries: list = []
        self._turns = FairTurns()
        self._order = itertools.count()

    def push(self, run: Run, first: bool = False) -> None:
        """Queue `run`: in its owner's next turn, or (a retry) before everything else."""
        run.turn = -1 if first else self._turns.take(run.task.owner, run.task.priority)
        if not first and self.pack_seconds > 0:
            run.key, run.seconds = pack_key(run.task), estimate_seconds(run.task)
        bisect.insort(self._entries, ((-run.task.priority, run.turn, next(self._order)), run), key=lambda e: e[0])

    def remove(self, run: Run) -> None:
        self._entries = [e for e in self._entries if e[1] is not run]

    def head(self) -> Optional[Run]:
        return self._entries[0][1] if self._entries else None

    def runs(self) -> list[Run]:
        return [run for _, run in self._entries]

    def take(self, cpus: float) -> list[Run]:
        """The next run and, when it is small enough to pack, up to K-1 more of its kind (in queue
        order; K from packing.pack_size with the cluster's `cpus`), out of the queue."""
        head = self._entries[0][1]
        mates = [run for _, run in self._entries[1:] if head.key is not None and run.key == head.key]
        k = pack_size(head.seconds, len(mates) + 1, cpus, self.pack_seconds) if mates else 1
        taken = [head] + mates[:k - 1]
        if len(taken) > 1:
            chosen = set(map(id, taken))
            self._entries = [e for e in self._entries if id(e[1]) not in chosen]
            for run in taken:
                run.packed = True
        else:
            self._entries.pop(0)
        for run in taken:
            if run.turn >= 0:
                self._turns.started(run.task.priority, run.turn)
        return taken
