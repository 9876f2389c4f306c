"""Graceful shutdown under load: SIGTERM while clients submit and workers train. The server exits
within its grace period (plus the time to close), and after a restart on the same data directory
every acknowledged job succeeds, none lost or duplicated, weights as in an uninterrupted run."""

from __future__ import annotations

import threading
import time

from soak import Soak, ok, report

GRACE = 3.0


def test_sigterm_under_load_loses_nothing(tmp_path):
    s = Soak(tmp_path / "data", jobs=24, clients=4, kills=0, epochs=1500, seed=2,
             server_args=("--workers", "2", "--shutdown-grace", str(GRACE)))
    deadline = time.monotonic() + 600
    proc = s.start_server()
    threads = [threading.Thread(target=s.client_loop, args=(i, deadline), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    while len(s.acked) < 10:
        time.sleep(0.05)
    acked_at_sigterm = len(s.acked)
    t0 = time.monotonic()
    code = proc.stop(timeout=60)
    stop_seconds = time.monotonic() - t0
    assert code == 0, "\n".join(proc.log[-20:])
    assert stop_seconds < GRACE + 5, stop_seconds
    suspended = sum("suspended at epoch" in line or "QUEUED (suspended" in line for line in proc.log)
    proc = s.start_server()
    for t in threads:
        t.join(300)
    try:
        f = s.check(proc, deadline)
    finally:
        proc.stop()
    f.update(wall_seconds=0.0, submit_seconds=0.0, kills=0, restart_seconds_max=0.0, client_errors=s.errors)
    print(f"\nshutdown: SIGTERM after {acked_at_sigterm} acknowledged submits; exited in {stop_seconds:.2f} s "
          f"(grace {GRACE:g} s), {suspended} running jobs suspended at an epoch boundary\n" + report(f, 24, 4))
    assert ok(f, 24), f
