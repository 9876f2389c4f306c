"""Server settings: address, data directory, workers, threads, limits (all `fusetrain serve` options)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .packing import PACK_SECONDS


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass
class ServiceLimits:
    """Limits a client can hit; each is reported by GetServerInfo and answered RESOURCE_EXHAUSTED."""

    max_message_bytes: int = 4 * 1024 * 1024       # one gRPC message, both directions
    max_dataset_bytes: int = 1024 * 1024 * 1024    # one uploaded dataset
    max_parameters: int = 50_000_000
    max_epochs: int = 1_000_000
    max_queued_jobs: int = 100_000
    max_batch_jobs: int = 10_000
    max_job_seconds: float = 24 * 3600.0
    max_rows: int = 10_000_000
    max_layers: int = 64
    max_units: int = 65_536
    max_client_jobs: int = 0                       # queued + running jobs of one owner; 0 = no limit
    max_labels: int = 64                           # labels of one job, and of one ListJobs filter
    max_dataset_decoded_bytes: int = 1024 * 1024 * 1024   # an uploaded NPZ's arrays, decompressed
    max_batch_spec_bytes: int = 64 * 1024 * 1024  # a grid's expanded specs: base size x combinations
    max_predict_rows: int = 100_000               # rows of one Predict call
    max_predict_calls: int = 4                     # Predict calls queued or running at once
    max_predict_cache_bytes: int = 256 * 1024 * 1024   # decoded models kept for Predict
    max_reply_bytes: int = 4 * 1024 * 1024         # one ListJobs reply (a default client's receive limit)
    max_job_memory_bytes: int = 2 * 1024 * 1024 * 1024   # one job's estimated memory (engine.memory)
    max_streams: int = 0                           # open UploadDataset/WatchJob calls; 0 = rpc threads - 4
    max_client_streams: int = 8                    # open streams of one token owner; 0 = only max_streams
    max_upload_idle_seconds: float = 30.0          # an UploadDataset that sends nothing this long is ended
    max_history_rows: int = 10_000                 # epochs of a result's history at full resolution


@dataclass
class ServerConfig:
    address: str = "127.0.0.1:50051"
    data_dir: Path = Path("data")
    workers: int = field(default_factory=default_workers)
    threads_per_worker: int = 1          # workers * threads_per_worker <= cores by default
    executor: str = "local"              # where jobs run: "local" (process pool) or "ray"
    ray_address: str = "local"           # executor "ray": "local" starts a private Ray, else ray.init(address=)
    ray_max_retries: int = 0             # executor "ray": runs of a job again after its worker or node died
    pack_seconds: float = PACK_SECONDS   # executor "ray": estimated work of one pack of small jobs (0: no packs)
    max_retries: int = 1                 # executor "local": runs of a job again, from its last checkpoint,
                                         # after its worker process died
    limits: ServiceLimits = field(default_factory=ServiceLimits)
    checkpoint_seconds: float = 5.0      # how often a running job saves a resumable state
    force_grace_seconds: float = 5.0     # past a time limit, how long before the worker is ended
    shutdown_grace_seconds: float = 10.0 # SIGTERM: how long running jobs get to checkpoint
    rpc_threads: int = 16
    warmup: bool = True                  # load the Numba cache in each worker before it takes jobs
    log_level: str = "INFO"
    token: str = ""                      # when set, fusetrain.v1 calls need 'authorization: Bearer <token>'
    token_file: Optional[Path] = None    # more tokens, one 'NAME TOKEN' a line (auth.load_tokens)
    allow_unauthenticated: bool = False  # serve a non-loopback address without tokens
    tls_cert: Optional[Path] = None      # PEM server certificate (chain) and its key: serve TLS
    tls_key: Optional[Path] = None
    tls_client_ca: Optional[Path] = None # PEM CA: clients must present a certificate it signed
    web_address: str = ""                # HOST:PORT of the dashboard and /metrics ("": none)
    web_optional: bool = False           # a busy web_address only warns (the command line's default)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
