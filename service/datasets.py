"""Check an uploaded NPZ file before it becomes a dataset: numeric arrays, sizes, finite values.

Array headers are read before any data, so a small compressed file cannot make the server
allocate more than the limits allow.
"""

from __future__ import annotations

import math
import zipfile

import numpy as np

from .errors import InvalidArgument, ResourceExhausted


def inspect_npz(path: str, max_elements: int) -> dict:
    """{array name: {"dtype", "shape"}} of a valid NPZ file; raise InvalidArgument otherwise."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidArgument("chunk", f"not an NPZ file (a zip of .npy arrays): {exc}") from None
    arrays = {}
    with archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                raise InvalidArgument("chunk", f"NPZ member {info.filename!r} is not a .npy array")
            name = info.filename[:-4]
            try:
                with archive.open(info) as fp:
                    version = np.lib.format.read_magic(fp)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
            except (ValueError, OSError, zipfile.BadZipFile) as exc:
                raise InvalidArgument("chunk", f"array {name!r}: unreadable .npy header: {exc}") from None
            if dtype.kind not in "biuf" or dtype.hasobject:
                raise InvalidArgument("chunk", f"array {name!r} has dtype {dtype}; only numbers are accepted")
            if math.prod(shape) > max_elements:
                raise ResourceExhausted("chunk", f"array {name!r} has {math.prod(shape)} values, over the "
                                                 f"limit of {max_elements}")
            arrays[name] = {"dtype": dtype.name, "shape": [int(d) for d in shape]}
    if not arrays:
        raise InvalidArgument("chunk", "the NPZ file holds no arrays")
    try:
        with np.load(path, allow_pickle=False) as npz:
            for name in arrays:
                values = npz[name]
                if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
                    row = int(np.argwhere(~np.isfinite(values))[0][0])
                    raise InvalidArgument("chunk", f"array {name!r} contains NaN or infinity "
                                                   f"(first at index {row})")
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise InvalidArgument("chunk", f"unreadable NPZ data: {exc}") from None
    return arrays
