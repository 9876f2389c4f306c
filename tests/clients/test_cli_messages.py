"""What the command line says: field paths and typos (--set), --folds on the shipped files,
unused hyper-parameters, inferred one-hot targets, class names, id prefixes, the small commands,
Ctrl-C, a busy port, and the Result's local predict against the server's Predict."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
from client_helpers import EXAMPLES, SHARED, parse, write_job

from fusetrain.client import Client

XOR = EXAMPLES / "jobs" / "xor.json"
IRIS = EXAMPLES / "jobs" / "iris.yaml"
PIMA = EXAMPLES / "jobs" / "pima.yaml"
TINY = {"model": {"inputs": 2, "layers": [{"units": 3, "activation": "tanh"},
                                          {"units": 3, "activation": "softmax"}],
                  "loss": "softmax_cross_entropy", "seed": 0, "normalization": {"kind": "standardize"}},
        "optimizer": {"kind": "adam", "learning_rate": 0.05}, "training": {"epochs": 30, "batch_size": 8}}


def _flowers(tmp_path):
    """A CSV with text class labels (sorted: iris-a, iris-b, iris-c) and a job file naming it."""
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 3
    x = rng.normal(size=(60, 2)) + 4 * labels[:, None]
    rows = [f"{a:.5f},{b:.5f},iris-{'abc'[c]}" for (a, b), c in zip(x, labels)]
    (tmp_path / "flowers.csv").write_text("p,q,species\n" + "\n".join(rows) + "\n")
    return write_job(tmp_path, "flowers.json", {**TINY, "data": {"train": {"file": {"path": "flowers.csv"}}}}), x


def test_camel_case_file_and_set(cli, tmp_path):
    doc = {"model": {"inputs": 2, "layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
                     "loss": "binary_cross_entropy"},
           "optimizer": {"kind": "adam", "learningRate": 0.05}, "training": {"epochs": 5, "batchSize": 4},
           "data": {"train": {"x": {"shape": [4, 2], "values": [0, 0, 0, 1, 1, 0, 1, 1]},
                              "y": {"shape": [4, 1], "values": [0, 1, 1, 0]}}}}
    path = write_job(tmp_path, "camel.json", doc)
    code, out, err = cli("train", path, "--set", "optimizer.learning_rate=0.1", "--json")
    assert code == 0, err
    code, _, err = cli("train", path, "--set", "optimizer.learning_rat=0.1")
    assert code == 3
    assert "--set optimizer.learning_rat: unknown field; did you mean learning_rate?" in err
    assert str(path) not in err


@pytest.mark.skipif(not (SHARED / "iris.csv").exists(), reason=f"Iris not found under {SHARED}")
@pytest.mark.parametrize("job", [IRIS, PIMA], ids=["iris", "pima"])
def test_folds_replace_the_validation_fraction(cli, job):
    code, out, err = cli("train", job, "--folds", "3", "--set", "training.epochs=3", "--json")
    assert code == 0, err
    assert "--folds 3 replaces training.validation_fraction 0.2" in err
    doc = parse(out)
    assert len(doc["cross_validation"][0]["folds"]) == 3


def test_unused_hyper_parameters_are_refused(cli, tmp_path):
    spec = json.loads(XOR.read_text())
    spec["optimizer"] = {"kind": "sgd", "learning_rate": 0.5, "momentum": 0.9}
    code, _, err = cli("train", write_job(tmp_path, "sgd.json", spec))
    assert code == 3 and "optimizer.momentum: is not used by optimizer kind 'sgd'" in err
    # The case: a seeds grid on such a base is refused by the server, naming the field.
    sweep = tmp_path / "seeds.yaml"
    sweep.write_text(f"base: {tmp_path / 'sgd.json'}\ngrid: {{model.seed: [0, 1]}}\n")
    code, _, err = cli("sweep", sweep)
    assert code == 3 and "optimizer.momentum" in err and "sgd" in err


def test_inferred_one_hot_is_named(cli, tmp_path):
    rows = [f"{i},{i % 40}" for i in range(80)]
    (tmp_path / "reg.csv").write_text("\n".join(rows) + "\n")
    spec = {"model": {"inputs": 1, "layers": [{"units": 1, "activation": "identity"}], "loss": "mse"},
            "training": {"epochs": 2}, "data": {"train": {"file": {"path": "reg.csv"}}}}
    code, _, err = cli("train", write_job(tmp_path, "reg.json", spec))
    assert code == 3
    assert "read as 40 classes" in err and "one-hot encoded into 40 columns" in err
    assert "--set data.train.file.one_hot=false" in err
    code, _, err = cli("train", tmp_path / "reg.json", "--set", "data.train.file.one_hot=false", "--json")
    assert code == 0, err


def test_class_names_through_result_predict_and_exports(cli, tmp_path):
    path, x = _flowers(tmp_path)
    code, out, err = cli("train", path, "--json")
    assert code == 0, err
    doc = parse(out)
    assert doc["class_names"] == ["iris-a", "iris-b", "iris-c"]
    job_id = doc["job_id"]
    code, out, _ = cli("predict", job_id, tmp_path / "flowers.csv", "--rows", "3")
    assert code == 0 and "iris-a" in out and "classes y0 iris-a, y1 iris-b, y2 iris-c" in out
    code, _, _ = cli("predict", job_id, tmp_path / "flowers.csv", "-o", tmp_path / "p.csv")
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "y0,y1,y2,class" and len(lines) == 61 and lines[1].endswith(",iris-a")
    code, out, _ = cli("predict", job_id, json.dumps(x[:2].tolist()), "--json")
    assert parse(out)["class_names"] == ["iris-a", "iris-b", "iris-c"] and len(parse(out)["class"]) == 2
    code, _, _ = cli("result", job_id, "-o", tmp_path / "m.onnx")
    import onnx
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(meta["class_names"]) == ["iris-a", "iris-b", "iris-c"]
    from fusetrain.client import export
    cli("result", job_id, "-o", tmp_path / "m.npz")
    assert export.load_npz(tmp_path / "m.npz")[2]["class_names"] == ["iris-a", "iris-b", "iris-c"]


def test_local_predict_matches_the_server(cli, tmp_path):
    path, x = _flowers(tmp_path)
    code, out, _ = cli("train", path, "--json")
    job_id = parse(out)["job_id"]
    with Client(cli.server) as c:
        r = c.result(job_id)
        rows = np.vstack([x, x * 3 - 1])
        np.testing.assert_allclose(r.predict(rows), c.predict(job_id, rows), rtol=0, atol=1e-5)
        assert r.classes(r.predict(x[:3]))[0] == "iris-a"
        int_rows = np.array([[0, 0], [4, 4], [8, 8]], dtype=np.int64)
        np.testing.assert_allclose(r.predict(int_rows), c.predict(job_id, int_rows), rtol=0, atol=1e-5)
        with pytest.raises(ValueError, match="rows of 2 inputs"):
            r.predict(np.zeros((2, 3)))


def test_small_commands(cli, tmp_path, capsys):
    from fusetrain.client.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("fusetrain 0.")
    with pytest.raises(SystemExit) as exc:
        main(["train", "--bogus"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "unrecognized arguments: --bogus" in err and "required" not in err
    code, _, err = cli("train", SHARED / "iris.csv")
    assert code == 3 and "train takes a job file" in err and "datasets upload" in err
    code, out, err = cli("train", XOR, "--json")
    job_id = parse(out)["job_id"]
    code, out, _ = cli("status", job_id[:8], "--json")
    assert code == 0 and parse(out)["id"] == job_id
    code, _, err = cli("status", "zzzz")
    assert code == 4 and "no job id starts with 'zzzz'" in err
    code, out, _ = cli("cancel", job_id[:8])
    assert code == 0 and out.strip() == f"job {job_id} already SUCCEEDED: nothing to cancel"
    code, out, _ = cli("cancel", job_id, "--json")
    assert parse(out)[0]["cancelled"] is False
    code, out, _ = cli("info", "--json")
    limits = parse(out)["limits"]
    assert limits and all(isinstance(v, (int, float)) for v in limits.values()), limits


def test_datasets_list_and_prefixes(cli, tmp_path):
    (tmp_path / "d.csv").write_text("1,2,0.5\n3,4,1.5\n")
    code, out, _ = cli("datasets", "upload", tmp_path / "d.csv", "--json")
    dataset_id = parse(out)["id"]
    code, out, err = cli("datasets", "list", "--json")
    if code == 5 and "ListDatasets" in err:
        pytest.skip("this server does not serve ListDatasets yet")
    assert code == 0 and dataset_id in [d["id"] for d in parse(out)]
    code, out, _ = cli("datasets", "show", dataset_id[:10], "--json")
    assert code == 0 and parse(out)["id"] == dataset_id


def test_datasets_list_in_the_store(tmp_path):
    from fusetrain.client.jobfiles import npz_bytes
    from fusetrain.service.config import ServiceLimits
    from fusetrain.service.datasets import Datasets
    from fusetrain.service.store import Store
    from fusetrain.v1 import service_pb2 as pb

    store = Store(tmp_path)
    ds = Datasets(store, ServiceLimits())
    a = ds.upload(iter([pb.UploadDatasetRequest(name="a", chunk=npz_bytes({"x": np.zeros((2, 1))}))]), owner="u")
    b = ds.upload(iter([pb.UploadDatasetRequest(name="b", chunk=npz_bytes({"x": np.ones((2, 1))}))]), owner="v")
    assert [d.id for d in ds.list("u")] == [a.id] and [d.name for d in ds.list("v")] == ["b"]
    assert ds.list("u", a.id[:6])[0].id == a.id and ds.list("u", b.id[:6]) == []


def test_ctrl_c_during_train_names_the_job(cli, monkeypatch):
    def interrupted(self, job_id, progress=False):
        raise KeyboardInterrupt
    monkeypatch.setattr(Client, "wait", interrupted)
    code, _, err = cli("train", XOR, "--no-progress")
    assert code == 130
    assert "interrupted: job " in err and "`fusetrain status " in err
    assert any(state in err for state in ("CANCELLING", "CANCELLED", "SUCCEEDED"))


def test_busy_port_is_one_line(tmp_path, capfd):
    from fusetrain.client.cli import main
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        code = main(["serve", "--address", address, "--data-dir", str(tmp_path), "--no-warmup", "--workers", "1"])
    err = capfd.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0, err
    assert address in err and "--address" in err and "make run ADDRESS=" in err
