"""The Python client against a real server: train, submit, sweep, watch, cancel, jobs, result,
predict, upload_dataset; errors carry codes; only UNAVAILABLE is retried; watch survives a restart."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import grpc
import numpy as np
import pytest
from client_helpers import EXAMPLES, blobs, blobs_spec

from fusetrain.client import (Client, EpochEvent, FailedPrecondition, InvalidArgument, JobFailed, NotFound,
                              StateEvent, Unavailable)
from helpers import ServerProcess

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
XOR_Y = np.array([[0], [1], [1], [0]], dtype=np.float32)


@pytest.fixture
def client(server):
    with Client(server, timeout=60) as c:
        yield c


def xor_dict(**training) -> dict:
    return {"name": "xor-lib", "model": {"inputs": 2, "layers": [{"units": 4, "activation": "tanh"},
                                                                  {"units": 1, "activation": "sigmoid"}],
                                         "loss": "binary_cross_entropy", "seed": 1},
            "optimizer": {"kind": "adam", "learning_rate": 0.05},
            "training": {"epochs": 300, "batch_size": 0, **training},
            "data": {"train": {"x": {"shape": [4, 2], "values": [0, 0, 0, 1, 1, 0, 1, 1]},
                               "y": {"shape": [4, 1], "values": [0, 1, 1, 0]}}}}


def test_client_needs_no_service_engine_or_optional_packages():
    code = textwrap.dedent("""
        import sys
        from fusetrain.client import Client, jobfiles, commands, loaders, export
        from fusetrain.client.cli import build_parser
        build_parser()
        Client("127.0.0.1:1").close()
        bad = [m for m in sys.modules if m.startswith(("fusetrain.service", "fusetrain.engine", "numba",
                                                       "sqlite3", "rich", "yaml", "onnx", "safetensors"))]
        print(bad)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


def test_train_with_arrays_returns_numpy_weights_and_history(client):
    events = []
    r = client.train(xor_dict(), XOR_X, XOR_Y, progress=events.append)
    assert r.state == "SUCCEEDED" and r.final["train_accuracy"] == 1.0
    assert [w.shape for w, _ in r.weights] == [(4, 2), (1, 4)] and r.weights[0][0].dtype == np.float32
    assert len(r.history) == 300 and r.history.column("train_loss")[-1] < r.history.column("train_loss")[0]
    assert r.history[0]["epoch"] == 1 and "val_loss" not in r.history[0]
    assert [e.epoch for e in events if isinstance(e, EpochEvent)] == list(range(1, 301))
    assert [e.state for e in events if isinstance(e, StateEvent)] == ["QUEUED", "RUNNING", "SUCCEEDED"]
    pred = client.predict(r.job_id, XOR_X)
    assert pred.shape == (4, 1) and ((pred[:, 0] > 0.5) == XOR_Y[:, 0].astype(bool)).all()


def test_large_arrays_are_uploaded_and_normalised(client):
    x, labels = blobs(3000)
    y = np.eye(3)[labels]
    spec = blobs_spec()
    spec["training"]["epochs"] = 5
    msg = client.prepare(spec, x, y, validation=(x[:100], y[:100]))
    assert msg.data.train.dataset_id and not msg.data.train.HasField("x")     # 96 KB: uploaded, not inline
    r = client.train(spec, x, y, validation=(x[:100], y[:100]))
    assert r.final["val_accuracy"] > 0.8
    assert r.normalization.kind == "standardize"
    np.testing.assert_allclose(r.normalization.shift, x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(client.predict(r.job_id, x[:10]), client.predict(r.job_id, x)[:10])


def test_upload_skips_bytes_the_server_has(client, monkeypatch):
    arrays = {"x": np.arange(12.0).reshape(6, 2), "y": np.ones((6, 1))}
    first = client.upload_dataset(arrays, name="six")
    assert first.id and [a.name for a in first.arrays] == ["x", "y"]

    def refuse(*args, **kwargs):
        raise AssertionError("bytes the server already has were sent again")
    monkeypatch.setattr(client.stub, "UploadDataset", refuse)
    again = client.upload_dataset({"y": np.ones((6, 1)), "x": np.arange(12.0).reshape(6, 2)})
    assert again.id == first.id and again.already_present


def test_upload_is_chunked(client):
    x = np.random.default_rng(1).normal(size=(3000, 50))          # 1.2 MB: several chunks
    chunks = []
    real = client.stub.UploadDataset

    def counting(requests, **kwargs):
        def seen():
            for r in requests:
                chunks.append(len(r.chunk))
                yield r
        return real(seen(), **kwargs)
    client.stub.UploadDataset = counting
    ds = client.upload_dataset(x, np.zeros((3000, 1)), chunk_bytes=256 << 10)
    assert len(chunks) >= 5 and max(chunks) <= 256 << 10 and ds.size_bytes == sum(chunks)


def test_errors_carry_the_code_and_the_servers_message(client):
    bad = xor_dict()
    bad["model"]["layers"][0]["units"] = 0
    with pytest.raises(InvalidArgument) as exc:
        client.submit(bad, XOR_X, XOR_Y)
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details.startswith("model.layers[0].units:")
    with pytest.raises(NotFound) as exc:
        client.job("no-such-job")
    assert exc.value.code_name == "NOT_FOUND" and "no-such-job" in exc.value.details
    job = client.submit(xor_dict(epochs=200_000), XOR_X, XOR_Y)
    with pytest.raises(FailedPrecondition):
        client.result(job.id)
    assert client.cancel(job.id, force=True).state in ("QUEUED", "CANCELLING", "CANCELLED")
    assert client.wait(job.id).state == "CANCELLED"


def test_only_unavailable_is_retried(client, monkeypatch):
    calls = []
    real = client.stub.GetServerInfo

    class Flaky(grpc.RpcError):
        def __init__(self, code):
            self._code = code

        def code(self):
            return self._code

        def details(self):
            return "flaky"

    def flaky(request, **kwargs):
        calls.append(kwargs)
        if len(calls) < 3:
            raise Flaky(grpc.StatusCode.UNAVAILABLE)
        return real(request, **kwargs)
    monkeypatch.setattr(client.stub, "GetServerInfo", flaky)
    client.backoff = 0.01
    assert client.server_info().version
    assert len(calls) == 3 and all(c["timeout"] == client.timeout for c in calls)   # each with a deadline

    calls.clear()

    def invalid(request, **kwargs):
        calls.append(kwargs)
        raise Flaky(grpc.StatusCode.INVALID_ARGUMENT)
    monkeypatch.setattr(client.stub, "GetJob", invalid)
    with pytest.raises(InvalidArgument):
        client.job("x")
    assert len(calls) == 1


def test_a_retried_submit_queues_one_job(client, monkeypatch):
    real = client.stub.SubmitJob
    seen = []

    class Lost(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.UNAVAILABLE

        def details(self):
            return "the answer was lost"

    def lossy(request, **kwargs):
        answer = real(request, **kwargs)          # the server queued it ...
        seen.append((request.request_id, answer.id))
        if len(seen) == 1:
            raise Lost()                          # ... but the client never heard
        return answer
    monkeypatch.setattr(client.stub, "SubmitJob", lossy)
    client.backoff = 0.01
    job = client.submit(xor_dict(), XOR_X, XOR_Y)
    assert seen[0] == seen[1] == (seen[0][0], job.id)


def test_unreachable_server_raises_unavailable_after_retries():
    with Client("127.0.0.1:1", timeout=1, retries=2, backoff=0.01) as c:
        with pytest.raises(Unavailable) as exc:
            c.server_info()
    assert exc.value.code == grpc.StatusCode.UNAVAILABLE


def test_token_and_deadline_are_sent(server, monkeypatch):
    with Client(server, token="s3cret", timeout=7) as c:
        seen = []
        real = c.stub.GetJob

        def spy(request, **kwargs):
            seen.append(kwargs)
            return real(request, **kwargs)
        monkeypatch.setattr(c.stub, "GetJob", spy)
        with pytest.raises(NotFound):
            c.job("nope")
    assert seen[0]["metadata"] == (("authorization", "Bearer s3cret"),) and seen[0]["timeout"] == 7


def test_submit_many_sweep_jobs_wait_and_job_files(client):
    batch = client.submit_many([EXAMPLES / "jobs" / "xor.json", xor_dict()], labels={"suite": "many"})
    assert len(batch.jobs) == 2 and all(j.batch_id == batch.id for j in batch.jobs)
    sweep = client.sweep(xor_dict(), {"optimizer.learning_rate": [0.02, 0.05], "model.seed": [0, 1, 2]},
                         labels={"suite": "sweep"}, overrides={"training.epochs": 100})
    assert len(sweep.jobs) == 6
    assert sweep.overrides[1] == {"optimizer.learning_rate": 0.02, "model.seed": 1}
    seen = []
    done = client.wait_batch(sweep, progress=seen.append)
    assert all(j.state == "SUCCEEDED" for j in done) and [j.id for j in done] == [j.id for j in sweep.jobs]
    assert seen and len(seen[-1]) == 6
    listed = list(client.jobs(labels={"suite": "sweep"}))
    assert sorted(j.id for j in listed) == sorted(j.id for j in sweep.jobs)
    assert len(list(client.jobs(batch_id=sweep.id, limit=4, page_size=3))) == 4     # across pages
    r = client.result(sweep.jobs[3].id)
    assert r.spec.optimizer.learning_rate == 0.05 and r.spec.model.seed == 0
    from_file = client.sweep(EXAMPLES / "sweeps" / "xor_grid.yaml", overrides={"training.epochs": 5})
    assert len(from_file.jobs) == 12


def test_train_raises_job_failed(client):
    spec = xor_dict()
    spec["model"]["loss"] = "mse"
    spec["model"]["layers"] = [{"units": 1, "activation": "identity"}]
    spec["optimizer"] = {"kind": "sgd", "learning_rate": 1e30}
    with pytest.raises(JobFailed) as exc:
        client.train(spec, XOR_X, XOR_Y)
    assert exc.value.job.state == "FAILED" and exc.value.job.failure_reason == "DIVERGED"


def test_watch_resumes_after_a_server_restart(tmp_path):
    """SIGKILL the server while a watched job runs, start it again on the same address: the iterator
    reconnects and goes on after the last sequence number it saw, nothing lost or repeated."""
    args = ("--workers", "1", "--checkpoint-seconds", "0.2")
    first = ServerProcess(tmp_path, *args)
    first.wait_healthy()
    address = first.address
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 16)).astype(np.float32)
    spec = {"name": "long", "model": {"inputs": 16, "layers": [{"units": 32, "activation": "relu"},
                                                                {"units": 1, "activation": "sigmoid"}],
                                      "loss": "binary_cross_entropy"},
            "training": {"epochs": 3000, "batch_size": 4}}
    second = None
    try:
        with Client(address, timeout=10, backoff=0.05) as c:
            job = c.submit(spec, x, (x[:, :1] > 0).astype(np.float32))
            events = []
            for event in c.watch(job.id):
                events.append(event)
                if second is None and isinstance(event, EpochEvent) and event.epoch >= 300:
                    time.sleep(0.3)                    # past a checkpoint
                    first.kill()
                    second = ServerProcess(tmp_path, *args, address=address)
            final = c.job(job.id)
    finally:
        first.kill()
        if second is not None:
            second.stop()
    assert second is not None and final.state == "SUCCEEDED" and final.attempt == 2
    seqs = [e.sequence for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert [e.state for e in events if isinstance(e, StateEvent)][-1] == "SUCCEEDED"
    assert "QUEUED" in [e.state for e in events if isinstance(e, StateEvent)][2:]   # re-queued after the crash
    assert events[-2].epoch == 3000


def test_a_server_with_a_token_refuses_calls_without_it(tmp_path, capsys):
    from fusetrain.client import Unauthenticated
    from fusetrain.client.cli import main

    proc = ServerProcess(tmp_path, "--workers", "1", "--no-warmup", "--token", "s3cret")
    try:
        proc.wait_healthy()
        with Client(proc.address, token="wrong", timeout=10) as c:
            with pytest.raises(Unauthenticated) as exc:
                c.server_info()
        assert exc.value.code == grpc.StatusCode.UNAUTHENTICATED and "token" in exc.value.details
        with Client(proc.address, token="s3cret", timeout=10) as c:
            assert c.server_info().workers == 1
        assert main(["jobs", "--server", proc.address]) == 5
        assert main(["jobs", "--server", proc.address, "--token", "s3cret"]) == 0
    finally:
        proc.stop()
