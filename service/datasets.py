"""Datasets: the upload stream, the inspection of an uploaded NPZ file, and reads.

An upload is written to a temporary file while its sha256 is computed; bytes already known are
free. Sizes are read from the zip directory and the array headers before any data, so a small
compressed file cannot make the server allocate more than the limits allow; then the values are
checked to be finite a chunk at a time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
import zipfile
import zlib
import queue
import threading
from typing import Iterator, Optional

import numpy as np

from fusetrain.v1 import service_pb2 as pb

from .config import ServiceLimits
from .errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from .messages import timestamp
from .store import Store, storage_unavailable

log = logging.getLogger("fusetrain.jobs")


CHECK_CHUNK = 1 << 20       # bytes of one array decoded at a time while checking finiteness
# What reading a damaged, truncated or oddly packed zip member can raise.
UNREADABLE = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError,
              RuntimeError)


def inspect_npz(path: str, max_elements: int, max_decoded_bytes: int) -> dict:
    """{array name: {"dtype", "shape"}} of a valid NPZ file; raise InvalidArgument otherwise.

    Sizes come from the zip directory and the .npy headers, before any data is decoded: each
    array's values and the sum over arrays are checked against `max_elements` and
    `max_decoded_bytes` (ResourceExhausted naming max_dataset_decoded_bytes). Then the values are
    checked to be finite a chunk at a time, so the check needs CHECK_CHUNK bytes whatever the size.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidArgument("chunk", f"not an NPZ file (a zip of .npy arrays): {exc}") from None
    arrays, headers, total = {}, {}, 0
    with archive:
        declared = sum(info.file_size for info in archive.infolist())
        if declared > max_decoded_bytes + 4096 * len(archive.infolist()):
            raise ResourceExhausted("chunk", f"the NPZ file decompresses to {declared} bytes, over the limit "
                                             f"of {max_decoded_bytes} (max_dataset_decoded_bytes)")
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                raise InvalidArgument("chunk", f"NPZ member {info.filename!r} is not a .npy array")
            name = info.filename[:-4]
            try:
                with archive.open(info) as fp:
                    version = np.lib.format.read_magic(fp)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
                    else:
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
                    offset = fp.tell()
            except UNREADABLE as exc:
                raise InvalidArgument("chunk", f"array {name!r}: unreadable .npy header: {exc}") from None
            if dtype.kind not in "biuf" or dtype.hasobject:
                raise InvalidArgument("chunk", f"array {name!r} has dtype {dtype}; only numbers are accepted")
            count = math.prod(shape)
            if count > max_elements:
                raise ResourceExhausted("chunk", f"array {name!r} has {count} values, over the "
                                                 f"limit of {max_elements}")
            total += count * dtype.itemsize
            if total > max_decoded_bytes:
                raise ResourceExhausted("chunk", f"array {name!r} brings the decoded size to {total} bytes, "
                                                 f"over the limit of {max_decoded_bytes} "
                                                 f"(max_dataset_decoded_bytes)")
            if info.file_size != offset + count * dtype.itemsize:
                raise InvalidArgument("chunk", f"array {name!r}: its header describes "
                                               f"{count * dtype.itemsize} bytes of data, the file holds "
                                               f"{info.file_size - offset}")
            arrays[name] = {"dtype": dtype.name, "shape": [int(d) for d in shape]}
            headers[name] = (info, offset, dtype, shape, fortran)
        if not arrays:
            raise InvalidArgument("chunk", "the NPZ file holds no arrays")
        try:
            for name, header in headers.items():
                _check_finite(archive, name, *header)
        except UNREADABLE as exc:
            raise InvalidArgument("chunk", f"unreadable NPZ data: {exc}") from None
    return arrays


def _check_finite(archive: zipfile.ZipFile, name: str, info, offset: int, dtype, shape, fortran) -> None:
    """Raise InvalidArgument at the first NaN or infinity of a float array, read a chunk at a time."""
    if dtype.kind != "f":
        return
    step = max(1, CHECK_CHUNK // dtype.itemsize) * dtype.itemsize
    remaining = math.prod(shape) * dtype.itemsize
    seen = 0                                   # values checked so far
    with archive.open(info) as fp:
        fp.read(offset)
        while remaining:
            data = fp.read(min(step, remaining))
            if not data or len(data) % dtype.itemsize:
                raise InvalidArgument("chunk", f"array {name!r}: the data ends early")
            remaining -= len(data)
            values = np.frombuffer(data, dtype=dtype)
            bad = ~np.isfinite(values)
            if bad.any():
                flat = seen + int(np.argmax(bad))
                if not shape:
                    row = 0
                elif fortran:
                    row = flat % shape[0]
                else:
                    row = flat // max(1, math.prod(shape[1:]))
                raise InvalidArgument("chunk", f"array {name!r} contains NaN or infinity "
                                               f"(first at index {row})")
            seen += values.size


def dataset_message(row: dict, already: bool) -> pb.Dataset:
    return pb.Dataset(id=row["id"], name=row["name"], size_bytes=row["size_bytes"],
                      arrays=[pb.Array(name=k, dtype=v["dtype"], shape=v["shape"])
                              for k, v in sorted(row["arrays"].items())],
                      already_present=already, created_at=timestamp(row["created_at"]))



_END = object()


def within(requests: Iterator, seconds: float) -> Iterator:
    """The requests of a stream, each arriving within `seconds` of the one before, else
    ResourceExhausted naming max_upload_idle_seconds (the handler returns, and gRPC ends the call).

    A reader thread waits on the client; at most two requests wait in between, so a fast client
    is read no further ahead than the handler consumes.
    """
    waiting: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def put(item) -> bool:
        """Hand one item over, unless the handler has stopped reading."""
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for req in requests:
                if not put(req):
                    return
            item = _END
        except Exception as exc:  # noqa: BLE001 - the call's own error, handed to the handler
            item = exc
        put(item)

    threading.Thread(target=read, name="upload-reader", daemon=True).start()
    try:
        while True:
            try:
                item = waiting.get(timeout=seconds)
            except queue.Empty:
                raise ResourceExhausted("chunk", f"nothing arrived for {seconds:g} s, the limit of the server "
                                                 f"(max_upload_idle_seconds); the upload was ended") from None
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()

class Datasets:
    """Uploaded datasets: content-addressed files under datasets/ and their rows in the store."""

    def __init__(self, store: Store, limits: ServiceLimits):
        self.store = store
        self.files = store.files
        self.limits = limits

    def upload(self, requests: Iterator[pb.UploadDatasetRequest], owner: Optional[str] = None) -> pb.Dataset:
        """Store an upload; each owner sees only what it uploaded (bytes another owner sent are
        stored once, but answer as new, under this owner's name)."""
        name, size, digest = "", 0, hashlib.sha256()
        try:
            fd, tmp = self.files.temp()
        except OSError as exc:
            raise storage_unavailable(exc) from None
        try:
            with os.fdopen(fd, "wb") as f:
                for i, req in enumerate(within(requests, self.limits.max_upload_idle_seconds)):
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
                with self.store.tx() as tx:
                    new = tx.add_dataset_owner(sha, owner or "", name, time.time())
                return dataset_message(self.store.dataset(sha, owner or ""), already=not new)
            arrays = inspect_npz(tmp, self.limits.max_rows * self.limits.max_units,
                                 self.limits.max_dataset_decoded_bytes)
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
            tx.add_dataset_owner(sha, owner or "", name, row["created_at"])
        log.info("dataset %s uploaded (%d bytes, arrays %s)", sha[:12], size,
                 ", ".join(f"{k}{tuple(v['shape'])}" for k, v in arrays.items()))
        return dataset_message(row, already=False)

    def delete(self, dataset_id: str, owner: Optional[str] = None) -> None:
        """Forget the caller's dataset; the file goes when no owner is left."""
        with self.store.tx() as tx:
            owners = tx.dataset_owners(dataset_id) if dataset_id else None
            if owners is None or (owners and owner is not None and owner not in owners):
                raise NotFound(f"dataset {dataset_id!r} not found")
            if tx.dataset_in_use(dataset_id):
                raise FailedPrecondition(f"dataset {dataset_id[:12]} is used by a queued or running job; "
                                         f"cancel it or wait for it to end")
            gone = tx.remove_dataset(dataset_id, owner or "") if owners else tx.remove_dataset(dataset_id, "")
        if gone:
            self.files.remove("datasets", dataset_id)
        log.info("dataset %s deleted%s", dataset_id[:12], "" if gone else " for one owner")

    def get(self, dataset_id: str, owner: Optional[str] = None) -> pb.Dataset:
        row = self.store.dataset(dataset_id, owner) if dataset_id else None
        if row is None:
            raise NotFound(f"dataset {dataset_id!r} not found")
        return dataset_message(row, already=True)

    def list(self, owner: Optional[str] = None, prefix: str = "") -> list[pb.Dataset]:
        """The datasets `owner` uploaded (or that nobody is recorded as owning), newest first,
        whose id starts with `prefix` (ListDatasets; the command line's id prefixes)."""
        owner = owner or ""
        like = prefix.replace("\\", "").replace("%", "").replace("_", "") + "%"
        rows = self.store._query(
            "SELECT d.id, COALESCE(o.name, d.name), d.size_bytes, d.arrays, COALESCE(o.created_at, d.created_at) "
            "FROM datasets d LEFT JOIN dataset_owners o ON o.dataset_id = d.id AND o.owner = ? "
            "WHERE d.id LIKE ? AND (o.owner IS NOT NULL OR NOT EXISTS "
            "(SELECT 1 FROM dataset_owners x WHERE x.dataset_id = d.id)) ORDER BY 5 DESC", (owner, like))
        return [dataset_message({"id": r[0], "name": r[1], "size_bytes": r[2], "arrays": json.loads(r[3]),
                                 "created_at": r[4]}, already=True) for r in rows]

