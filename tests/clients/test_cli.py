"""The `fusetrain` command line end to end against a real server: every command, --json parsed,
exports checked (ONNX in onnxruntime against Predict, npz/safetensors bit-exact), exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from client_helpers import EXAMPLES, SHARED, blobs, blobs_spec, parse, write_job

from fusetrain.client import Client, export

XOR = EXAMPLES / "jobs" / "xor.json"


@pytest.fixture(scope="module")
def blobs_job(server, tmp_path_factory):
    """A trained 4-6-3 model with standardised inputs, from a CSV file the CLI uploads."""
    from fusetrain.client.cli import main
    tmp = tmp_path_factory.mktemp("blobs")
    x, labels = blobs()
    rows = [",".join([f"{v:.6f}" for v in r] + [f"class{c}"]) for r, c in zip(x, labels)]
    (tmp / "blobs.csv").write_text("a,b,c,d,label\n" + "\n".join(rows) + "\n")
    spec = blobs_spec()
    spec["data"] = {"train": {"file": {"path": "blobs.csv"}}}
    path = write_job(tmp, "blobs.json", spec)
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["train", str(path), "--json", "--server", server]) == 0
    doc = json.loads(buf.getvalue())
    return {"id": doc["job_id"], "doc": doc, "csv": tmp / "blobs.csv", "x": x, "labels": labels, "dir": tmp}


def test_train_prints_progress_and_result(cli):
    code, out, err = cli("train", XOR)
    assert code == 0
    assert "epoch 500/500" in err and "samples/s" in err and "acc 100.0%" in err   # the progress bar
    assert "SUCCEEDED: 500 epochs" in out and "train_accuracy 100.0%" in out


def test_train_json_and_worked_example(cli):
    code, out, _ = cli("train", EXAMPLES / "jobs" / "worked_221.json", "--json")
    assert code == 0
    doc = parse(out)
    assert doc["state"] == "SUCCEEDED" and doc["epochs_run"] == 10000
    assert doc["layers"] == [[2, 2, "sigmoid"], [2, 2, "sigmoid"]] and doc["dtype"] == "float64"
    code, out, _ = cli("result", doc["job_id"], "--history", "--json")
    history = parse(out)["history"]
    # The tutorial's figures: error 0.298371109 before the first update, 0.0000351085 at the
    # 10,000th (each epoch's loss is measured in its forward pass, before its update).
    assert history[0]["train_loss"] == pytest.approx(0.298371109, abs=1e-9)
    assert history[-1]["train_loss"] == pytest.approx(3.51085e-05, rel=1e-5)


def test_train_local_matches_the_server_bit_for_bit(cli):
    code, out, _ = cli("train", XOR, "--json")
    remote = parse(out)
    code, out, err = cli("train", XOR, "--local", "--json")
    assert code == 0
    local = parse(out)
    assert local["weights_sha256"] == remote["weights_sha256"]
    assert local["final"] == remote["final"]


def test_set_overrides_and_labels(cli):
    code, out, _ = cli("train", XOR, "--set", "training.epochs=7", "--set", "model.layers[0].units=3",
                       "--label", "who=test", "--json", "--no-progress")
    assert code == 0
    doc = parse(out)
    assert doc["epochs_run"] == 7 and doc["layers"][0] == [2, 3, "tanh"]
    code, out, _ = cli("jobs", "--label", "who=test", "--json")
    assert [j["id"] for j in parse(out)] == [doc["job_id"]]


def test_submit_status_watch_jobs(cli):
    code, out, _ = cli("submit", XOR, XOR, "--json")
    assert code == 0
    jobs = parse(out)
    assert len(jobs) == 2 and jobs[0]["id"] != jobs[1]["id"]
    job_id = jobs[0]["id"]
    code, out, _ = cli("watch", job_id, "--json")
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    seqs = [e["sequence"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert [e["state"] for e in events if e["type"] == "state"] == ["QUEUED", "RUNNING", "SUCCEEDED"]
    epochs = [e["epoch"] for e in events if e["type"] == "epoch"]
    assert epochs == list(range(1, 501))
    # Resume after a sequence number: exactly the rest.
    code, out, _ = cli("watch", job_id, "--json", "--after", str(seqs[-3]))
    assert [json.loads(line)["sequence"] for line in out.splitlines()] == seqs[-2:]
    code, out, _ = cli("watch", jobs[1]["id"])
    assert code == 0 and "SUCCEEDED" in out
    code, out, _ = cli("status", job_id, "--json")
    assert parse(out)["state"] == "SUCCEEDED" and parse(out)["epochs_done"] == 500
    code, out, _ = cli("status", job_id)
    assert "state     SUCCEEDED" in out
    code, out, _ = cli("jobs", "--state", "SUCCEEDED", "--limit", "3", "--json")
    listed = parse(out)
    assert len(listed) == 3 and all(j["state"] == "SUCCEEDED" for j in listed)
    code, out, _ = cli("jobs", "--limit", "2")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["job", "name", "state"]


def test_submit_wait(cli):
    code, out, err = cli("submit", XOR, "--wait")
    assert code == 0 and "QUEUED" in out and "SUCCEEDED" in out and "epoch 500/500" in err


def test_sweep_grid_json_and_table(cli):
    code, out, err = cli("sweep", EXAMPLES / "sweeps" / "xor_grid.yaml", "--set", "training.epochs=50", "--json")
    assert code == 0
    doc = parse(out)
    assert len(doc["jobs"]) == 12 and doc["sort"] == "train_loss"
    losses = [j["final"]["train_loss"] for j in doc["jobs"]]
    assert losses == sorted(losses)
    combos = {(j["overrides"]["optimizer.learning_rate"], j["overrides"]["model.layers[0].units"],
               j["overrides"]["model.seed"]) for j in doc["jobs"]}
    assert len(combos) == 12
    code, out, err = cli("sweep", EXAMPLES / "sweeps" / "xor_grid.yaml", "--set", "training.epochs=50",
                         "--sort", "train_accuracy")
    assert code == 0 and "results, sorted by train_accuracy" in out and "12/12 jobs done" in err
    header = next(line for line in out.splitlines() if line.lstrip().startswith("#"))
    assert header.split()[:5] == ["#", "job", "lr", "units", "seed"]


def test_cross_validation_folds(cli, tmp_path):
    x, labels = blobs(60)
    np.savez(tmp_path / "blobs.npz", x=x, y=np.eye(3)[labels])
    spec = blobs_spec()
    spec["training"]["epochs"] = 20
    spec["data"] = {"train": {"file": {"path": "blobs.npz"}}}
    path = write_job(tmp_path, "blobs.json", spec)
    code, out, _ = cli("train", path, "--folds", "4", "--json")
    assert code == 0
    doc = parse(out)
    folds = sorted(j["overrides"]["data.cross_validation.fold"] for j in doc["jobs"])
    assert folds == [0, 1, 2, 3] and all(j["final"]["val_accuracy"] is not None for j in doc["jobs"])
    cv = doc["cross_validation"][0]
    assert cv["metric"] == "val_accuracy" and len(cv["folds"]) == 4
    assert cv["mean"] == pytest.approx(np.mean(cv["folds"]))
    code, out, _ = cli("train", path, "--folds", "4")
    assert "4-fold cross-validation: val_accuracy mean" in out


def test_sweep_repeated_stratified_folds(cli, tmp_path):
    # Imbalanced classes (36, 18, 6 rows): each fold of each repeat holds a third of every class,
    # and each repeat validates every row once; the confusion matrices' rows count them.
    x, _ = blobs(60)
    labels = np.random.default_rng(1).permutation(np.repeat([0, 1, 2], [36, 18, 6]))
    np.savez(tmp_path / "blobs.npz", x=x, y=np.eye(3)[labels])
    spec = blobs_spec()
    spec["training"]["epochs"] = 10
    spec["data"] = {"train": {"file": {"path": "blobs.npz"}}}
    write_job(tmp_path, "blobs.json", spec)
    (tmp_path / "cv.yaml").write_text("base: blobs.json\nfolds: 2\nsort: val_macro_f1\n")
    code, out, _ = cli("sweep", tmp_path / "cv.yaml", "--folds", "3", "--repeats", "2", "--json")
    assert code == 0
    doc = parse(out)
    assert len(doc["jobs"]) == 6 and doc["sort"] == "val_macro_f1"
    f1 = [j["final"]["val_macro_f1"] for j in doc["jobs"]]
    assert f1 == sorted(f1, reverse=True)                         # more is better
    totals = np.bincount(labels)
    for repeat in (0, 1):
        jobs = [j for j in doc["jobs"] if j["overrides"]["data.cross_validation.repeat"] == repeat]
        held = [np.array(j["final"]["val_confusion"]).sum(axis=1) for j in jobs]
        assert sorted(j["overrides"]["data.cross_validation.fold"] for j in jobs) == [0, 1, 2]
        assert all(np.all(np.abs(h - totals / 3) < 1) for h in held)
        np.testing.assert_array_equal(sum(held), totals)
    cv = doc["cross_validation"][0]
    assert cv["metric"] == "val_macro_f1" and len(cv["folds"]) == 6
    code, out, _ = cli("sweep", tmp_path / "cv.yaml", "--folds", "3", "--repeats", "2", "--no-progress")
    assert code == 0 and "3-fold cross-validation x 2 repeats: val_macro_f1 mean" in out
    assert "val_f1" in next(line for line in out.splitlines() if line.lstrip().startswith("#"))
    code, _, err = cli("train", tmp_path / "blobs.json", "--repeats", "2")
    assert code != 0 and "--repeats needs --folds" in err


def test_result_shows_the_scores_and_the_confusion_matrix(cli, blobs_job):
    code, out, _ = cli("result", blobs_job["id"])
    assert code == 0 and "train_macro_f1" in out and "confusion matrix, training rows:" in out
    header = next(line for line in out.splitlines() if "true \\ predicted" in line)
    assert header.split()[-3:] == ["class0", "class1", "class2"]
    code, out, _ = cli("result", blobs_job["id"], "--json")
    final = parse(out)["final"]
    cm = np.array(final["train_confusion"])
    assert cm.shape == (3, 3) and cm.sum() == len(blobs_job["labels"])
    assert np.trace(cm) / cm.sum() == pytest.approx(final["train_accuracy"])


@pytest.mark.skipif(not (SHARED / "seeds_dataset.csv").exists(), reason=f"UCI seeds not found under {SHARED}")
def test_seeds_cross_validation_example(cli):
    code, out, _ = cli("sweep", EXAMPLES / "sweeps" / "seeds_cv.yaml", "--set", "training.epochs=100", "--json")
    assert code == 0
    cv = parse(out)["cross_validation"][0]
    assert len(cv["folds"]) == 5 and cv["mean"] > 0.85


def test_result_exports_round_trip_and_onnx_matches_predict(cli, blobs_job, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    job_id, x = blobs_job["id"], blobs_job["x"]
    with Client(cli.server) as c:
        r = c.result(job_id)
        want = c.predict(job_id, x)
    assert r.normalization is not None and r.normalization.kind == "standardize"
    # npz and safetensors: the exact bytes of every tensor, normalisation included.
    for suffix, reader in ((".npz", export.load_npz), (".safetensors", export.load_safetensors)):
        code, out, _ = cli("result", job_id, "-o", tmp_path / f"m{suffix}", "--json")
        assert code == 0 and parse(out)["saved"].endswith(suffix)
        layers, norm, meta = reader(tmp_path / f"m{suffix}")
        assert meta["job_id"] == job_id and meta["weights_sha256"] == r.weights_sha256
        for (w, b), layer in zip(r.weights, layers):
            assert layer.weights.dtype == w.dtype and layer.weights.tobytes() == w.tobytes()
            assert layer.bias.tobytes() == b.tobytes()
        assert norm.shift.tobytes() == r.normalization.shift.tobytes()
        assert norm.scale.tobytes() == r.normalization.scale.tobytes()
    # ONNX: raw inputs in, the server's predictions out (normalisation inside the graph).
    code, out, _ = cli("result", job_id, "-o", tmp_path / "m.onnx", "--verify", blobs_job["csv"], "--json")
    assert code == 0
    doc = parse(out)
    assert doc["verify"]["ok"] and doc["verify"]["rows"] == len(x) and doc["verify"]["max_abs_diff"] <= 1e-5
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x.astype(np.float32)})[0]
    assert np.abs(got - want).max() <= 1e-5
    ops = [n.op_type for n in __import__("onnx").load(str(tmp_path / "m.onnx")).graph.node]
    assert ops == ["Sub", "Mul", "Gemm", "Tanh", "Gemm", "Softmax"]
    code, out, _ = cli("result", job_id, "-o", tmp_path / "m.onnx", "--verify", blobs_job["csv"])
    assert "onnxruntime" in out and ": ok" in out


def test_predict_file_json_and_accuracy(cli, blobs_job, tmp_path):
    job_id = blobs_job["id"]
    code, out, _ = cli("predict", job_id, blobs_job["csv"], "--json")
    assert code == 0
    doc = parse(out)
    y = np.array(doc["y"])
    assert y.shape == (120, 3) and np.allclose(y.sum(axis=1), 1, atol=1e-5)
    assert doc["accuracy"] == pytest.approx(np.mean(y.argmax(axis=1) == blobs_job["labels"]))
    assert doc["accuracy"] > 0.9
    code, out, _ = cli("predict", job_id, json.dumps(blobs_job["x"][:2].tolist()))
    assert code == 0 and out.splitlines()[0].split() == ["row", "y0", "y1", "y2", "class"]
    code, out, _ = cli("predict", job_id, blobs_job["csv"], "-o", tmp_path / "p.npy", "--rows", "2")
    assert np.allclose(np.load(tmp_path / "p.npy"), y) and "accuracy" in out and "118 more rows" in out


def test_cancel_graceful_and_force(cli, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 16)).astype(np.float32)
    np.savez(tmp_path / "long.npz", x=x, y=(x[:, :1] > 0).astype(np.float32))
    spec = {"name": "long", "model": {"inputs": 16, "layers": [{"units": 32, "activation": "relu"},
                                                                {"units": 1, "activation": "sigmoid"}],
                                      "loss": "binary_cross_entropy"},
            "training": {"epochs": 100000, "batch_size": 4},
            "data": {"train": {"file": {"path": "long.npz"}}}}
    path = write_job(tmp_path, "long.json", spec)
    code, out, _ = cli("submit", path, path, "--json")
    graceful, forced = (j["id"] for j in parse(out))
    deadline = time.monotonic() + 120
    with Client(cli.server) as c:
        while c.job(graceful).epochs_done < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    code, out, _ = cli("cancel", graceful, "--json")
    assert code == 0 and parse(out)[0]["state"] in ("CANCELLING", "CANCELLED")
    code, out, _ = cli("watch", graceful, "--no-progress")
    assert code == 1 and "CANCELLED" in out                           # watch: the job did not succeed
    code, out, _ = cli("result", graceful, "--json")                  # graceful: the weights are kept
    assert code == 0 and parse(out)["state"] == "CANCELLED"
    code, out, _ = cli("cancel", forced, "--force")
    assert code == 0 and forced in out
    with Client(cli.server) as c:
        job = c.wait(forced)
    assert job.state == "CANCELLED"
    code, out, err = cli("result", forced)
    assert code == 5 and "FAILED_PRECONDITION" in err                # force: no weights
    code, out, _ = cli("delete", forced, "--json")
    assert code == 0 and parse(out) == {"deleted": [forced]}


def test_exit_codes_for_bad_input(cli, tmp_path):
    # 2: bad command line.
    with pytest.raises(SystemExit) as exc:
        cli("train")
    assert exc.value.code == 2
    # 3: a file that is not there, not JSON, or a spec the server refuses (INVALID_ARGUMENT).
    code, _, err = cli("train", tmp_path / "missing.json")
    assert code == 3 and "missing.json" in err
    (tmp_path / "bad.json").write_text("{not json")
    code, _, err = cli("train", tmp_path / "bad.json", "--json")
    assert code == 3 and "not valid JSON" in err
    code, out, err = cli("train", XOR, "--set", "model.layers[0].units=0", "--json")
    assert code == 3 and "model.layers[0].units" in err
    assert parse(out)["error"]["code"] == "INVALID_ARGUMENT"
    code, _, err = cli("train", XOR, "--set", "model.nonsense=1")
    assert code == 3 and "nonsense" in err
    spec = blobs_spec()
    spec["data"] = {"train": {"file": {"path": "absent.csv"}}}
    code, _, err = cli("train", write_job(tmp_path, "j.json", spec))
    assert code == 3 and "absent.csv not found" in err and "--set data.train.file.path=PATH" in err
    # 4: no such job.
    code, _, err = cli("status", "nosuchjob")
    assert code == 4 and "NOT_FOUND" in err
    # 6: no server there.
    code, _, err = cli("jobs", "--timeout", "1", server_address="127.0.0.1:1")
    assert code == 6 and "UNAVAILABLE" in err


def test_failed_job_exit_code(cli):
    code, out, _ = cli("train", XOR, "--set", "optimizer.kind=sgd", "--set", "optimizer.learning_rate=1e30",
                       "--set", "model.loss=mse", "--set", "model.layers[1].activation=identity",
                       "--set", "model.layers[0].activation=identity", "--json")
    assert code == 1
    doc = parse(out)
    assert doc["state"] == "FAILED" and doc["failure_reason"] == "DIVERGED"


def test_datasets_upload_skips_known_bytes(cli, tmp_path):
    x, labels = blobs(30, seed=5)
    np.savez(tmp_path / "d.npz", x=x, y=np.eye(3)[labels])
    code, out, _ = cli("datasets", "upload", tmp_path / "d.npz", "--json")
    first = parse(out)
    assert code == 0 and not first["already_present"] and first["arrays"]["x"]["shape"] == [30, 4]
    code, out, _ = cli("datasets", "upload", tmp_path / "d.npz", "--json")
    assert parse(out)["already_present"] and parse(out)["id"] == first["id"]
    code, out, _ = cli("datasets", "show", first["id"])
    assert first["id"] in out and "x (30, 4)" in out
    (tmp_path / "d.csv").write_text("1,2,a\n3,4,b\n5,6,a\n")
    code, out, _ = cli("datasets", "upload", tmp_path / "d.csv", "--json")
    assert parse(out)["arrays"]["y"]["shape"] == [3, 2]


def test_info_and_help(cli, capsys):
    code, out, _ = cli("info", "--json")
    assert code == 0 and "momentum" in parse(out)["optimizers"]
    from fusetrain.client.cli import main
    for command in ("train", "submit", "sweep", "jobs", "status", "watch", "cancel", "delete", "result",
                    "predict", "info", "serve"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0 and "examples:" in capsys.readouterr().out, command
    with pytest.raises(SystemExit):
        main(["datasets", "upload", "--help"])
    assert "examples:" in capsys.readouterr().out
    # The installed entry point.
    r = subprocess.run([sys.executable, "-m", "fusetrain.client.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "exit codes:" in r.stdout and "examples:" in r.stdout


def test_dropout_weights_and_plateau_job_file(cli, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    x, labels = blobs(90, seed=2)
    x = (x - x.mean(0)) / x.std(0)
    weights = 0.5 + (np.arange(90) % 4) / 2
    spec = blobs_spec(normalization={})
    spec["model"]["layers"][0].update(units=16, dropout=0.25)
    spec["optimizer"] = {"kind": "momentum", "learning_rate": 0.5,
                         "schedule": {"kind": "plateau", "factor": 0.5, "patience": 2, "threshold": 0.0}}
    spec["training"].update(validation_fraction=0.3, class_weight={"balanced": True}, seed=1)
    spec["data"] = {"train": {"x": {"shape": [90, 4], "values": x.reshape(-1).tolist()},
                              "y": {"shape": [90, 3], "values": np.eye(3)[labels].reshape(-1).tolist()},
                              "sample_weight": {"values": weights.tolist()}}}
    path = write_job(tmp_path, "regularized.json", spec)
    code, out, _ = cli("train", path, "--json", "--no-progress")
    assert code == 0
    remote = parse(out)
    assert remote["state"] == "SUCCEEDED"
    code, out, _ = cli("train", path, "--local", "--json", "--no-progress")
    assert code == 0 and parse(out)["weights_sha256"] == remote["weights_sha256"]
    code, out, _ = cli("result", remote["job_id"], "--history", "--json")
    rates = [row["learning_rate"] for row in parse(out)["history"]]
    assert rates[0] == 0.5 and min(rates) < 0.5
    # The ONNX export has no dropout: onnxruntime gives Predict's outputs.
    code, out, _ = cli("result", remote["job_id"], "-o", tmp_path / "m.onnx", "--json")
    assert code == 0
    ops = [n.op_type for n in __import__("onnx").load(str(tmp_path / "m.onnx")).graph.node]
    assert "Dropout" not in ops and ops.count("Gemm") == 2
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    with Client(cli.server) as c:
        want = c.predict(remote["job_id"], x)
    got = session.run(None, {"x": x.astype(np.float32)})[0]
    assert np.abs(got - want).max() <= 1e-5
    # Bad settings exit 3 and name the field, here and with --local.
    for args, field in ((("--set", "model.layers[1].dropout=0.5"), "model.layers[1].dropout"),
                        (("--set", "optimizer.schedule.patience=0"), "optimizer.schedule.patience"),
                        (("--set", "training.validation_fraction=0"), "optimizer.schedule.monitor"),
                        (("--set", "optimizer.schedule.kind=cosine"), "optimizer.schedule.factor")):
        for local in ((), ("--local",)):
            code, _, err = cli("train", path, *args, *local, "--no-progress")
            assert code == 3 and field in err, (args, local, err)
