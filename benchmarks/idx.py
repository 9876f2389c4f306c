"""A small reader for IDX files (the MNIST format), gzipped or not: gzip + struct, no engine.

IDX layout: a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
then one big-endian uint32 per dimension, then the values in C order, big-endian.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

# Type codes of the third magic byte.
IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

# Magic numbers of the MNIST files: images are uint8 3-D (2051), labels uint8 1-D (2049).
MAGIC_IMAGES = 0x00000803
MAGIC_LABELS = 0x00000801


class IDXError(ValueError):
    """The file is not a well-formed IDX file (or not the kind expected)."""


def read_idx(path, expect_magic: int | None = None) -> np.ndarray:
    """The array stored in an IDX file (`.gz` is decompressed); check `expect_magic` if given."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4:
        raise IDXError(f"{path.name}: {len(raw)} bytes is too short for an IDX header")
    (magic,) = struct.unpack(">I", raw[:4])
    zero, code, ndim = magic >> 16, (magic >> 8) & 0xFF, magic & 0xFF
    if zero != 0 or code not in IDX_TYPES or ndim == 0:
        raise IDXError(f"{path.name}: bad IDX magic number 0x{magic:08x}")
    if expect_magic is not None and magic != expect_magic:
        raise IDXError(f"{path.name}: magic number 0x{magic:08x}, expected 0x{expect_magic:08x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{path.name}: truncated header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = IDX_TYPES[code]
    count = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != count * dtype.itemsize:
        raise IDXError(f"{path.name}: {len(raw) - header} data bytes, expected "
                       f"{count * dtype.itemsize} for shape {dims}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


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
