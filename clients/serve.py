"""`fusetrain serve`: its options and the start of the service (imported only when it runs).

The service and the engine are the `server` extra: a client-only install answers `serve` with one
line naming it (exit 3).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXAMPLE = ".venv/bin/fusetrain train examples/jobs/xor.json --server {address}"
WEB_ADDRESS = "127.0.0.1:8080"      # `fusetrain serve`'s dashboard


def add_serve(sub) -> None:
    cores = os.cpu_count() or 1
    p = sub.add_parser("serve", help="run the gRPC training service", description="run the gRPC training service",
                       epilog="examples:\n  fusetrain serve\n  fusetrain serve --address 0.0.0.0:50051 "
                              "--data-dir /var/lib/fusetrain --workers 4",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--address", default="127.0.0.1:50051", help="host:port to listen on (port 0: any free)")
    p.add_argument("--data-dir", default="data", type=Path, help="store: SQLite database and files")
    p.add_argument("--threads-per-worker", type=int, default=1, help="threads of each job (default 1)")
    p.add_argument("--workers", type=int, default=None,
                   help=f"worker processes (default: cores / threads per worker = {cores} here)")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="where jobs run: local worker processes (default) or a Ray cluster (the ray extra)")
    p.add_argument("--ray-address", default="local", metavar="ADDR",
                   help="with --executor ray: 'local' starts a private single-node Ray on 127.0.0.1 with "
                        "workers x threads CPUs (default); else HOST:PORT of a cluster's head, or 'auto'")
    p.add_argument("--ray-max-retries", type=int, default=0, metavar="N",
                   help="with --executor ray: run a job again up to N times when its worker or node dies "
                        "(default 0: it fails with WORKER_CRASHED)")
    p.add_argument("--pack-seconds", type=float, default=None, metavar="S",
                   help="with --executor ray: small jobs of one kind train together, K to a Ray task, about S "
                        "seconds of work a pack (default 0.5; 0: every job a task of its own)")
    p.add_argument("--max-retries", type=int, default=1, metavar="N",
                   help="local workers: run a job again up to N times, from its last checkpoint, when its "
                        "worker process dies (default 1; 0: it fails with WORKER_CRASHED)")
    p.add_argument("--max-message-bytes", type=int, help="largest gRPC message accepted")
    p.add_argument("--max-dataset-bytes", type=int, help="largest uploaded dataset")
    p.add_argument("--max-parameters", type=int, help="largest model (weights and biases)")
    p.add_argument("--max-epochs", type=int, help="most epochs of one job")
    p.add_argument("--max-queued-jobs", type=int, help="most jobs queued or running at once")
    p.add_argument("--max-batch-jobs", type=int, help="most jobs in one SubmitJobs call")
    p.add_argument("--max-job-seconds", type=float, help="wall-time limit of one job attempt")
    p.add_argument("--max-client-jobs", type=int,
                   help="most jobs queued or running per token owner (RESOURCE_EXHAUSTED with a retry hint)")
    p.add_argument("--max-labels", type=int, help="most labels of one job or one label filter (default 64)")
    p.add_argument("--max-batch-spec-bytes", type=int,
                   help="a grid's base spec bytes x combinations (default 64 MiB)")
    p.add_argument("--max-predict-rows", type=int, help="rows of one Predict call (default 100,000)")
    p.add_argument("--max-predict-calls", type=int, help="Predict calls queued or running at once (default 4)")
    p.add_argument("--max-predict-cache-bytes", type=int,
                   help="weights of the models kept decoded for Predict (default 256 MiB)")
    p.add_argument("--max-reply-bytes", type=int,
                   help="one ListJobs reply; a longer page ends early with a page token (default 4 MiB)")
    p.add_argument("--max-job-memory-bytes", type=int,
                   help="one job's estimated memory: parameters, activations, data (default 2 GiB)")
    p.add_argument("--max-streams", type=int,
                   help="UploadDataset and WatchJob calls open at once (default: --rpc-threads less 4)")
    p.add_argument("--max-client-streams", type=int, help="open streams of one token owner (default 8)")
    p.add_argument("--max-upload-idle-seconds", type=float,
                   help="end an upload that sends nothing for this long (default 30)")
    p.add_argument("--max-history-rows", type=int,
                   help="epochs of a result's history kept at full resolution, then thinned evenly (default 10000)")
    p.add_argument("--max-dataset-decoded-bytes", type=int,
                   help="largest uploaded dataset once decompressed, from its headers (default 1 GiB)")
    p.add_argument("--checkpoint-seconds", type=float, default=5.0, help="how often running jobs checkpoint")
    p.add_argument("--shutdown-grace", type=float, default=10.0,
                   help="seconds running jobs get to checkpoint on SIGTERM/SIGINT")
    p.add_argument("--no-warmup", action="store_true", help="do not load the engine's kernels at start")
    p.add_argument("--kernel-cache", type=Path, default=None, metavar="DIR",
                   help="the compiled kernels' cache for the server and its workers (sets $NUMBA_CACHE_DIR; "
                        "default $NUMBA_CACHE_DIR, else ~/.cache/fusetrain/numba)")
    p.add_argument("--rpc-threads", type=int, default=16,
                   help="calls served at once (each open WatchJob stream holds one; default 16)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--token", default=os.environ.get("FUSETRAIN_TOKEN", ""),
                   help="require 'authorization: Bearer TOKEN' on every call (default $FUSETRAIN_TOKEN; "
                        "clients send it with --token)")
    p.add_argument("--token-file", type=Path, default=os.environ.get("FUSETRAIN_TOKEN_FILE") or None,
                   help="tokens, one 'NAME TOKEN' (or 'TOKEN') a line; each owner sees only its own jobs "
                        "(default $FUSETRAIN_TOKEN_FILE)")
    p.add_argument("--allow-unauthenticated", action="store_true",
                   help="serve an address other than loopback without tokens (refused otherwise)")
    p.add_argument("--tls-cert", type=Path, help="PEM certificate (chain) of the server: serve TLS")
    p.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    p.add_argument("--tls-client-ca", type=Path,
                   help="PEM CA certificate: clients must present a certificate it signed (mutual TLS)")
    p.add_argument("--web-address", default=None, metavar="HOST:PORT",
                   help=f"the web dashboard and Prometheus /metrics (default {WEB_ADDRESS}, skipped with a "
                        f"warning when busy; port 0: any free)")
    p.add_argument("--no-web", action="store_true", help="serve no dashboard and no /metrics")
    p.set_defaults(func=serve)


def serve(args) -> int:
    if args.kernel_cache is not None:     # before the engine is imported: its kernels find the cache then
        from .localinfo import use_kernel_cache
        try:
            use_kernel_cache(args.kernel_cache)
        except ValueError as exc:
            print(f"fusetrain serve: {exc}", file=sys.stderr)
            return 2
    try:
        from fusetrain.service.config import ServerConfig, ServiceLimits
        from fusetrain.service.server import serve as run_server
    except ImportError:                    # a client-only install: the service is an extra
        print("fusetrain serve: the server is not installed: pip install 'fusetrain[server]'", file=sys.stderr)
        return 3

    limits = ServiceLimits()
    for key in ("max_message_bytes", "max_dataset_bytes", "max_parameters", "max_epochs",
                "max_queued_jobs", "max_batch_jobs", "max_job_seconds", "max_client_jobs", "max_labels",
                "max_dataset_decoded_bytes", "max_streams", "max_client_streams", "max_upload_idle_seconds",
                "max_history_rows",
                "max_batch_spec_bytes", "max_predict_rows", "max_predict_calls",
                "max_predict_cache_bytes", "max_reply_bytes", "max_job_memory_bytes"):
        value = getattr(args, key)
        if value is not None:
            setattr(limits, key, value)
    threads = max(1, args.threads_per_worker)
    workers = args.workers or max(1, (os.cpu_count() or 1) // threads)
    config = ServerConfig(address=args.address, data_dir=args.data_dir, workers=workers,
                          executor=args.executor, ray_address=args.ray_address,
                          ray_max_retries=args.ray_max_retries, pack_seconds=(ServerConfig.pack_seconds if args.pack_seconds is None
                                        else max(0.0, args.pack_seconds)),
                          max_retries=max(0, args.max_retries),
                          threads_per_worker=threads, limits=limits,
                          checkpoint_seconds=args.checkpoint_seconds,
                          shutdown_grace_seconds=args.shutdown_grace, warmup=not args.no_warmup,
                          log_level=args.log_level, token=args.token, token_file=args.token_file,
                          allow_unauthenticated=args.allow_unauthenticated, tls_cert=args.tls_cert,
                          tls_key=args.tls_key, tls_client_ca=args.tls_client_ca,
                          rpc_threads=args.rpc_threads,
                          web_address="" if args.no_web else (args.web_address or WEB_ADDRESS),
                          web_optional=args.web_address is None)
    from fusetrain.service.auth import AuthConfigError
    from fusetrain.service.server import AddressUnavailable
    try:
        run_server(config, example="train a job: " + EXAMPLE)
    except (AuthConfigError, AddressUnavailable) as exc:
        print(f"fusetrain serve: {exc}", file=sys.stderr)
        return 2
    return 0
