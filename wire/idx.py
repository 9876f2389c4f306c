"""The IDX reader (the MNIST format), gzipped or not: numpy only.

IDX layout: a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
then one big-endian uint32 per dimension, then the values in C order, big-endian. The client's
loaders (`fusetrain.client.loaders`) and the MNIST benchmark (`benchmarks/idx.py`) both read
through `read_idx`.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Optional

import numpy as np

# Type codes of the third magic byte -> big-endian numpy dtypes.
IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

# Magic numbers of the MNIST files: images are uint8 3-D (2051), labels uint8 1-D (2049).
MAGIC_IMAGES = 0x00000803
MAGIC_LABELS = 0x00000801


class IDXError(ValueError):
    """The file is not a well-formed IDX file (or not the kind expected); the message names it."""


def parse_idx(raw: bytes, name: str = "IDX data", expect_magic: Optional[int] = None) -> np.ndarray:
    """The array held by the bytes of an IDX file (gzip-compressed bytes are decompressed)."""
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise IDXError(f"{name}: cannot read: {err}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise IDXError(f"{name}: not an IDX file (bad magic number {raw[:4].hex()})")
    magic = int.from_bytes(raw[:4], "big")
    if expect_magic is not None and magic != expect_magic:
        raise IDXError(f"{name}: magic number 0x{magic:08x}, expected 0x{expect_magic:08x}")
    dtype = IDX_TYPES[raw[2]]
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise IDXError(f"{name}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    count = 1
    for d in shape:
        count *= d
    if len(raw) - header != count * dtype.itemsize:
        raise IDXError(f"{name}: header says {shape} of {dtype.name} ({count * dtype.itemsize} bytes) "
                       f"but the file holds {len(raw) - header} bytes of data")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path, expect_magic: Optional[int] = None) -> np.ndarray:
    """The array stored in an IDX file (.gz or not), native byte order; MNIST images are
    (n, 28, 28) uint8. Checks `expect_magic` when given."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise IDXError(f"{path}: cannot read: {err}") from None
    return parse_idx(raw, str(path), expect_magic)
