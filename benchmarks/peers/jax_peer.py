"""JAX: the whole run (every epoch, every mini-batch) is one `jax.jit` over `lax.scan`s.

The outer scan runs the epochs; each epoch permutes the rows, reshapes the full batches to
(steps, B, I) and scans the train step over them, then takes one step on the short tail
batch if there is one. The function is compiled ahead of time (`lower().compile()`), so the
compile seconds are measured apart from the run.
"""

from __future__ import annotations

import os
import time

from compare_shapes import Shape
from peers import INNER

LIBRARY = "jax"
OPTIMIZERS = ("sgd",)


def prepare(threads: int) -> None:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false"
                                   " intra_op_parallelism_threads=1").strip()


def version() -> str:
    import jax
    return jax.__version__


def _make_train(shape: Shape):
    import jax
    import jax.numpy as jnp
    from jax import lax

    act = jax.nn.sigmoid if shape.hidden == "sigmoid" else jax.nn.relu
    lr = jnp.float32(shape.learning_rate)
    n, bs = shape.rows, shape.batch
    steps, tail = divmod(n, bs)

    def loss_fn(params, xb, yb):
        a = xb
        for k, (w, b) in enumerate(params):
            z = a @ w.T + b
            a = act(z) if k < len(params) - 1 else z
        if shape.loss == "half_sse":
            return 0.5 * jnp.mean(jnp.sum(jnp.square(jax.nn.sigmoid(z) - yb), axis=1))
        return -jnp.mean(jnp.sum(yb * jax.nn.log_softmax(z, axis=1), axis=1))

    def step(params, batch):
        xb, yb = batch
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
        params = jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)
        return params, loss

    def epoch(params, key, x, y):
        if shape.full_batch:
            return step(params, (x, y))
        perm = jax.random.permutation(key, n)
        xs, ys = x[perm], y[perm]
        head = (xs[: steps * bs].reshape(steps, bs, -1), ys[: steps * bs].reshape(steps, bs, -1))
        params, losses = lax.scan(step, params, head)
        if tail:
            params, _ = step(params, (xs[steps * bs:], ys[steps * bs:]))
        return params, losses.mean()

    def train(params, x, y, key):
        keys = jax.random.split(key, shape.epochs)
        params, losses = lax.scan(lambda p, k: epoch(p, k, x, y), params, keys)
        return params, losses

    return jax.jit(train)


def train(shape: Shape, data: dict, layers: list, threads: int, optimizer: str = "sgd") -> dict:
    import jax
    import numpy as np

    if optimizer != "sgd":
        raise ValueError(f"jax peer runs plain SGD only, not {optimizer}")
    params = [(jax.device_put(w), jax.device_put(b)) for w, b in layers]
    x, y = jax.device_put(data["x"]), jax.device_put(data["y"])
    key = jax.random.PRNGKey(1)

    t0 = time.perf_counter()
    compiled = _make_train(shape).lower(params, x, y, key).compile()
    compile_seconds = time.perf_counter() - t0

    # A warm-up with fewer epochs would compile again: run the compiled function once
    # untimed (it touches fresh buffers), then time INNER runs.
    jax.block_until_ready(compiled(params, x, y, key))
    seconds = float("inf")
    for _ in range(INNER):
        t0 = time.perf_counter()
        out, _ = compiled(params, x, y, key)
        jax.block_until_ready(out)
        seconds = min(seconds, time.perf_counter() - t0)
    weights = [(np.asarray(w), np.asarray(b)) for w, b in out]
    return {"seconds": seconds, "compile_seconds": compile_seconds,
            "samples": shape.rows * shape.epochs, "weights": weights, "threads": None}


def train_seeds(shape: Shape, data: dict, layers: list, threads: int, seeds: list) -> list:
    """One run per shuffle seed (jax.random.PRNGKey(seed)) of one compiled function, same initial weights."""
    import jax
    import numpy as np

    params = [(jax.device_put(w), jax.device_put(b)) for w, b in layers]
    x, y = jax.device_put(data["x"]), jax.device_put(data["y"])
    compiled = _make_train(shape).lower(params, x, y, jax.random.PRNGKey(seeds[0])).compile()
    out = []
    for seed in seeds:
        trained, _ = compiled(params, x, y, jax.random.PRNGKey(seed))
        out.append([(np.asarray(w), np.asarray(b)) for w, b in jax.block_until_ready(trained)])
    return out
