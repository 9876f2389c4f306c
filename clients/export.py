"""Write a trained model to .npz, .safetensors or .onnx.

A model here is plain data: a list of `Layer`s (W (units, inputs), b (units,), activation,
leaky slope) and an optional input normalisation x' = (x - shift) * scale. The ONNX graph uses
only standard operators (Sub, Mul, Gemm, Sigmoid, Tanh, Relu, LeakyRelu, Softmax), so any
ONNX runtime reproduces the service's predictions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

ONNX_OPSET = 17


@dataclass
class Layer:
    weights: np.ndarray      # (units, inputs)
    bias: np.ndarray         # (units,)
    activation: str
    leaky_slope: float = 0.01


@dataclass
class Normalization:
    """x' = (x - shift) * scale, per input column; computed on the training data."""

    kind: str                # "minmax" or "standardize"
    shift: np.ndarray        # (inputs,)
    scale: np.ndarray        # (inputs,)


class ExportError(ValueError):
    """The model cannot be written in the asked format; the message says why."""


def save(path, layers: Sequence[Layer], normalization: Optional[Normalization] = None,
         metadata: Optional[dict] = None) -> Path:
    """Write by extension: .npz, .safetensors or .onnx."""
    path = Path(path)
    suffix = path.suffix.lower()
    writers = {".npz": save_npz, ".safetensors": save_safetensors, ".onnx": save_onnx}
    if suffix not in writers:
        raise ExportError(f"{path}: unknown format {suffix or '(none)'}; use .npz, .safetensors or .onnx")
    writers[suffix](path, layers, normalization, metadata)
    return path


def tensors(layers: Sequence[Layer], normalization: Optional[Normalization] = None) -> dict[str, np.ndarray]:
    """Named arrays: layers.{i}.weight / layers.{i}.bias, normalization.shift / .scale."""
    out = {}
    for i, layer in enumerate(layers):
        out[f"layers.{i}.weight"] = np.ascontiguousarray(layer.weights)
        out[f"layers.{i}.bias"] = np.ascontiguousarray(layer.bias)
    if normalization is not None:
        out["normalization.shift"] = np.ascontiguousarray(normalization.shift)
        out["normalization.scale"] = np.ascontiguousarray(normalization.scale)
    return out


def describe(layers: Sequence[Layer], normalization: Optional[Normalization], metadata: Optional[dict]) -> str:
    """The architecture and caller metadata as one JSON string (stored beside the tensors)."""
    return json.dumps({
        "format": "fusetrain-mlp/1",
        "activations": [layer.activation for layer in layers],
        "leaky_slopes": [float(layer.leaky_slope) for layer in layers],
        "normalization": None if normalization is None else normalization.kind,
        **(metadata or {}),
    }, sort_keys=True)


def save_npz(path, layers, normalization=None, metadata=None) -> None:
    arrays = tensors(layers, normalization)
    arrays["model.json"] = np.frombuffer(describe(layers, normalization, metadata).encode(), dtype=np.uint8)
    _atomic(Path(path), lambda f: np.savez(f, **arrays))


def save_safetensors(path, layers, normalization=None, metadata=None) -> None:
    _needs("safetensors", "writing .safetensors")
    from safetensors.numpy import save

    blob = save(tensors(layers, normalization), metadata={"model.json": describe(layers, normalization, metadata)})
    _atomic(Path(path), lambda f: f.write(blob))


def load_npz(path) -> tuple[list[Layer], Optional[Normalization], dict]:
    """Read what save_npz wrote: (layers, normalization, metadata)."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    return _from_tensors(arrays, json.loads(arrays.pop("model.json").tobytes().decode()))


def load_safetensors(path) -> tuple[list[Layer], Optional[Normalization], dict]:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        arrays = {k: f.get_tensor(k) for k in f.keys()}
        meta = json.loads(f.metadata()["model.json"])
    return _from_tensors(arrays, meta)


def _needs(module: str, what: str):
    """Import an export dependency, or an ExportError naming the extra that installs it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(f"{what} needs {module.split('.')[0]}: pip install 'fusetrain[export]'") from None


def to_onnx(layers: Sequence[Layer], normalization: Optional[Normalization] = None, name: str = "fusetrain_mlp"):
    """An onnx.ModelProto computing the model's output activations from input "x" (batch, inputs)."""
    onnx = _needs("onnx", "writing .onnx")
    from onnx import TensorProto, helper, numpy_helper

    if not layers:
        raise ExportError("a model needs at least one layer")
    dtype = np.asarray(layers[0].weights).dtype
    if dtype not in (np.float32, np.float64):
        raise ExportError(f"weights must be float32 or float64, got {dtype}")
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    nodes, inits = [], []
    current = "x"
    if normalization is not None:
        inits += [numpy_helper.from_array(np.asarray(normalization.shift, dtype), "norm_shift"),
                  numpy_helper.from_array(np.asarray(normalization.scale, dtype), "norm_scale")]
        nodes += [helper.make_node("Sub", ["x", "norm_shift"], ["x_shifted"]),
                  helper.make_node("Mul", ["x_shifted", "norm_scale"], ["x_normalized"])]
        current = "x_normalized"
    for i, layer in enumerate(layers):
        w = f"layers.{i}.weight"
        b = f"layers.{i}.bias"
        inits += [numpy_helper.from_array(np.asarray(layer.weights, dtype), w),
                  numpy_helper.from_array(np.asarray(layer.bias, dtype), b)]
        z = f"z{i}"
        nodes.append(helper.make_node("Gemm", [current, w, b], [z], transB=1))  # z = x W^T + b
        out = "y" if i == len(layers) - 1 else f"a{i}"
        act = layer.activation
        if act == "identity":
            nodes.append(helper.make_node("Identity", [z], [out]))
        elif act == "sigmoid":
            nodes.append(helper.make_node("Sigmoid", [z], [out]))
        elif act == "tanh":
            nodes.append(helper.make_node("Tanh", [z], [out]))
        elif act == "relu":
            nodes.append(helper.make_node("Relu", [z], [out]))
        elif act == "leaky_relu":
            nodes.append(helper.make_node("LeakyRelu", [z], [out], alpha=float(layer.leaky_slope)))
        elif act == "softmax":
            nodes.append(helper.make_node("Softmax", [z], [out], axis=-1))
        else:
            raise ExportError(f"layers[{i}].activation {act!r} has no ONNX operator here")
        current = out
    inputs = np.asarray(layers[0].weights).shape[1]
    outputs = np.asarray(layers[-1].weights).shape[0]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", elem, ["batch", inputs])],
                              [helper.make_tensor_value_info("y", elem, ["batch", outputs])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                              producer_name="fusetrain")
    model.ir_version = 8  # readable by every onnxruntime release since 1.10
    onnx.checker.check_model(model)
    return model


def save_onnx(path, layers, normalization=None, metadata=None) -> None:
    model = to_onnx(layers, normalization)
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key = str(key)
        entry.value = value if isinstance(value, str) else json.dumps(value)   # class_names: a JSON list
    blob = model.SerializeToString()
    _atomic(Path(path), lambda f: f.write(blob))


def forward(layers: Sequence[Layer], normalization: Optional[Normalization], x: np.ndarray) -> np.ndarray:
    """The model's outputs computed with numpy, in the weights' dtype (a reader's reference)."""
    dtype = np.asarray(layers[0].weights).dtype
    a = np.asarray(x, dtype=dtype)
    if normalization is not None:
        a = (a - normalization.shift.astype(dtype)) * normalization.scale.astype(dtype)
    for layer in layers:
        z = a @ layer.weights.T + layer.bias
        if layer.activation == "sigmoid":
            a = 1 / (1 + np.exp(-z))
        elif layer.activation == "tanh":
            a = np.tanh(z)
        elif layer.activation == "relu":
            a = np.maximum(z, 0)
        elif layer.activation == "leaky_relu":
            a = np.where(z >= 0, z, z * dtype.type(layer.leaky_slope))
        elif layer.activation == "softmax":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            a = e / e.sum(axis=1, keepdims=True)
        elif layer.activation == "identity":
            a = z
        else:
            raise ExportError(f"activation {layer.activation!r} is unknown here")
    return a


def _from_tensors(arrays: dict, meta: dict) -> tuple[list[Layer], Optional[Normalization], dict]:
    layers = [Layer(arrays[f"layers.{i}.weight"], arrays[f"layers.{i}.bias"], act, slope)
              for i, (act, slope) in enumerate(zip(meta.pop("activations"), meta.pop("leaky_slopes")))]
    kind = meta.pop("normalization")
    norm = None if kind is None else Normalization(kind, arrays["normalization.shift"], arrays["normalization.scale"])
    meta.pop("format", None)
    return layers, norm, meta


def _atomic(path: Path, write) -> None:
    """Write through a temporary file and rename, so a reader never sees half a model."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        write(f)
    tmp.replace(path)
