"""The hostile proof, small: every attack class for 5 s beside 2 honest clients (`make hostile`:
120 s beside 8, with the health-latency and memory budgets)."""

from __future__ import annotations

from hostile import failures, report, run_hostile

# Client-visible requirements only; the server log and the budgets are checked by `make hostile`.
IN_MAKE_HOSTILE_ONLY = ("tracebacks in the server log",)


def test_hostile_proof_small(tmp_path):
    f = run_hostile(tmp_path / "data", seconds=5, honest=2, long_epochs=2000, list_jobs=20)
    print("\n" + report(f))
    bad = [b for b in failures(f, budgets=False) if not b.endswith(IN_MAKE_HOSTILE_ONLY)]
    assert not bad, bad
