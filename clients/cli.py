"""The `fusetrain` command line: `serve` starts the service; `submit` queues job files.

argparse with one sub-command per function; add a sub-command with `_add_<name>(subparsers)`.
Only `serve` imports the service (and so the engine); the rest need grpcio and protobuf alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

DEFAULT_SERVER = os.environ.get("FUSETRAIN_SERVER", "127.0.0.1:50051")
EXAMPLE = ".venv/bin/fusetrain submit examples/jobs/xor.json --server {address} --wait"


def _add_serve(sub) -> None:
    cores = os.cpu_count() or 1
    p = sub.add_parser("serve", help="run the gRPC training service")
    p.add_argument("--address", default="127.0.0.1:50051", help="host:port to listen on (port 0: any free)")
    p.add_argument("--data-dir", default="data", type=Path, help="store: SQLite database and files")
    p.add_argument("--threads-per-worker", type=int, default=1, help="threads of each job (default 1)")
    p.add_argument("--workers", type=int, default=None,
                   help=f"worker processes (default: cores / threads per worker = {cores} here)")
    p.add_argument("--max-message-bytes", type=int, help="largest gRPC message accepted")
    p.add_argument("--max-dataset-bytes", type=int, help="largest uploaded dataset")
    p.add_argument("--max-parameters", type=int, help="largest model (weights and biases)")
    p.add_argument("--max-epochs", type=int, help="most epochs of one job")
    p.add_argument("--max-queued-jobs", type=int, help="most jobs queued or running at once")
    p.add_argument("--max-batch-jobs", type=int, help="most jobs in one SubmitJobs call")
    p.add_argument("--max-job-seconds", type=float, help="wall-time limit of one job attempt")
    p.add_argument("--checkpoint-seconds", type=float, default=5.0, help="how often running jobs checkpoint")
    p.add_argument("--shutdown-grace", type=float, default=10.0,
                   help="seconds running jobs get to checkpoint on SIGTERM/SIGINT")
    p.add_argument("--no-warmup", action="store_true", help="do not load the engine's kernels at start")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=_serve)


def _serve(args) -> int:
    from fusetrain.service.config import ServerConfig, ServiceLimits
    from fusetrain.service.server import serve

    limits = ServiceLimits()
    for key in ("max_message_bytes", "max_dataset_bytes", "max_parameters", "max_epochs",
                "max_queued_jobs", "max_batch_jobs", "max_job_seconds"):
        value = getattr(args, key)
        if value is not None:
            setattr(limits, key, value)
    threads = max(1, args.threads_per_worker)
    workers = args.workers or max(1, (os.cpu_count() or 1) // threads)
    config = ServerConfig(address=args.address, data_dir=args.data_dir, workers=workers,
                          threads_per_worker=threads, limits=limits,
                          checkpoint_seconds=args.checkpoint_seconds,
                          shutdown_grace_seconds=args.shutdown_grace, warmup=not args.no_warmup,
                          log_level=args.log_level)
    serve(config, example="submit a job: " + EXAMPLE)
    return 0


def load_job_file(path: Path):
    """A JobSpec from a JSON or YAML job file (its proto3 JSON form)."""
    from google.protobuf import json_format
    from fusetrain.v1 import job_pb2

    text = Path(path).read_text()
    if Path(path).suffix.lower() in (".yaml", ".yml"):
        import yaml
        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    return json_format.ParseDict(data, job_pb2.JobSpec())


def _add_submit(sub) -> None:
    p = sub.add_parser("submit", help="queue job files (JSON or YAML JobSpec) on a server")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--server", default=DEFAULT_SERVER, help="host:port (env FUSETRAIN_SERVER)")
    p.add_argument("--request-id", default="", help="idempotency key (one file only)")
    p.add_argument("--wait", action="store_true", help="watch the jobs and print their final metrics")
    p.set_defaults(func=_submit)


def _submit(args) -> int:
    import grpc
    from fusetrain.v1 import service_pb2 as pb, service_pb2_grpc

    with grpc.insecure_channel(args.server) as channel:
        stub = service_pb2_grpc.TrainingServiceStub(channel)
        failed = 0
        for path in args.files:
            try:
                job = stub.SubmitJob(pb.SubmitJobRequest(spec=load_job_file(path), request_id=args.request_id))
            except grpc.RpcError as exc:
                print(f"{path}: {exc.code().name}: {exc.details()}", file=sys.stderr)
                failed += 1
                continue
            print(f"{path}: job {job.id} {pb.JobState.Name(job.state)}", flush=True)
            if args.wait:
                failed += _wait(stub, pb, job.id)
        return 1 if failed else 0


def _wait(stub, pb, job_id: str) -> int:
    final = None
    events = (e for message in stub.WatchJob(pb.WatchJobRequest(job_id=job_id)) for e in message.events)
    for event in events:
        if event.HasField("state"):
            final = event.state
            print(f"  {pb.JobState.Name(event.state.state)}"
                  + (f" ({event.state.message})" if event.state.message else ""), flush=True)
    if final is None or final.state != pb.SUCCEEDED:
        return 1
    r = stub.GetResult(pb.GetResultRequest(job_id=job_id))
    acc = f", train accuracy {r.final.train_accuracy:.3f}" if r.final.HasField("train_accuracy") else ""
    print(f"  {r.epochs_run} epochs, train loss {r.final.train_loss:.6g}{acc}; "
          f"train {r.timings.train_seconds * 1e3:.1f} ms, weights sha256 {r.weights_sha256[:16]}…")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fusetrain", description="fast CPU training of MLPs, over gRPC")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    _add_submit(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
