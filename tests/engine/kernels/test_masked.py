"""The masked step (dropout and row weights): against the NumPy reference and central differences."""

import numpy as np
import pytest

from fusetrain.engine import LayerSpec, ModelSpec, OptimizerSpec, TrainConfig
from fusetrain.engine.buffers import JobBuffers, MaskedRun, accuracy_rule
from fusetrain.engine.init import initial_weights
from fusetrain.engine.kernels.blas import MAX_BLOCKS
from fusetrain.engine.kernels.masked import draw_masks, masked_gradients, weighted_metrics
from fusetrain.engine.kernels.rng import seed_state
from fusetrain.engine.layout import Layout
from fusetrain.engine.registry import LOSSES
from reference import forward, loss, masked_gradients as reference_gradients

# (hidden activations, output activation, loss); the 20-16 and 16-9 layers run BLAS, the rest loops.
CASES = [(("tanh", "sigmoid"), "softmax", "softmax_cross_entropy"),
         (("relu", "leaky_relu"), "sigmoid", "binary_cross_entropy"),
         (("sigmoid", "tanh"), "identity", "half_sse"),
         (("tanh", "relu"), "sigmoid", "mse")]
ROWS, INPUTS, UNITS, OUTS = 11, 20, (16, 9), 3


def problem(hidden, out, loss_name, dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS, INPUTS))
    if loss_name in ("softmax_cross_entropy",):
        y = np.eye(OUTS)[rng.integers(0, OUTS, ROWS)]
    elif loss_name == "binary_cross_entropy":
        y = rng.integers(0, 2, size=(ROWS, OUTS)).astype(float)
    else:
        y = rng.normal(size=(ROWS, OUTS))
    layers = [LayerSpec(u, a, dropout=p) for u, a, p in zip(UNITS, hidden, (0.3, 0.5))] + [LayerSpec(OUTS, out)]
    model = ModelSpec(inputs=INPUTS, layers=layers, loss=loss_name, initializer="normal", init_scale=0.5,
                      seed=seed, dtype=dtype)
    return model, x, y, rng.uniform(0.0, 3.0, ROWS)


class Step:
    """The buffers of one batch of ROWS rows, and masks drawn once from a seeded generator."""

    def __init__(self, model, x, y, w):
        self.model, self.layout = model, Layout.of(model)
        dtype = np.dtype(model.dtype)
        self.theta = self.layout.pack(initial_weights(model), dtype)
        self.buf = JobBuffers(model, OptimizerSpec(), TrainConfig(batch_size=0), self.layout, self.theta.copy(),
                              ROWS, accuracy_rule(model.loss, y), None)
        self.run = MaskedRun(model, self.layout, ROWS, w)
        draw_masks(seed_state(5), self.run.masks, self.buf.a_off, ROWS, self.layout.meta, self.run.rates)
        self.x, self.y = x.astype(dtype).reshape(-1), y.astype(dtype).reshape(-1)
        self.iscr = np.empty((MAX_BLOCKS, 8), np.int32)
        self.fscr = np.empty((MAX_BLOCKS, 2), dtype)

    def masks(self) -> dict:
        """{hidden layer: its (ROWS, units) mask}."""
        out = {}
        for l, units in enumerate(UNITS):
            off = self.buf.a_off[l]
            out[l] = self.run.masks[off:off + ROWS * units].reshape(ROWS, units).astype(np.float64)
        return out

    def __call__(self, theta):
        """(batch loss, grad (P,)) of the kernel at theta, with the fixed masks."""
        grad = np.zeros_like(theta)
        b, r = self.buf, self.run
        value, weight, _ = masked_gradients(self.x, 0, self.y, 0, r.w, 0, ROWS, theta, grad, b.acts, b.deltas,
                                            r.masks, r.dropped, b.a_off, self.layout.meta, self.layout.slopes,
                                            r.rates, b.ints, self.iscr, self.fscr, False)
        return value / weight, grad


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("hidden,out,loss_name", CASES)
def test_masked_gradients_match_the_reference(hidden, out, loss_name, weighted):
    model, x, y, w = problem(hidden, out, loss_name)
    step = Step(model, x, y, w if weighted else None)
    value, grad = step(step.theta.copy())
    acts = [layer.activation for layer in model.layers]
    ref_value, ref_grads = reference_gradients(step.layout.unpack(step.theta), x, y, acts, loss_name,
                                               step.masks(), w if weighted else None)
    assert value == pytest.approx(ref_value, rel=1e-12)
    for (gw, gb), (rw, rb) in zip(step.layout.unpack(grad), ref_grads):
        np.testing.assert_allclose(gw, rw, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(gb, rb, rtol=1e-10, atol=1e-13)


# Smooth activations only: a dropped-out row can leave a ReLU unit's input at exactly 0 (zero
# initial biases), a kink where central differences average the two slopes.
@pytest.mark.parametrize("hidden,out,loss_name", [CASES[0], CASES[2]])
def test_masked_gradients_match_central_differences(hidden, out, loss_name):
    model, x, y, w = problem(hidden, out, loss_name, seed=1)
    step = Step(model, x, y, w)
    theta = step.theta.copy()
    _, grad = step(theta)
    h = 1e-6
    num = np.empty_like(theta)
    for i in range(theta.size):
        keep = theta[i]
        theta[i] = keep + h
        up = step(theta)[0]
        theta[i] = keep - h
        down = step(theta)[0]
        theta[i] = keep
        num[i] = (up - down) / (2 * h)
    rel = np.linalg.norm(num - grad) / (np.linalg.norm(num) + np.linalg.norm(grad))
    assert rel < 1e-7


def test_the_masks_drop_the_rate_and_scale_the_rest():
    model, x, y, w = problem(*CASES[0])
    step = Step(model, x, y, None)
    big = np.zeros(200_000)
    draw_masks(seed_state(9), big, np.array([0]), 200_000, np.array([[1, 1, 0, 0, 0, 0, 0, 0]]), np.array([0.3]))
    assert set(np.unique(big)) == {0.0, 1 / 0.7}
    assert abs((big == 0).mean() - 0.3) < 0.005
    for l, p in zip(range(2), (0.3, 0.5)):
        assert set(np.unique(step.masks()[l])) <= {0.0, 1 / (1 - p)}
    # The same generator state draws the same masks; another draws others.
    again = np.zeros(200_000)
    draw_masks(seed_state(9), again, np.array([0]), 200_000, np.array([[1, 1, 0, 0, 0, 0, 0, 0]]), np.array([0.3]))
    np.testing.assert_array_equal(big, again)
    draw_masks(seed_state(10), again, np.array([0]), 200_000, np.array([[1, 1, 0, 0, 0, 0, 0, 0]]), np.array([0.3]))
    assert not np.array_equal(big, again)


@pytest.mark.parametrize("hidden,out,loss_name", CASES)
def test_weighted_metrics_are_weighted_averages(hidden, out, loss_name):
    model, x, y, w = problem(hidden, out, loss_name)
    weights = Layout.of(model).unpack(Layout.of(model).pack(initial_weights(model), np.float64))
    a = forward(weights, x, [layer.activation for layer in model.layers])[-1]
    rule = accuracy_rule(model.loss, y)
    value, hits, wsum = weighted_metrics(a.reshape(-1), y.reshape(-1), w, ROWS, OUTS, LOSSES[loss_name], rule)
    rows = [loss(a[r:r + 1], y[r:r + 1], loss_name) for r in range(ROWS)]
    assert value == pytest.approx(np.average(rows, weights=w), rel=1e-12)
    assert wsum == pytest.approx(w.sum())
    if rule == 1:   # argmax
        assert hits == pytest.approx(np.dot(w, a.argmax(1) == y.argmax(1)))
