"""A plain NumPy float64 reference of the engine's maths: slow, obvious, for tests only.

Legend: B = rows, I = inputs, O = outputs. Weights are W (O, I), b (O,), as in the engine.
"""

import numpy as np


def act_forward(z, name, slope=0.01):
    if name == "identity":
        return z.copy()
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, slope * z)
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise KeyError(name)


def act_backward(g, a, name, slope=0.01):
    """dL/dz from dL/da and the activation's output a."""
    if name == "identity":
        return g.copy()
    if name == "sigmoid":
        return g * a * (1 - a)
    if name == "tanh":
        return g * (1 - a * a)
    if name == "relu":
        return g * (a > 0)
    if name == "leaky_relu":
        return g * np.where(a > 0, 1.0, slope)
    if name == "softmax":
        return a * (g - (g * a).sum(axis=1, keepdims=True))
    raise KeyError(name)


def loss(a, y, name):
    b, o = a.shape
    if name == "half_sse":
        return 0.5 * ((a - y) ** 2).sum() / b
    if name == "mse":
        return ((a - y) ** 2).sum() / (b * o)
    if name == "binary_cross_entropy":
        return -(y * np.log(a) + (1 - y) * np.log(1 - a)).sum() / (b * o)
    if name == "softmax_cross_entropy":
        return -(y * np.log(a)).sum() / b
    raise KeyError(name)


def loss_grad(a, y, name):
    """dL/da (dL/dz for the fused cross-entropies)."""
    b, o = a.shape
    if name == "half_sse":
        return (a - y) / b
    if name == "mse":
        return 2 * (a - y) / (b * o)
    if name == "binary_cross_entropy":
        return (a - y) / (b * o)
    if name == "softmax_cross_entropy":
        return (a * y.sum(axis=1, keepdims=True) - y) / b
    raise KeyError(name)


FUSED = ("binary_cross_entropy", "softmax_cross_entropy")


def forward(weights, x, acts, slopes=None):
    """Activations of every layer: [a_0 (B, O_0), ..., a_L-1]."""
    out = []
    a = np.asarray(x, dtype=np.float64)
    for l, ((w, b), name) in enumerate(zip(weights, acts)):
        a = act_forward(a @ np.asarray(w, np.float64).T + b, name, (slopes or {}).get(l, 0.01))
        out.append(a)
    return out


def gradients(weights, x, y, acts, loss_name, slopes=None):
    """(loss, [(dW, db), ...]) of the batch mean loss."""
    slopes = slopes or {}
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    outs = forward(weights, x, acts, slopes)
    value = loss(outs[-1], y, loss_name)
    g = loss_grad(outs[-1], y, loss_name)
    if loss_name not in FUSED:
        g = act_backward(g, outs[-1], acts[-1], slopes.get(len(acts) - 1, 0.01))
    grads = [None] * len(weights)
    for l in range(len(weights) - 1, -1, -1):
        inp = x if l == 0 else outs[l - 1]
        grads[l] = (g.T @ inp, g.sum(axis=0))
        if l > 0:
            g = act_backward(g @ np.asarray(weights[l][0], np.float64), outs[l - 1], acts[l - 1],
                             slopes.get(l - 1, 0.01))
    return value, grads


def sgd_train(weights, x, y, acts, loss_name, lr, epochs, batch=None, freeze_bias=False):
    """Plain SGD in row order (no shuffling); returns the new weights and the loss per epoch."""
    w = [(np.array(a, np.float64), np.array(b, np.float64)) for a, b in weights]
    n = len(x)
    batch = n if batch is None else batch
    history = []
    for _ in range(epochs):
        losses = []
        for s in range(0, n, batch):
            value, grads = gradients(w, x[s:s + batch], y[s:s + batch], acts, loss_name)
            losses.append(value)
            w = [(wl - lr * gw, bl if freeze_bias else bl - lr * gb) for (wl, bl), (gw, gb) in zip(w, grads)]
        history.append(np.mean(losses))
    return w, history


# Optimizer hyper-parameters the optimizer tests set, and the rules they are checked against.
MU, B1, B2, RHO, EPS = 0.9, 0.8, 0.95, 0.7, 1e-6


def optimizer_steps(kind, w, grads, lr, wd):
    """PyTorch's update rules in NumPy: w after one update per gradient in `grads` (t counts
    the updates; hyper-parameters MU, B1, B2, RHO, EPS as the optimizer tests set them)."""
    w = w.copy()
    v, m, s = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        if kind == "adamw":
            w = w * (1 - lr * wd)
        else:
            g = g + wd * w
        if kind == "sgd":
            w = w - lr * g
        elif kind in ("momentum", "nesterov"):
            v = MU * v + g
            w = w - lr * (g + MU * v if kind == "nesterov" else v)
        elif kind in ("adam", "adamw"):
            m = B1 * m + (1 - B1) * g
            s = B2 * s + (1 - B2) * g * g
            w = w - lr / (1 - B1 ** t) * m / (np.sqrt(s) / np.sqrt(1 - B2 ** t) + EPS)
        elif kind == "rmsprop":
            s = RHO * s + (1 - RHO) * g * g
            w = w - lr * g / (np.sqrt(s) + EPS)
    return w


def masked_gradients(weights, x, y, acts, loss_name, masks, w=None):
    """(loss, [(dW, db), ...]) with inverted-dropout masks and row weights.

    masks: {layer: (B, O_l) array} multiplied into that hidden layer's output; w: (B,) row
    weights, the loss being sum_r w_r l_r / sum_r w_r with l_r the loss of row r alone.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    b = len(x)
    w = np.ones(b) if w is None else np.asarray(w, np.float64)
    outs, inputs = [], []
    a = x
    for l, ((wl, bl), name) in enumerate(zip(weights, acts)):
        inputs.append(a)
        out = act_forward(a @ np.asarray(wl, np.float64).T + bl, name)
        outs.append(out)
        a = out * masks[l] if l in masks else out
    rows = [loss(outs[-1][r:r + 1], y[r:r + 1], loss_name) for r in range(b)]
    value = float(np.dot(w, rows) / w.sum())
    # The gradient of each row's own loss (as a batch of one), weighted by w_r / sum w.
    g = loss_grad(outs[-1], y, loss_name) * b * (w / w.sum())[:, None]
    if loss_name not in FUSED:
        g = act_backward(g, outs[-1], acts[-1])
    grads = [None] * len(weights)
    for l in range(len(weights) - 1, -1, -1):
        grads[l] = (g.T @ inputs[l], g.sum(axis=0))
        if l > 0:
            g = g @ np.asarray(weights[l][0], np.float64)
            if l - 1 in masks:
                g = g * masks[l - 1]
            g = act_backward(g, outs[l - 1], acts[l - 1])
    return value, grads
