"""Test helpers that reach into the engine's kernels: gradients and losses of one batch."""

import numpy as np

from fusetrain.engine.buffers import JobBuffers, accuracy_rule
from fusetrain.engine.init import initial_weights
from fusetrain.engine.kernels.blas import gemm_scratch
from fusetrain.engine.kernels.epochs import train_step_update
from fusetrain.engine.kernels.small import small_step_update
from fusetrain.engine.layout import Layout
from fusetrain.engine.spec import ModelSpec, OptimizerSpec, TrainConfig


def engine_gradients(model: ModelSpec, x, y, weights=None, small=False):
    """(batch loss, [(dW, db), ...]) computed by the compiled train_step on one full batch.

    Plain SGD with a learning rate of 0 and an enormous clip norm takes the unfolded path,
    which leaves the raw gradients in the grad buffer and the weights unchanged.
    small=True runs the tiny-network step of kernels/small.py instead of the general one.
    """
    dtype = np.dtype(model.dtype)
    x = np.ascontiguousarray(x, dtype=dtype)
    y = np.ascontiguousarray(y, dtype=dtype)
    layout = Layout.of(model)
    weights = weights if weights is not None else initial_weights(model)
    theta = layout.pack(weights, dtype)
    opt = OptimizerSpec(kind="sgd", learning_rate=1.0, clip_norm=1e300)
    buf = JobBuffers(model, opt, TrainConfig(batch_size=0, shuffle=False), layout, theta, len(x),
                     accuracy_rule(model.loss, y), None)
    iscr, fscr = gemm_scratch(dtype)
    args = (x.reshape(-1), 0, y.reshape(-1), 0, len(x), buf.theta, buf.grad, buf.opt, buf.step, buf.acts,
            buf.deltas, buf.a_off, layout.meta, layout.slopes, buf.hp, 0.0, buf.ints)
    loss, _ = small_step_update(*args) if small else train_step_update(*args, iscr, fscr, True)
    return loss, layout.unpack(buf.grad)
