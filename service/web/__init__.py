"""The web dashboard `fusetrain serve` serves beside gRPC: jobs, curves, sweeps, datasets, server, /metrics."""

from .server import WebServer

__all__ = ["WebServer"]
