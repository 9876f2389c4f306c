"""The per-job memory estimate (engine/memory.py) beside the peak memory one training really takes.

    python tests/reliability/memory_figures.py [UNITS ROWS BATCH ...]

Each case trains a 16-UNITS-1 float32 network with Adam for 2 epochs in a fresh process and prints
the estimate and the growth of the process's peak RSS over the training call (the data is made
before the measurement starts, so the estimate's data term is an excess here).
"""

from __future__ import annotations

import resource
import subprocess
import sys

CASES = [(16384, 5000, 0), (4096, 20000, 0), (65536, 2000, 32)]


def measure(units: int, rows: int, batch: int) -> str:
    import numpy as np

    from fusetrain import engine
    from fusetrain.engine import LayerSpec, ModelSpec, OptimizerSpec, TrainConfig
    from fusetrain.engine.memory import job_bytes

    model = ModelSpec(inputs=16, layers=[LayerSpec(units=units, activation="relu"), LayerSpec(units=1)],
                      dtype="float32")
    opt, cfg = OptimizerSpec(kind="adam"), TrainConfig(epochs=2, batch_size=batch, threads=1)
    x = np.random.default_rng(0).normal(size=(rows, 16)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)
    engine.train(model, opt, TrainConfig(epochs=1, batch_size=4, threads=1), x[:8], y[:8])   # kernels loaded
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    engine.train(model, opt, cfg, x, y)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return (f"16-{units}-1, {rows} rows, batch {batch or 'full'}: estimate "
            f"{job_bytes(model, opt, cfg, rows) / 2**20:.0f} MiB, measured peak growth "
            f"{(peak - before) / 2**20:.0f} MiB")


if __name__ == "__main__":
    if len(sys.argv) == 4:
        print(measure(*map(int, sys.argv[1:])))
    else:
        cases = [tuple(map(int, sys.argv[i:i + 3])) for i in range(1, len(sys.argv), 3)] or CASES
        for case in cases:
            subprocess.run([sys.executable, __file__, *map(str, case)], check=True)
