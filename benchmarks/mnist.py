"""MNIST with fusetrain's engine: 784-256-10, relu hidden, softmax cross-entropy, SGD momentum.

    python benchmarks/mnist.py [--data DIR] [--epochs 15] [--threads N]

Reads the four original IDX files from ../shared/datasets/mnist (beside the repository),
scales the pixels to [0, 1], trains with mini-batches of 128, and reports the test accuracy
and the wall time. Without the data it says so and exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from idx import load_mnist  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "mnist"
FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with the four MNIST .gz files")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--learning-rate", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    absent = [f for f in FILES if not (args.data / f).is_file()]
    if absent:
        print(f"MNIST not found ({', '.join(absent)} missing under {args.data}); nothing to do. "
              f"Put the four original IDX .gz files there, or pass --data DIR.")
        return 0

    import fusetrain.engine as engine

    t0 = time.perf_counter()
    mnist = load_mnist(args.data)
    (xtr, ltr), (xte, lte) = mnist["train"], mnist["test"]
    x_train = (xtr.reshape(len(xtr), -1) / np.float32(255)).astype(np.float32)
    x_test = (xte.reshape(len(xte), -1) / np.float32(255)).astype(np.float32)
    y_train = np.eye(10, dtype=np.float32)[ltr]
    y_test = np.eye(10, dtype=np.float32)[lte]
    load_seconds = time.perf_counter() - t0

    model = engine.ModelSpec(784, [engine.LayerSpec(args.hidden, "relu"), engine.LayerSpec(10, "softmax")],
                             loss="softmax_cross_entropy", initializer="he_uniform", seed=args.seed)
    optimizer = engine.OptimizerSpec("momentum", learning_rate=args.learning_rate, momentum=args.momentum,
                                     schedule=engine.ScheduleSpec("cosine"))
    config = engine.TrainConfig(epochs=args.epochs, batch_size=args.batch, shuffle=True, seed=args.seed,
                                threads=args.threads)
    print(f"MNIST: {len(x_train)} training / {len(x_test)} test images (loaded in {load_seconds:.2f} s); "
          f"784-{args.hidden}-10 relu/softmax, SGD momentum {args.momentum}, lr {args.learning_rate} cosine, "
          f"batch {args.batch}, {args.epochs} epochs, {args.threads} thread(s)")

    def progress(m) -> None:
        print(f"  epoch {m.epoch:3d}  loss {m.train_loss:.4f}  train acc {100 * m.train_accuracy:6.2f}%  "
              f"lr {m.learning_rate:.4f}  {m.seconds:.2f} s  {m.samples_per_second / 1e3:.1f}k samples/s",
              flush=True)

    t0 = time.perf_counter()
    result = engine.train(model, optimizer, config, x_train, y_train, callback=progress)
    wall = time.perf_counter() - t0
    test = engine.evaluate(model, result.weights, x_test, y_test)
    print(f"test accuracy {100 * test['accuracy']:.2f}%  (test loss {test['loss']:.4f}; "
          f"train accuracy {100 * result.final['train_accuracy']:.2f}%)")
    print(f"wall time {wall:.2f} s for {result.epochs_run} epochs: training {result.train_seconds:.2f} s "
          f"({len(x_train) * result.epochs_run / result.train_seconds / 1e3:.1f}k samples/s), compile "
          f"{result.compile_seconds:.2f} s, the rest setup, callbacks and final metrics")
    return 0


if __name__ == "__main__":
    sys.exit(main())
