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
    lr_ = typed(theta, lr)
    wd = typed(theta, decay)
    one = typed(theta, 1.0)
    if kind == SGD:
        for i in range(start, end):
            theta[i] -= lr_ * (grad[i] + wd * theta[i])
    elif kind == MOMENTUM or kind == NESTEROV:
        mu = typed(theta, hp[HP_MOMENTUM])
        v = state[0]
        for i in range(start, end):
            g = grad[i] + wd * theta[i]
            v[i] = mu * v[i] + g
            if kind == NESTEROV:
                theta[i] -= lr_ * (g + mu * v[i])
            else:
                theta[i] -= lr_ * v[i]
    elif kind == ADAM or kind == ADAMW:
        b1 = hp[HP_BETA1]
        b2 = hp[HP_BETA2]
        c1 = typed(theta, b1)
        c2 = typed(theta, b2)
        step = typed(theta, lr / (1.0 - b1 ** t))
        root_bc2 = typed(theta, np.sqrt(1.0 - b2 ** t))
        eps = typed(theta, hp[HP_EPS])
        m = state[0]
        s = state[1]
        decoupled = kind == ADAMW
        for i in range(start, end):
            g = grad[i]
            if decoupled:
                theta[i] = theta[i] * (one - lr_ * wd)
            else:
                g = g + wd * theta[i]
            m[i] = c1 * m[i] + (one - c1) * g
            s[i] = c2 * s[i] + (one - c2) * g * g
            theta[i] -= step * m[i] / (np.sqrt(s[i]) / root_bc2 + eps)
    elif kind == RMSPROP:
        rho = typed(theta, hp[HP_RHO])
        eps = typed(theta, hp[HP_EPS])
        s = state[0]
        for i in range(start, end):
            g = grad[i] + wd * theta[i]
            s[i] = rho * s[i] + (one - rho) * g * g
            theta[i] -= lr_ * g / (np.sqrt(s[i]) + eps)
