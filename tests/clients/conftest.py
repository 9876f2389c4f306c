"""Fixtures of the client tests: one real `fusetrain serve` child for the whole directory, and a
helper that runs the command line in-process and returns (exit code, stdout, stderr)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))   # client_helpers, under --import-mode=importlib

from fusetrain.client.cli import main  # noqa: E402
from helpers import ServerProcess  # noqa: E402


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A real server on a free 127.0.0.1 port with 2 spawned workers; its address."""
    proc = ServerProcess(tmp_path_factory.mktemp("server"), "--workers", "2", "--max-job-seconds", "600")
    try:
        proc.wait_healthy()
        yield proc.address
    finally:
        proc.stop()


@pytest.fixture
def cli(server, capsys):
    """cli("train", "x.json", "--json") -> (exit code, stdout, stderr), against the test server."""
    def run(*argv, server_address=None):
        capsys.readouterr()
        args = [str(a) for a in argv]
        if args[0] != "serve":
            args += ["--server", server_address or server]
        code = main(args)
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    run.server = server
    return run
