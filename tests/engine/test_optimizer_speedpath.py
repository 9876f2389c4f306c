"""The BLAS step's optimizer updates, fused per layer into the backward pass (kernels/update.py).

- bit for bit the step as it was before the fusion: every gradient first, then apply_update's
  serial loop (composed here from the same compiled kernels), for every optimizer with and
  without weight decay and clipping, float32 and float64, one and two threads;
- a NumPy reference of the whole training (forward, backward, PyTorch's update rules);
- central differences: the gradient each optimizer's first update used, recovered from the
  update, is the loss's gradient;
- resume, and (in a fresh process with a pool of 4 Numba threads) thread counts 1 to 4 at the
  comparison's large shapes, train_many included.

Run as a script, this file prints the thread runs' {case: weights sha256} as JSON.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

import fusetrain.engine as engine
from fusetrain.engine import LayerSpec, ModelSpec, OptimizerSpec, TrainConfig
from fusetrain.engine.spec import Limits

STATEFUL = ["momentum", "nesterov", "adam", "adamw", "rmsprop"]
MU, B1, B2, RHO = 0.9, 0.8, 0.95, 0.7


def spec(kind, lr=None, decay=0.0, clip=0.0, eps=1e-8):
    if lr is None:
        lr = 0.01 if kind in ("sgd", "momentum", "nesterov") else 1e-3
    return OptimizerSpec(kind=kind, learning_rate=lr, momentum=MU, beta1=B1, beta2=B2, rho=RHO, epsilon=eps,
                         weight_decay=decay, clip_norm=clip)


def classes(rows, inputs, outs=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((rows, inputs)), np.eye(outs)[rng.integers(0, outs, rows)]


def mlp(inputs, hidden, dtype="float64", seed=5, freeze=False, outs=10):
    layers = [LayerSpec(u, "relu" if i % 2 == 0 else "tanh", freeze_bias=freeze and i == 0,
                        freeze_weights=freeze and i == 1) for i, u in enumerate(hidden)]
    return ModelSpec(inputs=inputs, layers=layers + [LayerSpec(outs, "softmax")], loss="softmax_cross_entropy",
                     initializer="he_uniform", seed=seed, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Bit for bit: the fused step against every gradient first, then apply_update's serial loop.

def _serial_step(x, y, rows, buf, layout, lr, iscr, fscr, spread):
    """train_step_update as it was before the fusion, from the same compiled kernels."""
    from fusetrain.engine.kernels.activations import activation_backward
    from fusetrain.engine.kernels.columns import (I_FUSED, I_LOSS, I_OPT, M_ACT, M_B, M_BLAS, M_FREEZE_B,
                                                  M_FREEZE_W, M_IN, M_OUT, M_W)
    from fusetrain.engine.kernels.dense import dense_backward_bias, dense_backward_input, dense_backward_weights
    from fusetrain.engine.kernels.epochs import forward
    from fusetrain.engine.kernels.losses import loss_forward_backward
    from fusetrain.engine.kernels.small import apply_update

    meta, a_off, acts, deltas = layout.meta, buf.a_off, buf.acts, buf.deltas
    last = meta.shape[0] - 1
    forward(x, 0, rows, buf.theta, acts, a_off, meta, layout.slopes, iscr, fscr, spread)
    loss_forward_backward(acts, a_off[last], y, 0, deltas, a_off[last], rows, meta[last, M_OUT], buf.ints[I_LOSS])
    if buf.ints[I_FUSED] == 0:
        activation_backward(deltas, a_off[last], acts, a_off[last], rows, meta[last, M_OUT], meta[last, M_ACT],
                            layout.slopes[last])
    for l in range(last, -1, -1):
        n_in, n_o, use_blas = meta[l, M_IN], meta[l, M_OUT], meta[l, M_BLAS] != 0
        src, s_off = (x, 0) if l == 0 else (acts, a_off[l - 1])
        if l > 0:
            dense_backward_input(deltas, a_off[l], rows, n_o, buf.theta, meta[l, M_W], n_in, deltas, a_off[l - 1],
                                 use_blas, iscr, fscr, spread)
            activation_backward(deltas, a_off[l - 1], acts, a_off[l - 1], rows, n_in, meta[l - 1, M_ACT],
                                layout.slopes[l - 1])
        if meta[l, M_FREEZE_W] == 0:
            dense_backward_weights(deltas, a_off[l], rows, n_o, src, s_off, n_in, 1.0, 0.0, buf.grad,
                                   meta[l, M_W], use_blas, iscr, fscr, spread)
        if meta[l, M_FREEZE_B] == 0:
            dense_backward_bias(deltas, a_off[l], rows, n_o, 1.0, 0.0, buf.grad, meta[l, M_B])
    apply_update(buf.theta, buf.grad, buf.opt, buf.step, meta, buf.hp, lr, buf.ints[I_OPT])


def _steps(model, opt, x, y, batch, fused, threads):
    """theta, optimizer state and step after one pass of batches in row order."""
    from fusetrain.engine.buffers import JobBuffers, accuracy_rule
    from fusetrain.engine.init import initial_weights
    from fusetrain.engine.kernels.blas import MAX_BLOCKS
    from fusetrain.engine.kernels.epochs import train_step_update
    from fusetrain.engine.layout import Layout

    dtype = np.dtype(model.dtype)
    layout = Layout.of(model)
    assert not layout.small
    buf = JobBuffers(model, opt, TrainConfig(batch_size=batch, shuffle=False), layout,
                     layout.pack(initial_weights(model), dtype), len(x), accuracy_rule(model.loss, y), None)
    iscr, fscr = np.zeros((MAX_BLOCKS, 8), np.int32), np.zeros((MAX_BLOCKS, 2), dtype)
    xf, yf = x.astype(dtype).reshape(-1), y.astype(dtype).reshape(-1)
    n_in, n_out = x.shape[1], y.shape[1]
    with engine.config.threads(threads):
        for start in range(0, len(x), batch):
            rows = min(batch, len(x) - start)
            xb, yb = xf[start * n_in:(start + rows) * n_in], yf[start * n_out:(start + rows) * n_out]
            if fused:
                train_step_update(xb, 0, yb, 0, rows, buf.theta, buf.grad, buf.opt, buf.step, buf.acts, buf.deltas,
                                  buf.a_off, layout.meta, layout.slopes, buf.hp, 0.02, buf.ints, iscr, fscr, True)
            else:
                _serial_step(xb, yb, rows, buf, layout, 0.02, iscr, fscr, True)
    return buf.theta, buf.opt, int(buf.step[0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["sgd"] + STATEFUL)
@pytest.mark.parametrize("decay,clip", [(0.0, 0.0), (0.01, 0.0), (0.0, 0.05), (0.01, 1e9)])
def test_fused_update_equals_the_serial_update_bit_for_bit(kind, decay, clip, dtype):
    if kind == "sgd" and clip == 0.0:
        pytest.skip("plain SGD without clipping folds its update into the GEMM (train_step_fold)")
    # 300 inputs x 256 units: two update blocks and two GEMM slabs; a short last batch; the
    # last layer in hand loops (128 x 1 multiply-adds per row is not BLAS).
    x, y = classes(200, 300, outs=1)
    y = (x[:, :1] > 0.5).astype(float)
    model = ModelSpec(inputs=300, layers=[LayerSpec(256, "relu"), LayerSpec(128, "tanh"), LayerSpec(1, "sigmoid")],
                      loss="binary_cross_entropy", initializer="he_uniform", seed=3, dtype=dtype)
    opt = spec(kind, decay=decay, clip=clip)
    want = _steps(model, opt, x, y, 64, False, 1)
    assert want[2] == 4
    for threads in (1, 2):
        got = _steps(model, opt, x, y, 64, True, threads)
        np.testing.assert_array_equal(got[0], want[0], err_msg=f"theta, {threads} thread(s)")
        np.testing.assert_array_equal(got[1], want[1], err_msg=f"optimizer state, {threads} thread(s)")
        assert got[2] == want[2]


# ---------------------------------------------------------------------------------------------
# A NumPy reference of the whole training: forward and backward (reference.py), PyTorch's rules.

class NumpyOptimizer:
    """PyTorch's update rules on [(W, b), ...]; weight decay on W only (as the engine)."""

    def __init__(self, kind, lr, decay, eps, weights):
        self.kind, self.lr, self.decay, self.eps, self.t = kind, lr, decay, eps, 0
        self.m = [[np.zeros_like(a) for a in pair] for pair in weights]
        self.s = [[np.zeros_like(a) for a in pair] for pair in weights]

    def step(self, weights, grads):
        self.t += 1
        out = []
        for l, (pair, gpair) in enumerate(zip(weights, grads)):
            new = []
            for j, (w, g) in enumerate(zip(pair, gpair)):
                wd = self.decay if j == 0 else 0.0
                if self.kind == "adamw":
                    w = w * (1 - self.lr * wd)
                else:
                    g = g + wd * w
                m, s = self.m[l][j], self.s[l][j]
                if self.kind in ("momentum", "nesterov"):
                    m[:] = MU * m + g
                    w = w - self.lr * (g + MU * m if self.kind == "nesterov" else m)
                elif self.kind in ("adam", "adamw"):
                    m[:] = B1 * m + (1 - B1) * g
                    s[:] = B2 * s + (1 - B2) * g * g
                    w = w - self.lr / (1 - B1 ** self.t) * m / (np.sqrt(s) / np.sqrt(1 - B2 ** self.t) + self.eps)
                elif self.kind == "rmsprop":
                    s[:] = RHO * s + (1 - RHO) * g * g
                    w = w - self.lr * g / (np.sqrt(s) + self.eps)
                new.append(w)
            out.append(tuple(new))
        return out


@pytest.mark.parametrize("kind", STATEFUL)
@pytest.mark.parametrize("decay", [0.0, 0.05])
def test_training_matches_a_numpy_reference(kind, decay):
    from reference import gradients

    x, y = classes(48, 70, outs=4, seed=2)
    model = ModelSpec(inputs=70, layers=[LayerSpec(40, "tanh"), LayerSpec(24, "relu"), LayerSpec(4, "softmax")],
                      loss="softmax_cross_entropy", initializer="glorot_uniform", seed=8, dtype="float64")
    opt = spec(kind, lr=0.05 if kind in ("momentum", "nesterov") else 0.01, decay=decay)
    got = engine.train(model, opt, TrainConfig(epochs=5, batch_size=16, shuffle=False, threads=2), x, y).weights
    weights = engine.init.initial_weights(model)
    ref = NumpyOptimizer(kind, opt.learning_rate, decay, opt.epsilon, weights)
    for _ in range(5):
        for start in range(0, 48, 16):
            _, grads = gradients(weights, x[start:start + 16], y[start:start + 16], ["tanh", "relu", "softmax"],
                                 "softmax_cross_entropy")
            weights = ref.step(weights, grads)
    for (gw, gb), (rw, rb) in zip(got, weights):
        np.testing.assert_allclose(gw, rw, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gb, rb, rtol=1e-10, atol=1e-12)
    assert not np.allclose(got[0][0], engine.init.initial_weights(model)[0][0])


# ---------------------------------------------------------------------------------------------
# Central differences: the first update of each optimizer used the loss's gradient.

def _gradient_from_first_update(kind, w0, w1, lr, decay, eps):
    """The gradient g of one first update w0 -> w1 (full batch), solved from the update rule."""
    if kind == "momentum":
        return (w0 - w1) / lr - decay * w0
    if kind == "nesterov":
        return (w0 - w1) / (lr * (1 + MU)) - decay * w0
    if kind in ("adam", "adamw"):      # w1 = shrink w0 - lr g / (|g| + eps)
        d = (w0 * (1 - lr * decay if kind == "adamw" else 1.0) - w1) / lr
        return eps * d / (1 - np.abs(d))
    if kind == "rmsprop":              # w1 = w0 - lr g / (sqrt(1 - rho) |g| + eps)
        d = (w0 - w1) / lr
        return eps * d / (1 - np.sqrt(1 - RHO) * np.abs(d))
    raise ValueError(kind)


@pytest.mark.parametrize("kind", STATEFUL)
@pytest.mark.parametrize("clip", [0.0, 1e9])
def test_first_update_uses_the_central_difference_gradient(kind, clip):
    # 20 x 16 takes BLAS, 16 x 3 hand loops: both kinds of layer in the BLAS step.
    x, y = classes(12, 20, outs=3, seed=6)
    model = ModelSpec(inputs=20, layers=[LayerSpec(16, "tanh"), LayerSpec(3, "softmax")],
                      loss="softmax_cross_entropy", initializer="normal", init_scale=0.7, seed=1, dtype="float64")
    lr, decay, eps = 0.1, (0.02 if kind == "adamw" else 0.0), 1.0
    w0 = engine.init.initial_weights(model)
    res = engine.train(model, spec(kind, lr=lr, decay=decay, clip=clip, eps=eps),
                       TrainConfig(epochs=1, batch_size=0, shuffle=False, threads=2), x, y)
    assert res.state.step == 1
    h = 1e-6
    num, ana = [], []
    for l, (pair0, pair1) in enumerate(zip(w0, res.weights)):
        for j, (a0, a1) in enumerate(zip(pair0, pair1)):
            ana.extend(_gradient_from_first_update(kind, a0, a1, lr, decay if j == 0 else 0.0, eps).reshape(-1))
            probe = [[p.copy() for p in pair] for pair in w0]
            flat = probe[l][j].reshape(-1)
            for i in range(flat.size):
                keep = flat[i]
                flat[i] = keep + h
                up = engine.evaluate(model, probe, x, y)["loss"]
                flat[i] = keep - h
                down = engine.evaluate(model, probe, x, y)["loss"]
                flat[i] = keep
                num.append((up - down) / (2 * h))
    num, ana = np.array(num), np.array(ana)
    rel = np.linalg.norm(num - ana) / (np.linalg.norm(num) + np.linalg.norm(ana))
    assert rel < 1e-6, f"relative error {rel:.3g}"


# ---------------------------------------------------------------------------------------------
# Resume.

@pytest.mark.parametrize("kind,decay,clip", [(k, 0.01, 0.0) for k in STATEFUL] + [("adam", 0.0, 0.5),
                                                                                 ("sgd", 0.01, 0.5)])
def test_resume_is_bit_identical(kind, decay, clip):
    x, y = classes(300, 300)
    model = mlp(300, (256, 64), dtype="float32")
    opt = spec(kind, decay=decay, clip=clip)
    conf = TrainConfig(epochs=3, batch_size=64, seed=4, threads=2)
    full = engine.train(model, opt, conf, x, y)
    first = engine.train(model, opt, TrainConfig(epochs=3, batch_size=64, seed=4, threads=2), x, y,
                         callback=lambda m: m.epoch == 1)
    assert first.epochs_run == 1
    rest = engine.train(model, opt, TrainConfig(epochs=3, batch_size=64, seed=4, threads=1), x, y,
                        state=first.state)
    assert rest.epochs_run == 3 and rest.state.step == full.state.step
    for (fw, fb), (rw, rb) in zip(full.weights, rest.weights):
        np.testing.assert_array_equal(fw, rw)
        np.testing.assert_array_equal(fb, rb)
    np.testing.assert_array_equal(full.state.opt_state, rest.state.opt_state)


# ---------------------------------------------------------------------------------------------
# Thread counts 1 to 4 and train_many, in a fresh process with a pool of 4 Numba threads.

THREADS = (1, 2, 3, 4)
SHAPES = {"784-512-256-10": (512, 256), "784-2048-10": (2048,)}
CASES = {f"{kind}": spec(kind) for kind in STATEFUL}
CASES.update({"adam wd clip": spec("adam", decay=0.01, clip=0.5), "adamw wd": spec("adamw", decay=0.01),
              "sgd clip": spec("sgd", clip=0.5)})
ROWS = 300  # batches of 128 and a short one of 44


def _sha(weights, state) -> str:
    h = hashlib.sha256()
    for w, b in weights:
        h.update(np.ascontiguousarray(w).tobytes())
        h.update(np.ascontiguousarray(b).tobytes())
    h.update(state.tobytes())
    return h.hexdigest()


def thread_runs() -> dict:
    limits = Limits(max_threads=max(THREADS))
    x, y = classes(ROWS, 784)
    out = {"_threads": numba.config.NUMBA_NUM_THREADS}
    for name, hidden in SHAPES.items():
        for dtype in ("float32", "float64"):
            for case, opt in CASES.items():
                if dtype == "float64" and case not in ("adam", "momentum"):
                    continue
                for t in THREADS:
                    r = engine.train(mlp(784, hidden, dtype), opt, TrainConfig(epochs=1, batch_size=128, seed=3,
                                                                              threads=t), x, y, limits=limits)
                    out[f"train {name} {dtype} {case} t{t}"] = _sha(r.weights, r.state.opt_state)
    model = mlp(784, (512, 256), "float32")
    opts = [CASES["adam"], CASES["rmsprop"], CASES["adam wd clip"]]
    conf = TrainConfig(epochs=1, batch_size=128, seed=3)
    for t in THREADS:
        for i, r in enumerate(engine.train_many(model, opts, [conf], x, y, seeds=[1, 2, 3], threads=t,
                                                limits=limits)):
            out[f"many {i} t{t}"] = _sha(r.weights, r.state.opt_state)
    for i, (opt, seed) in enumerate(zip(opts, [1, 2, 3])):
        alone = engine.train(mlp(784, (512, 256), "float32", seed=seed), opt, conf, x, y)
        out[f"many {i} alone"] = _sha(alone.weights, alone.state.opt_state)
    return out


@pytest.fixture(scope="module")
def runs() -> dict:
    env = dict(os.environ, NUMBA_NUM_THREADS=str(max(THREADS)))
    out = subprocess.run([sys.executable, str(Path(__file__))], env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = json.loads(out.stdout)
    assert runs.pop("_threads") == max(THREADS)
    return runs


def _groups(runs: dict, prefix: str) -> dict:
    groups: dict = {}
    for key, sha in runs.items():
        if key.startswith(prefix):
            case, last = key.rsplit(" ", 1)
            groups.setdefault(case, {})[last] = sha
    return groups


@pytest.mark.parametrize("shape", list(SHAPES))
def test_thread_count_does_not_change_fused_updates(runs, shape):
    groups = _groups(runs, f"train {shape} ")
    assert len(groups) == len(CASES) + 2
    for case, shas in groups.items():
        assert set(shas) == {f"t{t}" for t in THREADS}
        assert len(set(shas.values())) == 1, f"{case}: {shas}"


def test_batch_of_models_with_optimizer_state_matches_single_runs(runs):
    groups = _groups(runs, "many ")
    assert len(groups) == 3
    for case, shas in groups.items():
        assert set(shas) == {"alone"} | {f"t{t}" for t in THREADS}
        assert len(set(shas.values())) == 1, f"{case}: {shas}"


if __name__ == "__main__":
    json.dump(thread_runs(), sys.stdout)
