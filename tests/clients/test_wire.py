"""fusetrain.wire.paths and fusetrain.wire.idx: one field-path parser for --set and sweep grids,
one IDX reader for the client and the MNIST benchmark."""

from __future__ import annotations

import gzip
import inspect
import struct

import numpy as np
import pytest
from client_helpers import EXAMPLES

from fusetrain.client import SpecError, jobfiles, loaders
from fusetrain.v1 import job_pb2
from fusetrain.wire import idx, paths


def _camel_file(tmp_path):
    path = tmp_path / "camel.json"
    path.write_text('{"model": {"inputs": 2, "layers": [{"units": 1, "activation": "sigmoid"}]},'
                    ' "optimizer": {"kind": "sgd", "learningRate": 0.5}, "training": {"batchSize": 4}}')
    return path


def test_camel_case_file_with_snake_case_set(tmp_path):
    path = _camel_file(tmp_path)
    for key in ("optimizer.learning_rate", "optimizer.learningRate"):
        spec, _ = jobfiles.load_spec(path, jobfiles.Overrides({key: 0.1}))
        assert spec.optimizer.learning_rate == 0.1
    spec, _ = jobfiles.load_spec(path, {"training.batch_size": 8})
    assert spec.training.batch_size == 8


def test_typo_in_set_blames_set_and_suggests(tmp_path):
    with pytest.raises(SpecError) as err:
        jobfiles.load_spec(_camel_file(tmp_path), jobfiles.Overrides({"optimizer.learning_rat": 0.1}))
    assert str(err.value) == "--set optimizer.learning_rat: unknown field; did you mean learning_rate?"
    with pytest.raises(SpecError, match=r"^--set training.epochs: .*abc"):
        jobfiles.load_spec(_camel_file(tmp_path), jobfiles.Overrides({"training.epochs": "abc"}))


def test_typo_in_file_blames_the_file(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("model: {inputs: 2, layers: [{units: 1}]}\noptimizer: {kind: sgd, learning_rat: 0.1}\n")
    with pytest.raises(SpecError, match=r"typo.yaml: optimizer.learning_rat: unknown field; "
                                        r"did you mean learning_rate\?"):
        jobfiles.load_spec(path)
    path.write_text("optimizer: {learning_rate: 0.1, learningRate: 0.2}\n")
    with pytest.raises(SpecError, match="optimizer.learning_rate: given twice, as learning_rate and learningRate"):
        jobfiles.load_spec(path)


def test_grid_uses_the_same_parser():
    from fusetrain.service import grids
    from fusetrain.service.errors import InvalidArgument

    spec = job_pb2.JobSpec()
    spec.model.layers.add(units=2)
    grids.apply_override(spec, "optimizer.learningRate", 0.25, "grid[0]")
    grids.apply_override(spec, "optimizer", {"kind": "sgd", "learningRate": 0.5}, "grid[1]")
    grids.apply_override(spec, "model.layers[0]", {"leakySlope": 0.2}, "grid[2]")
    assert spec.optimizer.learning_rate == 0.5 and spec.model.layers[0].leaky_slope == pytest.approx(0.2)
    with pytest.raises(InvalidArgument) as err:
        grids.apply_override(spec, "optimizer.learning_rat", 0.1, "grid[0]")
    assert "optimizer.learning_rat: unknown field; did you mean learning_rate?" in str(err.value)
    # One home: neither side keeps a parser of its own.
    for module in (grids, jobfiles):
        assert "_PART" not in vars(module) and "re.compile" not in inspect.getsource(module)


def test_paths_set_in_dict_and_message_agree():
    doc = paths.canonical({"model": {"inputs": 2, "layers": [{"units": 3}]}})
    msg = job_pb2.JobSpec()
    msg.model.layers.add(units=3)
    for path, value in (("model.layers[0].units", 5), ("labels.team", "a"), ("optimizer.beta1", 0.8),
                        ("training.earlyStopping.patience", 3)):
        paths.set_in_dict(doc, path, value)
        paths.set_in_message(msg, path, value)
    from google.protobuf import json_format
    assert json_format.ParseDict(doc, job_pb2.JobSpec()).optimizer == msg.optimizer
    assert msg.labels["team"] == "a" and msg.training.early_stopping.patience == 3
    with pytest.raises(paths.FieldPathError, match="layers has no item 4"):
        paths.set_in_message(msg, "model.layers[4].units", 1)


def _idx_bytes(shape, data, code=0x08) -> bytes:
    return bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape) + data.tobytes()


def test_one_idx_reader(tmp_path):
    images = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "i-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes((2, 3, 4), images)))
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "i-idx3-ubyte.gz"), images)
    with pytest.raises(idx.IDXError, match="expected 0x00000801"):
        idx.read_idx(tmp_path / "i-idx3-ubyte.gz", idx.MAGIC_LABELS)
    assert loaders.load(tmp_path / "i-idx3-ubyte.gz").x.shape == (2, 12)
    assert "_IDX_TYPES" not in vars(loaders)
    bench = (EXAMPLES.parent / "benchmarks" / "idx.py").read_text()
    assert "from fusetrain.wire.idx import" in bench and "struct.unpack" not in bench


def test_unused_hyper_parameters_are_refused(tmp_path):
    """sgd ignores momentum (the engine's arithmetic is unchanged): the client and the service
    refuse it, naming the field, instead of training without it."""
    from fusetrain.service import specs
    from fusetrain.service.config import ServiceLimits
    from fusetrain.service.errors import InvalidArgument

    doc = {"model": {"inputs": 2, "layers": [{"units": 1, "activation": "sigmoid"}]},
           "optimizer": {"kind": "sgd", "momentum": 0.9}}
    with pytest.raises(SpecError, match=r"optimizer.momentum: is not used by optimizer kind 'sgd' "
                                        r"\(only momentum or nesterov use it\)"):
        jobfiles.load_spec(doc)
    for optimizer, field in (({"kind": "rmsprop", "beta1": 0.8}, "optimizer.beta1"),
                             ({"kind": "adam", "rho": 0.8}, "optimizer.rho"),
                             ({"kind": "momentum", "epsilon": 1e-7}, "optimizer.epsilon"),
                             ({"kind": "adam", "schedule": {"kind": "cosine", "gamma": 0.5}},
                              "optimizer.schedule.gamma")):
        spec, _ = jobfiles.load_spec({**doc, "optimizer": optimizer}, check=False)
        with pytest.raises(InvalidArgument, match=field.replace(".", r"\.")):
            specs.to_engine(spec, ServiceLimits(), 1)
    for optimizer in ({"kind": "momentum", "momentum": 0.5}, {"kind": "adamw", "beta2": 0.99, "epsilon": 1e-7},
                      {"kind": "rmsprop", "rho": 0.8}, {"kind": "sgd", "weight_decay": 1e-4, "clip_norm": 1.0,
                                                        "schedule": {"kind": "step", "step_size": 5, "gamma": 0.5}}):
        spec, _ = jobfiles.load_spec({**doc, "optimizer": optimizer})
        specs.to_engine(spec, ServiceLimits(), 1)
    # A sweep's base is left to the server: the grid may change the kind.
    (tmp_path / "s.yaml").write_text("base: {model: {inputs: 2, layers: [{units: 1}]}, "
                                     "optimizer: {kind: sgd, momentum: 0.9}}\n"
                                     "grid: {optimizer.kind: [momentum, nesterov]}\n")
    assert jobfiles.load_sweep(tmp_path / "s.yaml").base.optimizer.momentum == 0.9
