"""The libraries fusetrain is compared with, one module each, behind one small interface.

Each peer module defines:
    LIBRARY                 the import name whose absence skips the peer
    prepare(threads)        set environment variables before the library is imported
    version() -> str
    train(shape, data, layers, threads, optimizer="sgd") -> dict
        trains `shape` from the initial `layers` [(W (O, I), b (O,)), ...] on `data`
        (x, y, labels), INNER times after a warm-up, and returns seconds (the fastest of
        those runs, training only), compile_seconds (first-call
        compilation, measured apart; 0 where nothing compiles), samples (rows × epochs)
        and weights [(W, b), ...] as float32 NumPy arrays for the sanity check.
    train_seeds(shape, data, layers, threads, seeds) -> [weights, ...]
        plain SGD from the same initial `layers`, once per shuffle seed, untimed: each
        run's final weights, for the convergence table (benchmarks/compare_convergence.py)
    OPTIMIZERS              the optimizer kinds `train` accepts
"""

import importlib
import importlib.util

PEERS = ("fusetrain", "torch", "jax", "sklearn")

# Timed runs per row inside one worker process; the fastest counts. These 2-core virtual
# machines wander by +-15% from one run to the next, even with nothing else running.
INNER = 2

# Hyper-parameters of the optimizer rows (the "large" shape): same for every library.
MOMENTUM = 0.9
ADAM = {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}


def load(name: str):
    """The peer module for `name`."""
    return importlib.import_module(f"peers.{name}_peer")


def missing(name: str) -> str | None:
    """None when the peer can run here, else a one-line reason."""
    library = {"fusetrain": "fusetrain.engine", "torch": "torch", "jax": "jax",
               "sklearn": "sklearn"}[name]
    try:
        found = importlib.util.find_spec(library) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        hint = "make install" if name == "fusetrain" else "make compare installs the .[compare] extra"
        return f"{library} is not installed ({hint})"
    return None
