"""Fault soak: concurrent clients submit jobs while the server is SIGKILLed at random moments and
restarted on the same data directory and port. Afterwards every acknowledged job must be
SUCCEEDED, none lost or duplicated, each completed exactly once, every stored result's sha256 must
verify, and every job's weights must be bit-identical to an uninterrupted in-process run.

    python tests/reliability/soak.py --jobs 500 --clients 8 --kills 6      (make soak)
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "service"), str(HERE.parents[1] / "benchmarks")]

from reliability_helpers import free_port  # noqa: E402
from service_helpers import long_spec  # noqa: E402

from fusetrain.client import Client, errors  # noqa: E402
from helpers import ServerProcess  # noqa: E402
from fusetrain.v1 import service_pb2 as pb  # noqa: E402

SPECS = 10          # distinct specs (model seeds); job i runs spec i % SPECS


def soak_spec(i: int, epochs: int):
    spec = long_spec(epochs=epochs, rows=256)
    spec.name = f"soak-{i % SPECS}"
    spec.training.batch_size = 8
    spec.model.seed = i % SPECS
    spec.training.seed = i % SPECS
    return spec


class Soak:
    def __init__(self, data_dir: Path, jobs: int, clients: int, kills: int, epochs: int,
                 seed: int = 0, server_args=("--workers", "2")):
        self.data_dir, self.jobs, self.clients, self.kills, self.epochs = data_dir, jobs, clients, kills, epochs
        self.rng = random.Random(seed)
        self.address = f"127.0.0.1:{free_port()}"
        self.server_args = (*server_args, "--checkpoint-seconds", "0.1", "--shutdown-grace", "5")
        self.acked: dict[str, str] = {}        # request id -> job id
        self.lock = threading.Lock()
        self.submitting = True
        self.killed = 0
        self.restart_seconds: list[float] = []
        self.errors: list[str] = []

    def start_server(self) -> ServerProcess:
        proc = ServerProcess(self.data_dir, *self.server_args, address=self.address)
        self.restart_seconds.append(proc.wait_healthy(timeout=300))
        return proc

    def client_loop(self, index: int, deadline: float) -> None:
        mine = list(range(index, self.jobs, self.clients))
        with Client(self.address, timeout=10, retries=8, backoff=0.05) as c:
            for i in mine:
                request_id = f"soak-{i}"
                spec = soak_spec(i, self.epochs)
                while True:
                    if time.monotonic() > deadline:
                        self.errors.append(f"{request_id}: not acknowledged before the deadline")
                        return
                    try:
                        job = c.submit(spec, request_id=request_id)
                        break
                    except (errors.Unavailable, errors.DeadlineExceeded):
                        time.sleep(0.2)      # the server is down: the same request id again
                with self.lock:
                    self.acked[request_id] = job.id
                time.sleep(self.rng.uniform(0, 0.02))

    def run(self, timeout: float = 1800) -> dict:
        t0 = time.monotonic()
        deadline = t0 + timeout
        proc = self.start_server()
        threads = [threading.Thread(target=self.client_loop, args=(i, deadline), daemon=True)
                   for i in range(self.clients)]
        for t in threads:
            t.start()
        # Kill at random moments while the clients submit and the workers train.
        expected_seconds = self.jobs * self.epochs * 9e-5 / 2
        gaps = [self.rng.uniform(0.3, 1.0) for _ in range(self.kills)]
        scale = max(1.0, 0.8 * expected_seconds / sum(gaps))
        for gap in gaps:
            time.sleep(gap * scale)
            proc.kill()
            self.killed += 1
            proc = self.start_server()
        for t in threads:
            t.join(max(1.0, deadline - time.monotonic()))
        submitted_s = time.monotonic() - t0
        try:
            figures = self.check(proc, deadline)
        finally:
            proc.stop()
        figures.update(wall_seconds=time.monotonic() - t0, submit_seconds=submitted_s, kills=self.killed,
                       restart_seconds_max=max(self.restart_seconds[1:] or [0.0]),
                       client_errors=self.errors)
        return figures

    def check(self, proc, deadline: float) -> dict:
        from fusetrain.client.local import train_local

        with Client(self.address, timeout=60) as c:
            while True:                         # every job reaches a final state
                jobs = list(c.jobs())
                if all(j.state in ("SUCCEEDED", "FAILED", "CANCELLED") for j in jobs) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            by_request: dict[str, list] = {}
            for j in jobs:
                by_request.setdefault(j.request_id, []).append(j)
            lost = [r for r, jid in self.acked.items() if jid not in {j.id for j in by_request.get(r, [])}]
            duplicated = [r for r, js in by_request.items() if len(js) > 1]
            not_succeeded = [(j.id, j.state, j.message) for j in jobs if j.state != "SUCCEEDED"]
            completions, resumed = {}, 0
            for j in jobs:                      # completed once: one SUCCEEDED event per job
                events = list(c.watch(j.id))
                completions[j.id] = sum(1 for e in events if getattr(e, "state", None) == "SUCCEEDED")
                resumed += any("resumes from its last checkpoint" in (getattr(e, "message", "") or "")
                               for e in events)
            twice = [jid for jid, n in completions.items() if n != 1]
            reference = {k: train_local(soak_spec(k, self.epochs)).weights_sha256 for k in range(SPECS)}
            mismatched, rerun = [], 0
            for j in jobs:
                r = c.result(j.id)              # the client checks weights_sha256 against the weights
                k = int(j.request_id.split("-")[1]) % SPECS
                if r.weights_sha256 != reference[k]:
                    mismatched.append(j.id)
                rerun += j.attempt > 1
        bad_files = []
        for path in (self.data_dir / "results").glob("*.pb"):
            if hashlib.sha256(path.read_bytes()).hexdigest() != path.stem:
                bad_files.append(path.name)
        return {"jobs": len(jobs), "acknowledged": len(self.acked), "lost": len(lost), "duplicated": len(duplicated),
                "not_succeeded": not_succeeded, "completed_twice": len(twice), "rerun_jobs": rerun, "resumed_jobs": resumed,
                "weights_mismatched": len(mismatched), "result_files": len(list((self.data_dir / "results").glob("*.pb"))),
                "result_files_bad": len(bad_files)}


def report(f: dict, jobs: int, clients: int) -> str:
    return (f"soak: {f['acknowledged']}/{jobs} jobs acknowledged from {clients} clients, {f['kills']} SIGKILLs "
            f"(restart to SERVING at most {f['restart_seconds_max']:.1f} s); {f['jobs']} jobs in the store, "
            f"lost {f['lost']}, duplicated {f['duplicated']}, not SUCCEEDED {len(f['not_succeeded'])}, "
            f"completed twice {f['completed_twice']}; {f['rerun_jobs']} jobs ran more than one attempt "
            f"({f['resumed_jobs']} resumed from a checkpoint); "
            f"weights differing from an uninterrupted run {f['weights_mismatched']}; result files "
            f"{f['result_files']} with sha256 mismatches {f['result_files_bad']}; wall {f['wall_seconds']:.1f} s "
            f"(submits done after {f['submit_seconds']:.1f} s)")


def ok(f: dict, jobs: int) -> bool:
    return (f["acknowledged"] == jobs == f["jobs"] and f["lost"] == 0 and f["duplicated"] == 0
            and not f["not_succeeded"] and f["completed_twice"] == 0 and f["weights_mismatched"] == 0
            and f["result_files_bad"] == 0 and not f["client_errors"])


def main() -> int:
    import tempfile
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=500)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--kills", type=int, default=6)
    p.add_argument("--epochs", type=int, default=3000, help="epochs of each job (~0.1 ms each)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="fusetrain-soak-") as tmp:
        f = Soak(Path(tmp) / "data", a.jobs, a.clients, a.kills, a.epochs, a.seed).run()
    print(report(f, a.jobs, a.clients))
    if not ok(f, a.jobs):
        print("FAILED:", {k: v for k, v in f.items() if v}, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
