"""Datasets: the upload stream, the inspection of an uploaded NPZ file, and reads.

An upload is written to a temporary file while its sha256 is computed; bytes already known are
free. Array headers are read before any data, so a small compressed file cannot make the server
allocate more than the limits allow; then the values are checked to be finite.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
import zipfile
from typing import Iterator

import numpy as np

from fusetrain.v1 import service_pb2 as pb

from .config import ServiceLimits
from .errors import InvalidArgument, NotFound, ResourceExhausted
from .messages import timestamp
from .store import Store, storage_unavailable

log = logging.getLogger("fusetrain.jobs")


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


def dataset_message(row: dict, already: bool) -> pb.Dataset:
    return pb.Dataset(id=row["id"], name=row["name"], size_bytes=row["size_bytes"],
                      arrays=[pb.Array(name=k, dtype=v["dtype"], shape=v["shape"])
                              for k, v in sorted(row["arrays"].items())],
                      already_present=already, created_at=timestamp(row["created_at"]))


class Datasets:
    """Uploaded datasets: content-addressed files under datasets/ and their rows in the store."""

    def __init__(self, store: Store, limits: ServiceLimits):
        self.store = store
        self.files = store.files
        self.limits = limits

    def upload(self, requests: Iterator[pb.UploadDatasetRequest]) -> pb.Dataset:
        name, size, digest = "", 0, hashlib.sha256()
        try:
            fd, tmp = self.files.temp()
        except OSError as exc:
            raise storage_unavailable(exc) from None
        try:
            with os.fdopen(fd, "wb") as f:
                for i, req in enumerate(requests):
                    if i == 0:
                        name = req.name
                        if req.format not in ("", "npz"):
                            raise InvalidArgument("format", f"unknown format {req.format!r}; expected npz")
                    size += len(req.chunk)
                    if size > self.limits.max_dataset_bytes:
                        raise ResourceExhausted("chunk", f"the dataset is over the limit of "
                                                         f"{self.limits.max_dataset_bytes} bytes")
                    digest.update(req.chunk)
                    f.write(req.chunk)
                f.flush()
                os.fsync(f.fileno())
            if size == 0:
                raise InvalidArgument("chunk", "no bytes were uploaded")
            sha = digest.hexdigest()
            known = self.store.dataset(sha)
            if known is not None:
                os.unlink(tmp)
                return dataset_message(known, already=True)
            arrays = inspect_npz(tmp, self.limits.max_rows * self.limits.max_units)
            self.files.commit_temp("datasets", tmp, sha)
        except BaseException as exc:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            if isinstance(exc, OSError):        # disk full, I/O error: nothing was stored
                raise storage_unavailable(exc) from None
            raise
        row = {"id": sha, "name": name, "size_bytes": size, "arrays": arrays, "created_at": time.time()}
        with self.store.tx() as tx:
            tx.insert_dataset(row)
        log.info("dataset %s uploaded (%d bytes, arrays %s)", sha[:12], size,
                 ", ".join(f"{k}{tuple(v['shape'])}" for k, v in arrays.items()))
        return dataset_message(row, already=False)

    def get(self, dataset_id: str) -> pb.Dataset:
        row = self.store.dataset(dataset_id) if dataset_id else None
        if row is None:
            raise NotFound(f"dataset {dataset_id!r} not found")
        return dataset_message(row, already=True)
