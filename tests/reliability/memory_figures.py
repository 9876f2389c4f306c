"""The per-job memory estimate (engine/memory.py) beside the peak memory one job really takes.

    python tests/reliability/memory_figures.py            every case below
    python tests/reliability/memory_figures.py NAME ...   the named cases

Each case runs in a fresh process the way a service worker runs a job: the kernels are loaded
first (engine.warmup), then the peak-RSS mark of the process is reset (Linux /proc/self/clear_refs),
the data is made as a loaded data set is (float64 arrays), and `engine.train` runs with a per-epoch
callback and a checkpoint callback (called after every chunk), as the worker passes them. The
measured figure is the growth of the peak resident memory (VmHWM) over the resident memory (VmRSS)
just before the data was made; the ratio is estimate / measured (above 1: the estimate is larger).
"""

from __future__ import annotations

import json
import subprocess
import sys

# name: (layer units (the last is the output layer), dtype, optimizer, rows, batch, epochs, extra)
# extra: "val_fraction" (training.validation_fraction 0.2), "val_set" (a separate validation set of
# rows / 4 rows with early stopping), "threads2" (2 threads), "classes" (softmax over the outputs).
CASES = {
    "wide-full": ([16384, 1], "float32", "adam", 5000, 0, 2, ""),
    "narrow-full": ([4096, 1], "float32", "adam", 20000, 0, 2, ""),
    "widest-b32": ([65536, 1], "float32", "adam", 2000, 32, 2, ""),
    "widest-b32-sgd": ([65536, 1], "float32", "sgd", 2000, 32, 2, ""),
    "widest-b32-f64": ([65536, 1], "float64", "adam", 2000, 32, 2, ""),
    "wide-b1": ([16384, 1], "float32", "momentum", 2000, 1, 1, ""),
    "deep-b64": ([2048, 2048, 2048, 1], "float32", "adam", 2000, 64, 1, ""),
    "deep-b64-f64-sgd": ([2048, 2048, 2048, 1], "float64", "sgd", 1000, 64, 1, ""),
    "wide-many-rows": ([8192, 1], "float32", "adam", 200000, 256, 1, ""),
    "narrow-many-rows": ([64, 10], "float32", "rmsprop", 1000000, 128, 1, "classes"),
    "val-fraction": ([16384, 1], "float32", "adam", 10000, 64, 3, "val_fraction"),
    "val-set-f64": ([8192, 1], "float64", "adam", 8000, 128, 3, "val_set"),
    "threads2": ([16384, 1], "float32", "adam", 4000, 128, 2, "threads2"),
    "deep-threads2": ([2048, 2048, 2048, 1], "float32", "adam", 1000, 64, 1, "threads2"),
    "long-history": ([4, 1], "float32", "adam", 4, 0, 300000, ""),
    "tiny": ([8, 1], "float32", "adam", 100, 10, 5, ""),
}
INPUTS = 16


def _vm(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def measure(name: str) -> dict:
    import numpy as np

    from fusetrain import engine
    from fusetrain.engine import EarlyStopping, LayerSpec, ModelSpec, OptimizerSpec, TrainConfig
    from fusetrain.engine.memory import job_bytes

    units, dtype, kind, rows, batch, epochs, extra = CASES[name]
    classes = extra == "classes"
    layers = [LayerSpec(units=u, activation="relu") for u in units[:-1]]
    layers.append(LayerSpec(units=units[-1], activation="softmax" if classes else "sigmoid"))
    model = ModelSpec(inputs=INPUTS, layers=layers, dtype=dtype,
                      loss="softmax_cross_entropy" if classes else "binary_cross_entropy")
    val_rows = rows // 4 if extra == "val_set" else 0
    cfg = TrainConfig(epochs=epochs, batch_size=batch, threads=2 if extra == "threads2" else 1,
                      validation_fraction=0.2 if extra == "val_fraction" else 0.0,
                      early_stopping=EarlyStopping(patience=10) if extra == "val_set" else None)
    opt = OptimizerSpec(kind=kind)
    engine.warmup((dtype,))

    open("/proc/self/clear_refs", "w").write("5")     # the peak mark (VmHWM) back to VmRSS
    before = _vm("VmRSS")
    rng = np.random.default_rng(0)

    def data(n):
        x = rng.normal(size=(n, INPUTS))
        if classes:
            y = np.eye(units[-1])[rng.integers(0, units[-1], n)]
        else:
            y = (x[:, :1] > 0).astype(np.float64)
        return x, y

    x, y = data(rows)
    x_val, y_val = data(val_rows) if val_rows else (None, None)
    held = []
    engine.train(model, opt, cfg, x, y, x_val=x_val, y_val=y_val, callback=lambda m: False,
                 checkpoint=lambda s: held.append(len(s.arrays())), checkpoint_seconds=0.0)
    peak = _vm("VmHWM")
    estimate = job_bytes(model, opt, cfg, rows, val_rows)
    return {"name": name, "estimate": estimate, "measured": peak - before}


def line(case: dict) -> str:
    units, dtype, kind, rows, batch, epochs, extra = CASES[case["name"]]
    shape = "-".join(map(str, [INPUTS, *units]))
    what = (f"{shape} {dtype} {kind}, {rows} rows, batch {batch or 'full'}, {epochs} epochs"
            + (f", {extra}" if extra else ""))
    mib = 2 ** 20
    return (f"{case['name']:<18} {what:<72} estimate {case['estimate'] / mib:7.1f} MiB  measured "
            f"{case['measured'] / mib:7.1f} MiB  ratio {case['estimate'] / case['measured']:.2f}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(measure(sys.argv[2])))
    else:
        for name in sys.argv[1:] or CASES:
            out = subprocess.run([sys.executable, __file__, "--one", name], check=True,
                                 capture_output=True, text=True).stdout
            print(line(json.loads(out.strip().splitlines()[-1])), flush=True)
