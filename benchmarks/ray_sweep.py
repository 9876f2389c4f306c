"""A 1,000-job sweep on the local process pool and on Ray (a benchmark, not a test): `make bench-ray`.

For each backend a real `fusetrain serve` child on 127.0.0.1 (2 workers x 1 thread, or a Ray with
2 CPUs) takes one SubmitJobs call: the seeds network (7-5-3, --epochs epochs, batch 16) over
--jobs seeds, all on one uploaded dataset. Reported per backend:
  start-up     `fusetrain serve` to a SERVING health check (Ray: its start and the workers' warm-up)
  memory       PSS of the server and every process under it (Ray's GCS, raylet, workers), idle
               after start-up and again after the sweep
  sweep        SubmitJobs to the last SUCCEEDED: jobs/s, and overhead per job = the core-seconds a
               job cost beyond its training (wall x CPUs / jobs - train + compile seconds);
               CPU ms a job of the server process and of every other process (workers, Ray's)
  identical    whether every job's weights match the local backend's bit for bit
Ray runs once per --pack-seconds value (default "0,0.5": every job a task of its own, then small
jobs packed about half a second of work to a task, `fusetrain serve --pack-seconds`).
--nodes 2 adds a run on a two-node Ray cluster started on this machine with `ray start` (a head and
a worker node, one CPU each, a token of their own), the server joining it with --ray-address; the
cluster is stopped with `ray stop` at the end (which stops every Ray of this user on the machine).
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from google.protobuf import struct_pb2

ROOT = Path(__file__).resolve().parents[1]

from fusetrain.v1 import service_pb2 as pb, service_pb2_grpc  # noqa: E402
from helpers import ServerProcess, npz_bytes, seeds_data, seeds_spec, upload  # noqa: E402


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def tree(pid: int) -> list[int]:
    """`pid` and every process under it."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += _children(p)
    return pids


def pss_mib(pids: list[int]) -> float:
    """Proportional set size of these processes (shared pages split between their users), MiB."""
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds these processes have used so far."""
    total = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def run(label: str, args: list[str], jobs: int, epochs: int, cpus: int, extra_pids=lambda: []) -> dict:
    data = Path(tempfile.mkdtemp(prefix=f"fusetrain-bench-{label}-"))
    proc = ServerProcess(data, "--workers", "2", "--threads-per-worker", "1", *args)
    try:
        start = proc.wait_healthy()
        time.sleep(2.0)
        idle = pss_mib(tree(proc.proc.pid) + extra_pids())
        idle_procs = len(tree(proc.proc.pid) + extra_pids())
        with grpc.insecure_channel(proc.address, options=[("grpc.max_receive_message_length", -1)]) as ch:
            stub = service_pb2_grpc.TrainingServiceStub(ch)
            x, y = seeds_data()
            ds = upload(stub, npz_bytes(x=x, y=y), name="seeds")
            grid = [pb.GridAxis(field="model.seed", values=[struct_pb2.Value(number_value=s) for s in range(jobs)])]
            server = proc.proc.pid
            others = lambda: [p for p in tree(server) + extra_pids() if p != server]  # noqa: E731
            cpu0 = cpu_seconds([server]), cpu_seconds(others())
            t0 = time.perf_counter()
            resp = stub.SubmitJobs(pb.SubmitJobsRequest(base=seeds_spec(ds.id, epochs=epochs, batch_size=16), grid=grid))
            # One job still queued or running, or none: a small question, asked often.
            unfinished = pb.ListJobsRequest(batch_id=resp.batch_id, states=[pb.QUEUED, pb.RUNNING], page_size=1)
            while stub.ListJobs(unfinished).jobs:
                time.sleep(0.01)
            wall = time.perf_counter() - t0
            cpu = cpu_seconds([server]) - cpu0[0], cpu_seconds(others()) - cpu0[1]
            bad = stub.ListJobs(pb.ListJobsRequest(batch_id=resp.batch_id, states=[pb.FAILED, pb.CANCELLED],
                                                   page_size=3)).jobs
            assert not bad, [j.message for j in bad]
            busy = 0.0
            shas = []                 # in grid order: seed 0, 1, ...
            for j in resp.jobs:
                r = stub.GetResult(pb.GetResultRequest(job_id=j.id))
                busy += r.timings.train_seconds + r.timings.compile_seconds
                shas.append(r.weights_sha256)
            after = pss_mib(tree(proc.proc.pid) + extra_pids())
    finally:
        proc.stop()
    return {"label": label, "start": start, "idle_mib": idle, "after_mib": after, "procs": idle_procs,
            "wall": wall, "jobs_per_s": jobs / wall, "train_ms": 1000 * busy / jobs,
            "overhead_ms": 1000 * (wall * cpus - busy) / jobs, "shas": shas,
            "server_ms": 1000 * cpu[0] / jobs, "workers_ms": 1000 * cpu[1] / jobs}


def ray_pids() -> list[int]:
    """Every Ray process on this machine (GCS, raylets, workers, agents)."""
    out = subprocess.run(["pgrep", "-f", "gcs_server|raylet|ray::|ray/_private|ray/dashboard|ray/autoscaler"],
                         capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def two_nodes(jobs: int, epochs: int, pack: float, port: int = 6390) -> dict:
    """The sweep on a head and a worker node started with `ray start`, one CPU each."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    ray_cli = str(Path(sys.executable).parent / "ray")
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    t0 = time.perf_counter()
    try:
        subprocess.run([ray_cli, "start", "--head", f"--port={port}", "--include-dashboard=false", *common],
                       env=env, check=True, capture_output=True)
        subprocess.run([ray_cli, "start", f"--address=127.0.0.1:{port}", *common], env=env, check=True,
                       capture_output=True)
        up = time.perf_counter() - t0
        os.environ.update({k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")})   # for the server child
        try:
            res = run(f"ray 2 nodes{pack_label(pack)}", ["--executor", "ray", "--ray-address", f"127.0.0.1:{port}",
                                                         "--pack-seconds", str(pack)], jobs, epochs, 2,
                      extra_pids=ray_pids)
        finally:
            for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
                os.environ.pop(k, None)
        res["cluster_start"] = up
        return res
    finally:
        subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True)


def pack_label(pack: float) -> str:
    return f", packs {pack:g} s" if pack > 0 else ""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=500)
    p.add_argument("--nodes", type=int, default=2, choices=[0, 2],
                   help="2: also run on a two-node Ray cluster on this machine (default); 0: skip it")
    p.add_argument("--pack-seconds", default="0,0.5", metavar="LIST",
                   help="Ray runs, one per value: --pack-seconds of the server (0: no packs; default 0,0.5); "
                        "the two-node run takes the last")
    a = p.parse_args()
    packs = [float(v) for v in a.pack_seconds.split(",")]
    print(f"{a.jobs} seeds jobs (7-5-3, {a.epochs} epochs, batch 16), 2 CPUs, {os.cpu_count()} cores here, "
          f"{time.strftime('%Y-%m-%d')}", flush=True)
    results = [run("local", ["--executor", "local"], a.jobs, a.epochs, 2)]
    for pack in packs:
        results.append(run(f"ray{pack_label(pack)}", ["--executor", "ray", "--ray-address", "local",
                                                     "--pack-seconds", str(pack)], a.jobs, a.epochs, 2))
    if a.nodes:
        results.append(two_nodes(a.jobs, a.epochs, packs[-1]))
    base = results[0]["shas"]
    print(f"\n{'backend':<24}{'start-up':>10}{'idle MiB':>10}{'procs':>7}{'after MiB':>11}{'wall s':>8}"
          f"{'jobs/s':>8}{'train ms':>10}{'overhead ms/job':>17}{'server cpu ms':>15}{'others cpu ms':>15}"
          f"  identical to local")
    for r in results:
        print(f"{r['label']:<24}{r['start']:>9.2f}s{r['idle_mib']:>10.0f}{r['procs']:>7}{r['after_mib']:>11.0f}"
              f"{r['wall']:>8.2f}{r['jobs_per_s']:>8.1f}{r['train_ms']:>10.2f}{r['overhead_ms']:>17.2f}"
              f"{r['server_ms']:>15.2f}{r['workers_ms']:>15.2f}  "
              f"{'yes' if r['shas'] == base else 'NO'}")
    for r in results:
        if "cluster_start" in r:
            print(f"two-node cluster (`ray start` head + worker, 1 CPU each) up in {r['cluster_start']:.2f} s before "
                  f"the server joined it; its processes' memory is counted with the server's")


if __name__ == "__main__":
    main()
