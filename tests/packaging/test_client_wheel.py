"""`pip install fusetrain` is the client only: the wheel installed without extras into a fresh
virtual environment has no engine (no numba, no scipy), trains XOR against a server over gRPC
with its own `fusetrain` command, and `fusetrain train --local` there says, in one line and with
exit code 3, which extra to install.

The wheel is built from a copy of the sources (no build/ in the working tree) without build
isolation (setuptools comes with the test extra); the client's dependencies come through pip and
its cache. The server runs from this environment on 127.0.0.1, warming up meanwhile.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "engine", "service", "clients", "proto", "wire")
XOR = ROOT / "examples" / "jobs" / "xor.json"
NETWORK_TROUBLE = ("NewConnectionError", "Temporary failure in name resolution", "Network is unreachable",
                   "No matching distribution found", "Could not find a version")


def _run(cmd, timeout=300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)


def _build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    out = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                "--wheel-dir", tmp / "dist", src])
    assert out.returncode == 0, out.stdout + out.stderr
    (wheel,) = (tmp / "dist").glob("fusetrain-*.whl")
    return wheel


def _client_env(tmp: Path, wheel: Path) -> Path:
    """A fresh virtual environment with the wheel and its base dependencies; its python."""
    venv = tmp / "client-venv"
    out = _run([sys.executable, "-m", "venv", "--without-pip", venv], timeout=120)
    assert out.returncode == 0, out.stderr
    python = venv / "bin" / "python"
    # This environment's pip installs into the new one (--python): no pip copied there.
    out = _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
                "--disable-pip-version-check", wheel], timeout=600)
    if out.returncode != 0 and any(s in out.stdout + out.stderr for s in NETWORK_TROUBLE):
        pytest.skip(f"the client's dependencies could not be fetched (no package index?):\n{out.stderr[-800:]}")
    assert out.returncode == 0, out.stdout + out.stderr
    return python


def test_client_wheel_without_extras(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    server = ServerProcess(tmp_path / "data", "--workers", "1")
    try:
        wheel = _build_wheel(tmp_path)
        python = _client_env(tmp_path, wheel)
        fusetrain = python.parent / "fusetrain"

        # No engine: numba, llvmlite and scipy are absent, and so are the exports' onnx.
        probe = ("import importlib.util as u, json\n"
                 "print(json.dumps({m: u.find_spec(m) is not None for m in "
                 "('numba', 'llvmlite', 'scipy', 'onnx', 'grpc', 'numpy', 'fusetrain.client', 'fusetrain.wire')}))")
        out = _run([python, "-c", probe], cwd=tmp_path, env=env)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == ('{"numba": false, "llvmlite": false, "scipy": false, "onnx": false, '
                                      '"grpc": true, "numpy": true, "fusetrain.client": true, "fusetrain.wire": true}')

        # XOR against the server, with the installed command.
        server.wait_healthy(timeout=300)
        out = _run([fusetrain, "train", XOR, "--server", server.address, "--json"], cwd=tmp_path, env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        assert '"SUCCEEDED"' in out.stdout and '"train_accuracy": 1.0' in out.stdout, out.stdout

        # In-process training needs the engine: one line naming the extra, exit code 3.
        out = _run([fusetrain, "train", XOR, "--local"], cwd=tmp_path, env=env)
        assert out.returncode == 3, out.stdout + out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and out.stdout == "", out.stdout + out.stderr
        assert "fusetrain train --local needs the engine: pip install 'fusetrain[server]'" in lines[0]

        # So do serve and the machine's own info, and the exports need theirs: one line each, exit 3.
        job_id = json.loads(_run([fusetrain, "jobs", "--server", server.address, "--json"], cwd=tmp_path,
                                 env=env).stdout)[0]["id"]
        for command, extra in ((["serve", "--address", "127.0.0.1:0"], "fusetrain[server]"),
                               (["info"], "fusetrain[server]"),
                               (["result", job_id, "--server", server.address, "-o", "m.onnx"], "fusetrain[export]")):
            out = _run([fusetrain, *command], cwd=tmp_path, env=env)
            lines = out.stderr.strip().splitlines()
            assert out.returncode == 3 and len(lines) == 1, (command, out.stdout + out.stderr)
            assert f"pip install '{extra}'" in lines[0] and "Traceback" not in out.stderr, (command, lines)
    finally:
        server.stop()
        shutil.rmtree(tmp_path / "client-venv", ignore_errors=True)
        shutil.rmtree(tmp_path / "src", ignore_errors=True)
