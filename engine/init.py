"""Initial weights: explicit per layer, or drawn by a named initializer from a seeded generator.

Biases start at zero unless given. Draws are made in float64 and cast, so a seed gives the
same model in float32 and float64 up to rounding.
"""

from __future__ import annotations

import numpy as np

from .spec import ModelSpec


def _uniform(rng, shape, fan_in, fan_out, scale):
    return rng.uniform(-scale, scale, shape)


def _normal(rng, shape, fan_in, fan_out, scale):
    return rng.normal(0.0, scale, shape)


def _glorot_uniform(rng, shape, fan_in, fan_out, scale):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape)


def _glorot_normal(rng, shape, fan_in, fan_out, scale):
    return rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), shape)


def _he_uniform(rng, shape, fan_in, fan_out, scale):
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, shape)


def _he_normal(rng, shape, fan_in, fan_out, scale):
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)


# name -> f(rng, shape, fan_in, fan_out, scale); keys match registry.INITIALIZERS.
INITIALIZER_FUNCS = {
    "uniform": _uniform,
    "normal": _normal,
    "glorot_uniform": _glorot_uniform,
    "glorot_normal": _glorot_normal,
    "he_uniform": _he_uniform,
    "he_normal": _he_normal,
}


def initial_weights(model: ModelSpec) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(W (units, inputs), b (units,)), ...] in the model dtype, explicit values first."""
    rng = np.random.default_rng(model.seed)
    draw = INITIALIZER_FUNCS[model.initializer]
    dtype = np.dtype(model.dtype)
    out = []
    for fan_in, layer in zip(model.layer_inputs(), model.layers):
        shape = (layer.units, fan_in)
        # Draw even when weights are given, so later layers do not depend on earlier choices.
        drawn = draw(rng, shape, fan_in, layer.units, model.init_scale)
        w = drawn if layer.weights is None else np.asarray(layer.weights, dtype=np.float64)
        b = np.zeros(layer.units) if layer.bias is None else np.asarray(layer.bias, dtype=np.float64)
        out.append((np.ascontiguousarray(w, dtype=dtype), np.ascontiguousarray(b, dtype=dtype)))
    return out
