"""The fault soak, small: 40 jobs from 4 clients, the server SIGKILLed twice (`make soak`: 500 jobs,
8 clients, 6 kills)."""

from __future__ import annotations

from soak import Soak, ok, report


def test_kill_soak_small(tmp_path):
    f = Soak(tmp_path / "data", jobs=40, clients=4, kills=2, epochs=2000, seed=1).run(timeout=600)
    print("\n" + report(f, 40, 4))
    assert ok(f, 40), f
