"""Job files and sweep files (JSON and YAML), --set overrides, local data files, deterministic NPZ."""

from __future__ import annotations

import gzip
import hashlib
import json
import struct

import numpy as np
import pytest
from client_helpers import EXAMPLES, SHARED

from fusetrain.client import SpecError, jobfiles
from fusetrain.client.loaders import load_labels
from fusetrain.v1 import job_pb2


def test_every_example_job_file_parses():
    for path in sorted((EXAMPLES / "jobs").iterdir()):
        spec, base_dir = jobfiles.load_spec(path)
        assert spec.model.inputs > 0 and spec.model.layers, path
        assert base_dir == path.parent.resolve()
    for path in sorted((EXAMPLES / "sweeps").iterdir()):
        sweep = jobfiles.load_sweep(path)
        assert sweep.axes or sweep.search.params, path


def test_yaml_json_dict_and_message_are_one_spec(tmp_path):
    doc = {"name": "n", "model": {"inputs": 2, "layers": [{"units": 1, "activation": "sigmoid"}]},
           "training": {"epochs": 3, "batch_size": 0}}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    (tmp_path / "a.yaml").write_text("name: n\nmodel:\n  inputs: 2\n  layers:\n    - {units: 1, activation: sigmoid}\n"
                                     "training: {epochs: 3, batch_size: 0}\n")
    specs = [jobfiles.load_spec(x)[0] for x in (tmp_path / "a.json", tmp_path / "a.yaml", doc)]
    specs.append(jobfiles.load_spec(specs[0])[0])
    assert all(s == specs[0] for s in specs)
    assert specs[0].training.HasField("batch_size")


def test_overrides(tmp_path):
    spec, _ = jobfiles.load_spec(EXAMPLES / "jobs" / "xor.json", {
        "training.epochs": 9, "model.layers[0].units": 3, "optimizer.learningRate": 0.5, "labels.k": "v",
        "model.normalization.kind": "minmax"})
    assert spec.training.epochs == 9 and spec.model.layers[0].units == 3
    assert spec.optimizer.learning_rate == 0.5 and spec.labels["k"] == "v"
    assert spec.model.normalization.kind == "minmax"
    with pytest.raises(SpecError, match="layers has no item 5"):
        jobfiles.load_spec(EXAMPLES / "jobs" / "xor.json", {"model.layers[5].units": 3})
    with pytest.raises(SpecError, match="nonsense"):
        jobfiles.load_spec(EXAMPLES / "jobs" / "xor.json", {"model.nonsense": 3})
    assert jobfiles.parse_assignment("a.b=0.5") == ("a.b", 0.5)
    assert jobfiles.parse_assignment("a=[1, 2]") == ("a", [1, 2])
    assert jobfiles.parse_assignment("a=relu") == ("a", "relu")
    with pytest.raises(SpecError, match="FIELD=VALUE"):
        jobfiles.parse_assignment("novalue")


def test_bad_files_name_the_file(tmp_path):
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    with pytest.raises(SpecError, match="bad.yaml: not valid YAML"):
        jobfiles.load_spec(tmp_path / "bad.yaml")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(SpecError, match="expected a mapping"):
        jobfiles.load_spec(tmp_path / "list.json")
    (tmp_path / "field.json").write_text('{"model": {"input": 2}}')
    with pytest.raises(SpecError, match=r"field.json: .*input"):
        jobfiles.load_spec(tmp_path / "field.json")


def test_sweep_files(tmp_path):
    (tmp_path / "s.yaml").write_text("base: " + str(EXAMPLES / "jobs" / "xor.json") + "\n"
                                     "grid:\n  optimizer.learning_rate: [0.1, 0.2]\n  model.seed: [0, 1, 2]\n"
                                     "folds: 3\nlabels: {a: b}\nsort: val_loss\n")
    sw = jobfiles.load_sweep(tmp_path / "s.yaml")
    assert [name for name, _ in sw.axes] == ["optimizer.learning_rate", "model.seed", jobfiles.FOLD_FIELD]
    assert sw.base.data.cross_validation.folds == 3 and sw.labels == {"a": "b"} and sw.sort == "val_loss"
    combos = sw.combinations()
    assert len(combos) == 18 and combos[1] == {"optimizer.learning_rate": 0.1, "model.seed": 0,
                                               jobfiles.FOLD_FIELD: 1}
    (tmp_path / "t.yaml").write_text("grid: {a: [1]}\n")
    with pytest.raises(SpecError, match="needs `base`"):
        jobfiles.load_sweep(tmp_path / "t.yaml")
    (tmp_path / "u.yaml").write_text("base: {}\ngrids: {}\n")
    with pytest.raises(SpecError, match="unknown sweep keys"):
        jobfiles.load_sweep(tmp_path / "u.yaml")


def test_npz_bytes_are_deterministic():
    a = {"x": np.arange(6, dtype=np.uint8).reshape(3, 2), "y": np.eye(3)}
    first = jobfiles.npz_bytes(a)
    assert jobfiles.npz_bytes({"y": np.eye(3), "x": a["x"].copy()}) == first
    with np.load(__import__("io").BytesIO(first), allow_pickle=False) as z:
        assert z["x"].dtype == np.uint8 and (z["y"] == np.eye(3)).all()


def _idx(shape, data: np.ndarray, code=0x08) -> bytes:
    return bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape) + data.tobytes()


def test_resolve_files_reads_csv_npz_and_idx_with_labels(tmp_path):
    (tmp_path / "d.csv").write_text("f1,f2,kind\n1,2,cat\n3,4,dog\n5,6,cat\n")
    images = np.arange(3 * 2 * 2, dtype=np.uint8).reshape(3, 2, 2)
    (tmp_path / "img.gz").write_bytes(gzip.compress(_idx((3, 2, 2), images)))
    (tmp_path / "lab.gz").write_bytes(gzip.compress(_idx((3,), np.array([7, 1, 7], np.uint8))))
    stored = {}

    def store(arrays, name):
        blob = jobfiles.npz_bytes(arrays)
        sha = hashlib.sha256(blob).hexdigest()
        stored[sha] = arrays
        return sha
    spec = job_pb2.JobSpec()
    spec.data.train.file.path = "d.csv"
    spec.data.validation.file.path = "img.gz"
    spec.data.validation.file.labels = "lab.gz"
    read = jobfiles.resolve_files(spec, tmp_path, store)
    assert not spec.data.train.HasField("file") and spec.data.train.dataset_id in stored
    train = stored[spec.data.train.dataset_id]
    np.testing.assert_array_equal(train["x"], [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(train["y"], [[1, 0], [0, 1], [1, 0]])
    assert read["data.train.file"].classes == ["cat", "dog"]
    val = stored[spec.data.validation.dataset_id]
    assert val["x"].dtype == np.uint8 and val["x"].shape == (3, 4)        # pixels stay uint8
    np.testing.assert_array_equal(val["y"], [[0, 1], [1, 0], [0, 1]])
    spec.data.train.file.path = "missing.csv"
    with pytest.raises(SpecError, match=r"data.train.file.path: .*missing.csv not found; .*--set "
                                        r"data.train.file.path=PATH"):
        jobfiles.resolve_files(spec, tmp_path, store)


def test_load_labels(tmp_path):
    np.save(tmp_path / "l.npy", np.array([2, 0, 2]))
    y, classes = load_labels(tmp_path / "l.npy")
    assert classes == ["0", "2"] and y.tolist() == [[0, 1], [1, 0], [0, 1]]
    y, classes = load_labels(tmp_path / "l.npy", one_hot=False)
    assert y.tolist() == [[2], [0], [2]] and classes == []
    (tmp_path / "l.csv").write_text("a\nb\na\n")
    y, classes = load_labels(tmp_path / "l.csv")
    assert classes == ["a", "b"] and y.argmax(axis=1).tolist() == [0, 1, 0]


def test_real_mnist_files_resolve():
    if not (SHARED / "mnist" / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST not found under {SHARED / 'mnist'}")
    src = job_pb2.LocalFile(path=str(SHARED / "mnist" / "t10k-images-idx3-ubyte.gz"),
                            labels=str(SHARED / "mnist" / "t10k-labels-idx1-ubyte.gz"))
    d = jobfiles.read_file_source(src, SHARED, "data.validation.file")
    assert d.x.shape == (10000, 784) and d.x.dtype == np.uint8 and d.y.shape == (10000, 10)
    assert d.y.sum(axis=0).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
