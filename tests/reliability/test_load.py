"""Load, small: 16 concurrent clients x 5 jobs, no error of any code (`make load`: 64 x 50)."""

from __future__ import annotations

from load import report, run_load

from helpers import ServerProcess


def test_load_small(tmp_path):
    proc = ServerProcess(tmp_path / "data", "--workers", "2", "--rpc-threads", "32")
    try:
        proc.wait_healthy()
        f = run_load(proc.address, proc.proc.pid, clients=16, jobs=5, processes=2, timeout=300)
    finally:
        proc.stop()
    print("\n" + report(f))
    assert f["codes"] == {"OK": 16 * 5 * 4} and f["succeeded"] == 80
