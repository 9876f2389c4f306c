"""Optimizer updates over a flat range [start, end) of parameters.

theta (P,) parameters, grad (P,) gradients of the batch mean loss, state (S, P) the
optimizer's slots. `decay` is the L2 coefficient for this range (0 for biases).
Formulas follow PyTorch's optimizers (t = updates so far, counting this one):
    sgd       w -= lr (g + decay w)
    momentum  v = mu v + g';            w -= lr v                    (g' = g + decay w)
    nesterov  v = mu v + g';            w -= lr (g' + mu v)
    adam      m = b1 m + (1-b1) g';  s = b2 s + (1-b2) g'^2;  w -= lr/(1-b1^t) m / (sqrt(s/(1-b2^t)) + eps)
    adamw     as adam with g' = g, and first w -= lr decay w   (decoupled weight decay)
    rmsprop   s = rho s + (1-rho) g'^2; w -= lr g' / (sqrt(s) + eps)
"""

import numpy as np
from numba import njit

from ..config import JIT
from .blas import typed

SGD, MOMENTUM, NESTEROV, ADAM, ADAMW, RMSPROP = 0, 1, 2, 3, 4, 5

# Positions in the float64 hyper-parameter vector `hp` passed to the kernels.
HP_LR, HP_MOMENTUM, HP_BETA1, HP_BETA2, HP_RHO, HP_EPS, HP_DECAY, HP_CLIP = range(8)
HP_SIZE = 8


@njit(**JIT)
def optimizer_update(theta, grad, state, start, end, kind, lr, decay, hp, t):
    """Apply one update of optimizer `kind` to theta[start:end]."""
    # Views indexed from 0 let LLVM drop negative-index checks and vectorize.
    w = theta[start:end]
    g = grad[start:end]
    n = end - start
    lr_ = typed(theta, lr)
    wd = typed(theta, decay)
    one = typed(theta, 1.0)
    if kind == SGD:
        for i in range(n):
            w[i] -= lr_ * (g[i] + wd * w[i])
    elif kind == MOMENTUM or kind == NESTEROV:
        mu = typed(theta, hp[HP_MOMENTUM])
        v = state[0, start:end]
        if kind == NESTEROV:
            for i in range(n):
                gi = g[i] + wd * w[i]
                v[i] = mu * v[i] + gi
                w[i] -= lr_ * (gi + mu * v[i])
        else:
            for i in range(n):
                v[i] = mu * v[i] + g[i] + wd * w[i]
                w[i] -= lr_ * v[i]
    elif kind == ADAM or kind == ADAMW:
        b1 = hp[HP_BETA1]
        b2 = hp[HP_BETA2]
        c1 = typed(theta, b1)
        c2 = typed(theta, b2)
        step = typed(theta, lr / (1.0 - b1 ** t))
        inv_root_bc2 = typed(theta, 1.0 / np.sqrt(1.0 - b2 ** t))
        eps = typed(theta, hp[HP_EPS])
        m = state[0, start:end]
        s = state[1, start:end]
        # AdamW shrinks the weights itself; Adam adds the L2 term to the gradient.
        shrink = one - lr_ * wd if kind == ADAMW else one
        l2 = typed(theta, 0.0) if kind == ADAMW else wd
        for i in range(n):
            gi = g[i] + l2 * w[i]
            m[i] = c1 * m[i] + (one - c1) * gi
            s[i] = c2 * s[i] + (one - c2) * gi * gi
            w[i] = w[i] * shrink - step * m[i] / (np.sqrt(s[i]) * inv_root_bc2 + eps)
    elif kind == RMSPROP:
        rho = typed(theta, hp[HP_RHO])
        eps = typed(theta, hp[HP_EPS])
        s = state[0, start:end]
        for i in range(n):
            gi = g[i] + wd * w[i]
            s[i] = rho * s[i] + (one - rho) * gi * gi
            w[i] -= lr_ * gi / (np.sqrt(s[i]) + eps)
