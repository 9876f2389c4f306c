"""The fused train step: gradients against the NumPy reference and central differences."""

import numpy as np
import pytest

import fusetrain.engine as engine
from fusetrain.engine import LayerSpec, ModelSpec
from probe import engine_gradients
from reference import gradients

HIDDEN = ["identity", "sigmoid", "tanh", "relu", "leaky_relu"]
# (loss, output activations allowed with it)
LOSS_OUTPUTS = [
    ("half_sse", HIDDEN + ["softmax"]),
    ("mse", HIDDEN + ["softmax"]),
    ("binary_cross_entropy", ["sigmoid"]),
    ("softmax_cross_entropy", ["softmax"]),
]
CASES = [(h, loss, out) for loss, outs in LOSS_OUTPUTS for out in outs for h in HIDDEN]


def _problem(loss, out_act, hidden, dtype="float64", seed=0, rows=6, inputs=4, hidden_units=5, outs=3,
             scale=0.7):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, inputs))
    if loss in ("binary_cross_entropy",):
        y = rng.integers(0, 2, size=(rows, outs)).astype(float)
    elif loss == "softmax_cross_entropy" or out_act == "softmax":
        y = np.eye(outs)[rng.integers(0, outs, rows)]
    else:
        y = rng.normal(size=(rows, outs))
    model = ModelSpec(inputs=inputs, layers=[LayerSpec(hidden_units, hidden, leaky_slope=0.1),
                                             LayerSpec(outs, out_act, leaky_slope=0.1)],
                      loss=loss, initializer="normal", init_scale=scale, seed=seed, dtype=dtype)
    return model, x, y


@pytest.mark.parametrize("small", [False, True], ids=["general", "small"])
@pytest.mark.parametrize("hidden,loss,out", CASES)
def test_gradients_match_central_differences(hidden, loss, out, small):
    model, x, y = _problem(loss, out, hidden)
    weights = engine.train(model, engine.OptimizerSpec(learning_rate=1e-12),
                           engine.TrainConfig(epochs=1, batch_size=0, shuffle=False), x, y).weights
    _, grads = engine_gradients(model, x, y, weights, small=small)
    h = 1e-6
    num, ana = [], []
    for l, (w, b) in enumerate(weights):
        for arr, g in ((w, grads[l][0]), (b, grads[l][1])):
            flat = arr.reshape(-1)
            for i in range(flat.size):
                keep = flat[i]
                flat[i] = keep + h
                up = engine.evaluate(model, weights, x, y)["loss"]
                flat[i] = keep - h
                down = engine.evaluate(model, weights, x, y)["loss"]
                flat[i] = keep
                num.append((up - down) / (2 * h))
            ana.extend(g.reshape(-1))
    num, ana = np.array(num), np.array(ana)
    rel = np.linalg.norm(num - ana) / (np.linalg.norm(num) + np.linalg.norm(ana))
    assert rel < 1e-7, f"relative error {rel:.3g}"


@pytest.mark.parametrize("small", [False, True], ids=["general", "small"])
@pytest.mark.parametrize("hidden,loss,out", CASES)
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 2e-5)])
def test_gradients_match_numpy_reference(hidden, loss, out, dtype, tol, small):
    model, x, y = _problem(loss, out, hidden, dtype=dtype, seed=3)
    weights = engine.init.initial_weights(model)
    value, grads = engine_gradients(model, x, y, weights, small=small)
    ref_value, ref_grads = gradients(weights, x, y, [hidden, out], loss, {0: 0.1, 1: 0.1})
    assert value == pytest.approx(ref_value, rel=tol, abs=tol)
    for (gw, gb), (rw, rb) in zip(grads, ref_grads):
        np.testing.assert_allclose(gw, rw, rtol=tol * 10, atol=tol)
        np.testing.assert_allclose(gb, rb, rtol=tol * 10, atol=tol)


@pytest.mark.parametrize("units", [(4, 40, 3), (30, 64, 10)])
def test_blas_layers_match_numpy_reference(units):
    """Layers above the hand-loop size go through BLAS; same gradients."""
    inputs, hidden, outs = units
    model, x, y = _problem("softmax_cross_entropy", "softmax", "relu", rows=17, inputs=inputs,
                           hidden_units=hidden, outs=outs, scale=0.1)
    weights = engine.init.initial_weights(model)
    value, grads = engine_gradients(model, x, y, weights)
    ref_value, ref_grads = gradients(weights, x, y, ["relu", "softmax"], "softmax_cross_entropy")
    assert value == pytest.approx(ref_value, rel=1e-12)
    for (gw, gb), (rw, rb) in zip(grads, ref_grads):
        np.testing.assert_allclose(gw, rw, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(gb, rb, rtol=1e-10, atol=1e-13)
