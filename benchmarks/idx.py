"""MNIST's four IDX files for the benchmark (benchmarks/mnist.py): the reader itself is
fusetrain.wire.idx, the one the client's loaders use.
"""

from __future__ import annotations

from pathlib import Path

from fusetrain.wire.idx import IDX_TYPES, MAGIC_IMAGES, MAGIC_LABELS, IDXError, read_idx  # noqa: F401


def load_mnist(folder) -> dict:
    """{"train": (images (60000, 28, 28) uint8, labels (60000,)), "test": (...)} from the four files."""
    folder = Path(folder)
    out = {}
    for part, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz", MAGIC_IMAGES)
        labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", MAGIC_LABELS)
        if images.shape[0] != labels.shape[0]:
            raise IDXError(f"{part}: {images.shape[0]} images but {labels.shape[0]} labels")
        out[part] = (images, labels)
    return out
