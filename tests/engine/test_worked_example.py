"""The classic 2-2-1 worked example, by hand: every number below is derived in the comments.

Network: inputs i1 = 0.05, i2 = 0.10; targets o1 = 0.01, o2 = 0.99; sigmoid everywhere;
w1..w4 = 0.15, 0.20, 0.25, 0.30 (input -> hidden), w5..w8 = 0.40, 0.45, 0.50, 0.55
(hidden -> output), biases b1 = 0.35 (hidden) and b2 = 0.60 (output), held fixed;
E = 1/2 sum (target - out)^2; plain SGD, learning rate 0.5, one row, full batch.
"""

import numpy as np
import pytest

import fusetrain.engine as engine
from fusetrain.engine import LayerSpec, ModelSpec, OptimizerSpec, TrainConfig

X = [[0.05, 0.10]]
Y = [[0.01, 0.99]]


def model(dtype="float64"):
    return ModelSpec(
        inputs=2,
        layers=[
            # Row o holds the weights into unit o: h1 = w1 i1 + w2 i2 + b1, h2 = w3 i1 + w4 i2 + b1.
            LayerSpec(2, "sigmoid", weights=[[0.15, 0.20], [0.25, 0.30]], bias=[0.35, 0.35], freeze_bias=True),
            LayerSpec(2, "sigmoid", weights=[[0.40, 0.45], [0.50, 0.55]], bias=[0.60, 0.60], freeze_bias=True),
        ],
        loss="half_sse", dtype=dtype)


def test_error_before_training():
    # net_h1 = 0.15*0.05 + 0.20*0.10 + 0.35 = 0.3775      out_h1 = 1/(1+e^-0.3775) = 0.593269992
    # net_h2 = 0.25*0.05 + 0.30*0.10 + 0.35 = 0.3925      out_h2 = 0.596884378
    # net_o1 = 0.40*0.593269992 + 0.45*0.596884378 + 0.60 = 1.105905967   out_o1 = 0.751365070
    # net_o2 = 0.50*0.593269992 + 0.55*0.596884378 + 0.60 = 1.224921404   out_o2 = 0.772928465
    # E = 1/2 (0.01 - 0.751365070)^2 + 1/2 (0.99 - 0.772928465)^2 = 0.274811083 + 0.023560026
    #   = 0.298371109
    m = model()
    out = engine.predict(m, engine.init.initial_weights(m), X)
    np.testing.assert_allclose(out, [[0.751365070, 0.772928465]], atol=1e-9)
    assert engine.evaluate(m, engine.init.initial_weights(m), X, Y)["loss"] == pytest.approx(0.298371109, abs=1e-9)


def test_first_update():
    # Output layer: delta_o = (out - target) * out (1 - out)
    #   delta_o1 = (0.751365070 - 0.01) * 0.751365070 * 0.248634930 = 0.138498562
    #   delta_o2 = (0.772928465 - 0.99) * 0.772928465 * 0.227071535 = -0.038098236
    # dE/dw5 = delta_o1 * out_h1 = 0.082167041  -> w5 = 0.40 - 0.5 * 0.082167041 = 0.358916480
    # dE/dw6 = delta_o1 * out_h2 = 0.082667628  -> w6 = 0.45 - 0.5 * 0.082667628 = 0.408666186
    # dE/dw7 = delta_o2 * out_h1 = -0.022602540 -> w7 = 0.511301270
    # dE/dw8 = delta_o2 * out_h2 = -0.022740242 -> w8 = 0.561370121
    # Hidden layer (with the original w5..w8):
    #   delta_h1 = (0.138498562*0.40 - 0.038098236*0.50) * out_h1 (1 - out_h1) = 0.036350306 * 0.241300709
    #            = 0.008771354;  dE/dw1 = delta_h1 * i1 = 0.000438568 -> w1 = 0.149780716
    #                            dE/dw2 = delta_h1 * i2 = 0.000877135 -> w2 = 0.199561432
    #   delta_h2 = (0.138498562*0.45 - 0.038098236*0.55) * out_h2 (1 - out_h2) = 0.041370323 * 0.240613417
    #            = 0.009954254;  w3 = 0.25 - 0.5 * 0.000497713 = 0.249751144
    #                            w4 = 0.30 - 0.5 * 0.000995425 = 0.299502287
    # Forward again with the new weights:
    #   out_h1 = sigma(0.149780716*0.05 + 0.199561432*0.10 + 0.35) = sigma(0.377445179) = 0.593256764
    #   out_h2 = sigma(0.249751144*0.05 + 0.299502287*0.10 + 0.35) = sigma(0.392437786) = 0.596869409
    #   out_o1 = sigma(0.358916480*0.593256764 + 0.408666186*0.596869409 + 0.60) = sigma(1.056849974) = 0.742088111
    #   out_o2 = sigma(0.511301270*0.593256764 + 0.561370121*0.596869409 + 0.60) = sigma(1.238397589) = 0.775284968
    #   E = 1/2 (0.01 - 0.742088111)^2 + 1/2 (0.99 - 0.775284968)^2 = 0.267976501 + 0.023051272
    #     = 0.291027774
    # (The often-quoted 0.291027924 carries the rounding of 9-digit intermediates.)
    result = engine.train(model(), OptimizerSpec(learning_rate=0.5), TrainConfig(epochs=1, batch_size=0), X, Y)
    (w_h, b_h), (w_o, b_o) = result.weights
    np.testing.assert_allclose(w_o, [[0.358916480, 0.408666186], [0.511301270, 0.561370121]], atol=1e-9)
    np.testing.assert_allclose(w_h, [[0.149780716, 0.199561432], [0.249751144, 0.299502287]], atol=1e-9)
    np.testing.assert_array_equal(b_h, [0.35, 0.35])   # frozen
    np.testing.assert_array_equal(b_o, [0.60, 0.60])
    assert result.history[0].train_loss == pytest.approx(0.298371109, abs=1e-9)  # the forward pass before it
    assert result.final["train_loss"] == pytest.approx(0.291027774, abs=1e-9)


def test_after_ten_thousand_updates():
    # Repeating the update above 10,000 times (the same arithmetic, iterated; the NumPy
    # reference in reference.py agrees to 1e-12) drives the error to 0.0000351019, with
    # outputs 0.015913620 and 0.984064274 (the quoted 0.0000351085 again carries rounding).
    result = engine.train(model(), OptimizerSpec(learning_rate=0.5), TrainConfig(epochs=10_000, batch_size=0), X, Y)
    assert result.final["train_loss"] == pytest.approx(3.51019e-05, abs=1e-9)
    out = engine.predict(model(), result.weights, X)
    np.testing.assert_allclose(out, [[0.015913620, 0.984064274]], atol=1e-8)


def test_reference_agrees_after_ten_thousand_updates():
    from reference import loss, forward, sgd_train
    m = model()
    w, _ = sgd_train(engine.init.initial_weights(m), np.array(X), np.array(Y), ["sigmoid", "sigmoid"],
                     "half_sse", 0.5, 10_000, freeze_bias=True)
    assert loss(forward(w, X, ["sigmoid", "sigmoid"])[-1], np.array(Y), "half_sse") == pytest.approx(3.51019e-05, abs=1e-9)


def test_float32_close_to_float64():
    result = engine.train(model("float32"), OptimizerSpec(learning_rate=0.5), TrainConfig(epochs=1000, batch_size=0), X, Y)
    exact = engine.train(model(), OptimizerSpec(learning_rate=0.5), TrainConfig(epochs=1000, batch_size=0), X, Y)
    assert result.final["train_loss"] == pytest.approx(exact.final["train_loss"], rel=1e-4)
