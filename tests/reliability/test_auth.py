"""Authentication, per-owner jobs and TLS: tokens from a file or the environment, UNAUTHENTICATED
without one, other owners' jobs NOT_FOUND, a non-loopback bind refused without tokens, TLS with a
server certificate and a client CA (certificates made here)."""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from reliability_helpers import ALICE, BOB, in_process_server, make_certificates, stub_for, token_file
from service_helpers import xor_spec

from fusetrain.client import Client, errors
from fusetrain.client.cli import main
from fusetrain.service import auth
from fusetrain.v1 import job_pb2, service_pb2 as pb


def test_tokens_from_a_file_and_the_environment(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("# comment\nalice aaaaaaaaaaaaaaaaaaaa  # trailing comment\n\nbbbbbbbbbbbbbbbbbbbbbb\n")
    tokens = auth.load_tokens("cccccccccccccccccccc", path)
    assert tokens["alice"] == "a" * 20 and tokens["default"] == "c" * 20
    assert [k for k in tokens if k.startswith("token-")] and len(tokens) == 3
    for bad, why in [("alice short\n", "at least 16"), ("a b c\n", "NAME TOKEN"), ("\n# none\n", "no tokens"),
                     ("x aaaaaaaaaaaaaaaaaaaa\ny aaaaaaaaaaaaaaaaaaaa\n", "share one token")]:
        path.write_text(bad)
        with pytest.raises(auth.AuthConfigError, match=why):
            auth.load_tokens("", path)
    with pytest.raises(auth.AuthConfigError, match="token file"):
        auth.load_tokens("", tmp_path / "missing")


def test_every_token_is_compared():
    checker = auth.TokenInterceptor({"alice": ALICE, "bob": BOB})
    assert checker.owner_of(f"Bearer {ALICE}") == "alice" and checker.owner_of(f"Bearer {BOB}") == "bob"
    for wrong in ["", ALICE, f"Bearer {ALICE[:-1]}", f"Bearer {ALICE}x", f"bearer {ALICE}", "Bearer \udcff"]:
        assert checker.owner_of(wrong) is None


@pytest.mark.parametrize("address, loopback", [("127.0.0.1:1", True), ("127.3.4.5:1", True),
                                               ("localhost:1", True), ("[::1]:1", True),
                                               ("0.0.0.0:1", False), ("[::]:1", False),
                                               ("10.1.2.3:1", False), ("example.com:1", False)])
def test_only_loopback_may_go_without_tokens(address, loopback):
    assert auth.is_loopback(address) is loopback
    if loopback:
        auth.check_bind(address, {})
    else:
        with pytest.raises(auth.AuthConfigError, match="--token"):
            auth.check_bind(address, {})
        auth.check_bind(address, {"a": "x" * 16})
        auth.check_bind(address, {}, allow_unauthenticated=True)


def test_serve_refuses_a_public_address_without_tokens(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fusetrain.client.cli", "serve", "--address", "0.0.0.0:0",
                           "--data-dir", str(tmp_path), "--no-warmup", "--workers", "1"],
                          capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2, proc.stderr
    assert "reachable from other machines" in proc.stderr and "--token-file" in proc.stderr


@pytest.fixture(scope="module")
def owned(tmp_path_factory):
    """An in-process server with the tokens of alice and bob, and one finished job of alice's."""
    root = tmp_path_factory.mktemp("owned")
    server = in_process_server(root / "data", token_file=token_file(root / "tokens"))
    yield server
    server.stop(grace=1)


def test_calls_without_a_good_token_are_unauthenticated_health_stays_open(owned):
    for token in ("", "nope-nope-nope-nope", ALICE[:-1]):
        channel, stub, md = stub_for(owned.address, token)
        with channel:
            for call in (lambda: stub.GetServerInfo(pb.GetServerInfoRequest(), metadata=md, timeout=10),
                         lambda: stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()), metadata=md, timeout=10),
                         lambda: list(stub.WatchJob(pb.WatchJobRequest(job_id="x"), metadata=md, timeout=10))):
                with pytest.raises(grpc.RpcError) as exc:
                    call()
                assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_each_owner_sees_only_its_own_jobs(owned):
    ca, alice, a_md = stub_for(owned.address, ALICE)
    cb, bob, b_md = stub_for(owned.address, BOB)
    with ca, cb:
        job = alice.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(), request_id="same-id"), metadata=a_md)
        # The same request id is bob's own: a new job, not alice's.
        bobs = bob.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=10), request_id="same-id"), metadata=b_md)
        assert bobs.id != job.id and bobs.request_id == "same-id" == job.request_id
        done = _wait(alice, job.id, a_md)
        assert done.state == pb.SUCCEEDED
        _wait(bob, bobs.id, b_md)
        calls = {
            "GetJob": lambda: bob.GetJob(pb.GetJobRequest(job_id=job.id), metadata=b_md),
            "GetResult": lambda: bob.GetResult(pb.GetResultRequest(job_id=job.id), metadata=b_md),
            "Predict": lambda: bob.Predict(pb.PredictRequest(job_id=job.id, x=job_pb2.Tensor(
                shape=[1, 2], values=[0, 1])), metadata=b_md),
            "CancelJob": lambda: bob.CancelJob(pb.CancelJobRequest(job_id=job.id), metadata=b_md),
            "DeleteJob": lambda: bob.DeleteJob(pb.DeleteJobRequest(job_id=job.id), metadata=b_md),
            "WatchJob": lambda: list(bob.WatchJob(pb.WatchJobRequest(job_id=job.id), metadata=b_md)),
        }
        for name, call in calls.items():
            with pytest.raises(grpc.RpcError) as exc:
                call()
            assert exc.value.code() == grpc.StatusCode.NOT_FOUND, name
            assert "not found" in exc.value.details()
        listed = {j.id for j in bob.ListJobs(pb.ListJobsRequest(), metadata=b_md).jobs}
        assert bobs.id in listed and job.id not in listed
        batch = bob.ListJobs(pb.ListJobsRequest(batch_id=""), metadata=b_md)
        assert all(j.id != job.id for j in batch.jobs)
        # alice still has everything, untouched by bob's attempts
        assert alice.GetResult(pb.GetResultRequest(job_id=job.id), metadata=a_md).weights_sha256
        assert alice.GetJob(pb.GetJobRequest(job_id=job.id), metadata=a_md).state == pb.SUCCEEDED
        alice.DeleteJob(pb.DeleteJobRequest(job_id=job.id), metadata=a_md)


def _wait(stub, job_id, md, timeout=60):
    for _ in stub.WatchJob(pb.WatchJobRequest(job_id=job_id), metadata=md, timeout=timeout):
        pass
    return stub.GetJob(pb.GetJobRequest(job_id=job_id), metadata=md)


def test_client_library_and_cli_with_tokens(owned, capsys, monkeypatch):
    with Client(owned.address, token=ALICE, timeout=10) as c:
        r = c.train(xor_spec(epochs=50))
        assert r.weights_sha256
    with Client(owned.address, token=BOB, timeout=10) as c:
        with pytest.raises(errors.NotFound):
            c.result(r.job_id)
    monkeypatch.setenv("FUSETRAIN_TOKEN", BOB)
    capsys.readouterr()
    assert main(["status", r.job_id, "--server", owned.address]) == 4
    assert main(["status", r.job_id, "--server", owned.address, "--token", ALICE]) == 0
    assert main(["jobs", "--server", owned.address, "--token", "wrong-wrong-wrong-wrong"]) == 5
    assert "UNAUTHENTICATED" in capsys.readouterr().err


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("certs"))


def test_tls_with_a_client_certificate(tmp_path, certs, capsys):
    server = in_process_server(tmp_path / "data", tls_cert=certs["server_cert"], tls_key=certs["server_key"],
                               tls_client_ca=certs["ca"], token_file=token_file(tmp_path / "tokens"))
    try:
        with Client(server.address, token=ALICE, tls=str(certs["ca"]), cert=certs["client_cert"],
                    key=certs["client_key"], timeout=10) as c:
            r = c.train(xor_spec(epochs=20))
            assert r.job_id and c.server_info().version
        # no client certificate, a plaintext channel, an unknown CA: no connection at all
        for kwargs in ({"tls": str(certs["ca"])}, {}, {"tls": str(certs["client_cert"]),
                                                       "cert": certs["client_cert"], "key": certs["client_key"]}):
            with Client(server.address, token=ALICE, timeout=5, retries=1, **kwargs) as c:
                with pytest.raises(errors.Unavailable):
                    c.server_info()
        capsys.readouterr()
        args = ["--server", server.address, "--token", ALICE, "--tls", str(certs["ca"]),
                "--tls-cert", str(certs["client_cert"]), "--tls-key", str(certs["client_key"])]
        assert main(["status", r.job_id, *args]) == 0
        assert "SUCCEEDED" in capsys.readouterr().out
    finally:
        server.stop(grace=1)


def test_tls_server_without_client_certificates(tmp_path, certs):
    server = in_process_server(tmp_path / "data", tls_cert=certs["server_cert"], tls_key=certs["server_key"])
    try:
        with Client(server.address, tls=str(certs["ca"]), timeout=10) as c:
            job = c.submit(xor_spec(epochs=20))
            assert c.wait(job.id).state == "SUCCEEDED"
        with pytest.raises(auth.AuthConfigError, match="both"):
            in_process_server(tmp_path / "d2", tls_cert=certs["server_cert"])
    finally:
        server.stop(grace=1)
