"""Exports: npz and safetensors round trips bit-exact; ONNX checked in onnxruntime."""

import numpy as np
import pytest

import fusetrain.engine as engine
from fusetrain.client.export import (ExportError, Layer, Normalization, load_npz, load_safetensors, save,
                                     to_onnx)
from fusetrain.engine import LayerSpec, ModelSpec

ACTS = ["sigmoid", "tanh", "relu", "leaky_relu", "identity"]


def trained(dtype, hidden, out="softmax", loss="softmax_cross_entropy"):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5))
    y = np.eye(3)[rng.integers(0, 3, 64)]
    model = ModelSpec(inputs=5, layers=[LayerSpec(8, hidden, leaky_slope=0.2), LayerSpec(6, "tanh"),
                                        LayerSpec(3, out)], loss=loss, dtype=dtype)
    r = engine.train(model, engine.OptimizerSpec(learning_rate=0.1), engine.TrainConfig(epochs=3), x, y)
    layers = [Layer(w, b, spec.activation, spec.leaky_slope) for (w, b), spec in zip(r.weights, model.layers)]
    return model, r.weights, layers, x


@pytest.mark.parametrize("hidden", ACTS)
# onnxruntime evaluates tanh with its own approximation, also in float64.
@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float64", 1e-8)])
def test_onnx_matches_engine_predictions(hidden, dtype, tol, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model, weights, layers, x = trained(dtype, hidden)
    shift, scale = x.mean(axis=0), 1 / x.std(axis=0)
    norm = Normalization("standardize", shift, scale)
    path = save(tmp_path / "m.onnx", layers, norm, {"job_id": "j1"})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x.astype(dtype)})[0]
    expect = engine.predict(model, weights, ((x - shift) * scale).astype(dtype))
    assert np.abs(got - expect).max() <= tol


def test_onnx_uses_standard_operators():
    _, _, layers, _ = trained("float32", "leaky_relu", out="sigmoid", loss="half_sse")
    ops = [n.op_type for n in to_onnx(layers).graph.node]
    assert ops == ["Gemm", "LeakyRelu", "Gemm", "Tanh", "Gemm", "Sigmoid"]


@pytest.mark.parametrize("suffix,reader", [(".npz", load_npz), (".safetensors", load_safetensors)])
def test_round_trip_is_bit_exact(suffix, reader, tmp_path):
    _, weights, layers, x = trained("float32", "relu")
    norm = Normalization("minmax", x.min(axis=0).astype(np.float32), (1 / np.ptp(x, axis=0)).astype(np.float32))
    path = save(tmp_path / f"model{suffix}", layers, norm, {"job_id": "abc"})
    back, back_norm, meta = reader(path)
    assert meta == {"job_id": "abc"}
    for a, b in zip(layers, back):
        assert a.weights.tobytes() == b.weights.tobytes() and a.weights.dtype == b.weights.dtype
        assert a.bias.tobytes() == b.bias.tobytes()
        assert (a.activation, a.leaky_slope) == (b.activation, b.leaky_slope)
    assert back_norm.kind == "minmax" and back_norm.shift.tobytes() == norm.shift.tobytes()


def test_unknown_format_and_activation(tmp_path):
    _, _, layers, _ = trained("float32", "relu")
    with pytest.raises(ExportError, match="unknown format .pt"):
        save(tmp_path / "m.pt", layers)
    with pytest.raises(ExportError, match="swish"):
        to_onnx([Layer(layers[0].weights, layers[0].bias, "swish")])
