"""fusetrain.wire.errors: the error kinds and status codes both sides share."""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest

from fusetrain.client import errors as client_errors
from fusetrain.client.cli import exit_code
from fusetrain.service import errors as service_errors
from fusetrain.wire import errors


def test_every_kind_names_a_grpc_status_code():
    kinds = [errors.InvalidArgument, errors.NotFound, errors.AlreadyExists, errors.FailedPrecondition,
             errors.ResourceExhausted, errors.Unavailable]
    for kind in kinds:
        assert issubclass(kind, errors.FusetrainError)
        assert getattr(grpc.StatusCode, kind.code_name).name == kind.code_name
    assert errors.FusetrainError.code_name == ""


def test_the_service_raises_the_wire_kinds():
    assert service_errors.ServiceError is errors.FusetrainError
    for name in ("InvalidArgument", "NotFound", "AlreadyExists", "FailedPrecondition", "ResourceExhausted",
                 "Unavailable"):
        assert getattr(service_errors, name) is getattr(errors, name)
    e = service_errors.ResourceExhausted("quota", "full", retry_after=2.5)
    assert str(e) == "quota: full" and e.message == "quota: full" and e.field == "quota" and e.retry_after == 2.5


def test_the_client_shares_the_base_class_and_the_code_names():
    for cls in (client_errors.SpecError, client_errors.RpcError, client_errors.JobFailed,
                client_errors.MissingExtra):
        assert issubclass(cls, errors.FusetrainError)
    assert client_errors.FusetrainError is errors.FusetrainError
    for code in grpc.StatusCode:
        exc = client_errors.from_grpc(_Fake(code))
        assert exc.code is code and exc.code_name == code.name


class _Fake(grpc.RpcError):
    def __init__(self, code):
        self._code = code

    def code(self):
        return self._code

    def details(self):
        return "why"

    def trailing_metadata(self):
        return ((errors.RETRY_AFTER_KEY, "1.5"),)


@pytest.mark.parametrize("exc, cls, status", [
    (errors.InvalidArgument("model.inputs", "must be at least 1"), client_errors.InvalidArgument, 3),
    (errors.ResourceExhausted("data.train.x", "too many rows", retry_after=3), client_errors.ResourceExhausted, 5),
    (errors.NotFound("no dataset abc"), client_errors.NotFound, 4),
])
def test_a_service_error_raised_in_process_becomes_what_the_server_would_answer(exc, cls, status):
    got = client_errors.from_wire(exc, "local")
    assert type(got) is cls and got.details == str(exc) and got.code_name == exc.code_name
    assert exit_code(got) == status
    if isinstance(exc, errors.ResourceExhausted):
        assert got.retry_after == 3.0


def test_from_grpc_reads_retry_after():
    got = client_errors.from_grpc(_Fake(grpc.StatusCode.RESOURCE_EXHAUSTED))
    assert isinstance(got, client_errors.ResourceExhausted) and got.retry_after == 1.5


def test_missing_extra_exits_3():
    exc = client_errors.MissingExtra("fusetrain train --local needs the engine: pip install 'fusetrain[server]'",
                                     "server")
    assert exit_code(exc) == 3 and exc.extra == "server"


def test_the_wire_imports_numpy_protobuf_and_fusetrain_v1_only():
    code = ("import importlib, pkgutil, sys, fusetrain.wire as w\n"
            "for m in pkgutil.iter_modules(w.__path__): importlib.import_module('fusetrain.wire.' + m.name)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'numba', 'scipy', 'llvmlite', "
            "'yaml', 'rich') or m.startswith(('fusetrain.engine', 'fusetrain.service', 'fusetrain.client')))\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
