"""The fusetrain gRPC server: servicer, health, reflection, graceful shutdown; ends in `serve()`."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from concurrent import futures
from typing import Callable, Optional

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from fusetrain.v1 import service_pb2, service_pb2_grpc

from .auth import check_bind, load_tokens, server_credentials
from .config import ServerConfig
from .jobs import JobManager
from .rpcmetrics import RpcMetrics
from .servicer import ErrorInterceptor, TokenInterceptor, TrainingServicer
from .streams import StreamSlots, stream_limit

log = logging.getLogger("fusetrain.server")

SERVICE_NAME = service_pb2.DESCRIPTOR.services_by_name["TrainingService"].full_name


class AddressUnavailable(OSError):
    """The address to listen on is in use (or not this machine's): one line names it and the option."""

    def __init__(self, address: str, why: str = "in use or not available", option: str = "--address"):
        self.address, self.why = address, why
        make = {"--address": "ADDRESS", "--web-address": "WEB_ADDRESS"}[option]
        super().__init__(f"cannot listen on {address}: the address is {why}; pass another with "
                         f"{option} HOST:PORT (make run {make}=HOST:PORT), or port 0 for any free one")

    def with_option(self, option: str) -> "AddressUnavailable":
        return AddressUnavailable(self.address, self.why, option)


def check_address_free(address: str) -> None:
    """Raise AddressUnavailable when `address` (HOST:PORT) cannot be bound now. gRPC would also
    refuse it, but only after logging a C-core error; this asks first, with a plain socket."""
    import errno
    import socket
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    try:
        port = int(port)
    except ValueError:
        raise AddressUnavailable(address, "not HOST:PORT") from None
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise AddressUnavailable(address, f"not one this machine has ({host!r} does not resolve)") from None
    for family, kind, proto, _, where in infos[:1]:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(where)
            except OSError as exc:
                why = "in use" if exc.errno == errno.EADDRINUSE else f"not available ({exc.strerror})"
                raise AddressUnavailable(address, why) from None


class Server:
    """A running service: `start()` binds and serves, `stop()` drains and closes."""

    def __init__(self, config: ServerConfig, executor_factory=None):
        self.config = config
        self.tokens = load_tokens(config.token, config.token_file)
        check_bind(config.address, self.tokens, config.allow_unauthenticated)
        credentials = server_credentials(config.tls_cert, config.tls_key, config.tls_client_ca)
        check_address_free(config.address)       # before any worker starts: a busy port is one line
        web_address = self._web_address(config)
        limit = config.limits.max_message_bytes
        self.grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=config.rpc_threads, thread_name_prefix="fusetrain-rpc"),
            interceptors=([RpcMetrics()] + ([TokenInterceptor(self.tokens)] if self.tokens else [])
                          + [ErrorInterceptor()]),
            options=[("grpc.max_receive_message_length", limit),
                     ("grpc.max_send_message_length", -1),   # results of big models may be large
                     ("grpc.so_reuseport", 0)])
        try:
            self.port = (self.grpc.add_secure_port(config.address, credentials) if credentials is not None
                         else self.grpc.add_insecure_port(config.address))
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            raise AddressUnavailable(config.address)
        host = config.address.rsplit(":", 1)[0]
        self.address = f"{host}:{self.port}"
        self.manager = JobManager(config, executor_factory or ray_factory(config))
        self.stream_slots = slots = StreamSlots(stream_limit(config.limits.max_streams, config.rpc_threads),
                            config.limits.max_client_streams)
        service_pb2_grpc.add_TrainingServiceServicer_to_server(TrainingServicer(self.manager, slots), self.grpc)
        self.health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.grpc)
        self.web = None
        if web_address:
            from .web import WebServer
            self.web = WebServer(self.manager, self.tokens, web_address)
        self._stopped = threading.Event()

    def _web_address(self, config: ServerConfig) -> str:
        """The dashboard's address, checked like the gRPC one; "" when it is off (or, being the
        default, busy: then a warning says how to move it)."""
        if not config.web_address:
            return ""
        check_bind(config.web_address, self.tokens, config.allow_unauthenticated)
        try:
            check_address_free(config.web_address)
        except AddressUnavailable as exc:
            if not config.web_optional:
                raise exc.with_option("--web-address") from None
            log.warning("no dashboard: %s is %s; pass --web-address HOST:PORT to move it, or --no-web",
                        config.web_address, exc.why)
            return ""
        return config.web_address

    def start(self, on_serving: Optional[Callable[[], None]] = None) -> None:
        """Serve RPCs now; report SERVING once one dtype's kernels are ready in at least one worker
        (executors that do not say per dtype: once their workers have warmed up)."""
        self.grpc.start()
        if self.web is not None:
            self.web.start()

        def serving():
            executor = self.manager.executor
            wait = getattr(executor, "wait_serving", None) or getattr(executor, "wait_ready", None)
            if wait is not None:
                while not wait(0.5):
                    if self._stopped.is_set():
                        return
            if self._stopped.is_set():
                return
            for name in ("", SERVICE_NAME):
                self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
            log.info("SERVING on %s", self.address)
            if on_serving is not None:
                on_serving()
        threading.Thread(target=serving, name="fusetrain-ready", daemon=True).start()

    def stop(self, grace: Optional[float] = None) -> None:
        """Drain: NOT_SERVING, refuse new work, let running jobs checkpoint, close the store."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.config.shutdown_grace_seconds if grace is None else grace
        log.info("shutting down: no new jobs; running jobs get %.0f s to save a checkpoint", grace)
        self.health.enter_graceful_shutdown()
        self.manager.drain()
        if self.web is not None:
            self.web.stop()
        self.manager.close(grace)
        self.grpc.stop(1).wait()
        log.info("stopped")

    def wait(self) -> None:
        self._stopped.wait()


def ray_factory(config: ServerConfig):
    """The executor factory of `--executor ray` (Ray is imported only then); None otherwise."""
    if config.executor != "ray":
        return None

    def factory(progress):
        from .ray_executor import RayExecutor
        return RayExecutor(progress, address=config.ray_address, workers=config.workers,
                           threads_per_worker=config.threads_per_worker, max_retries=config.ray_max_retries,
                           force_grace=config.force_grace_seconds, warmup=config.warmup,
                           pack_seconds=config.pack_seconds)
    return factory


def kernel_cache() -> str:
    """The engine's kernel cache directory this server and its local workers use."""
    from fusetrain.engine.cache import cache_dir
    return str(cache_dir())


def serve(config: ServerConfig, example: Optional[str] = None) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    logging.basicConfig(level=config.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    t0 = time.perf_counter()
    server = Server(config)

    def announce():
        print(f"fusetrain serving on {server.address} (data in {config.data_dir}, {config.workers} "
              f"workers x {config.threads_per_worker} thread(s), ready in {time.perf_counter() - t0:.1f} s)",
              flush=True)
        if example:
            print(example.format(address=server.address), flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start(on_serving=announce)
    print(f"fusetrain listening on {server.address}; warming up {config.workers} workers", flush=True)
    if server.web is not None:
        print(f"fusetrain dashboard on {server.web.url} (Prometheus metrics at {server.web.url}metrics)",
              flush=True)
    print(f"kernel cache: {kernel_cache()} ($NUMBA_CACHE_DIR or --kernel-cache DIR moves it)", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop()
