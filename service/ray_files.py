"""A job's files on a Ray cluster without a shared disk: through Ray's object store, cached per node.

    driver (the server's node)                        a Ray task (any node)
    FileShipper.refs(task): {(kind, sha): ref}        materialise(refs): the missing files, fetched,
      each file put once (kept while recently used)     checked (sha256), written atomically into a
      passed nested in an argument: not fetched         content-addressed node cache; the task's
      until the task asks                               data_dir points there

A job attempt reads only its dataset files, its spec's inline-data file and a checkpoint to resume
from (jobfn._run), all named by sha256: a node keeps them in `node_cache()` and fetches each once.
Only the server's node reads the server's data directory. The cache is bounded: after a task
fetches a file, the least recently used files go until the cache holds at most
$FUSETRAIN_NODE_CACHE_BYTES (default 8 GiB), never a file used in the last KEEP_SECONDS (a task
reads its files right after fetching them), so a file in use is never taken away.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

from fusetrain.v1 import job_pb2

from . import executor as ex
from .files import KINDS, Files

# Files kept in the object store by the driver (most recently used): a batch's jobs share a few.
MAX_PUT = 64
NODE_CACHE_VAR = "FUSETRAIN_NODE_CACHE"
NODE_CACHE_BYTES_VAR = "FUSETRAIN_NODE_CACHE_BYTES"
NODE_CACHE_BYTES = 8 << 30
KEEP_SECONDS = 600.0


def needed(task: ex.Task) -> list[tuple[str, str]]:
    """The (kind, sha) of every file the attempt `task` reads."""
    out = []
    if task.spec_data_sha:
        out.append(("specdata", task.spec_data_sha))
    if task.resume_from and task.resume_state is None:
        out.append(("checkpoints", task.resume_from))
    data = job_pb2.JobSpec.FromString(task.spec).data
    for src in (data.train, data.validation):
        if src.dataset_id:
            out.append(("datasets", src.dataset_id))
    return list(dict.fromkeys(out))


class FileShipper:
    """The driver's side: each needed file put into the object store once, the refs kept (bounded)."""

    def __init__(self, ray, limit: int = MAX_PUT):
        self._ray, self._limit = ray, limit
        self._refs: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.puts = 0                     # files put so far (tests: once per dataset, not per job)

    def refs(self, task: ex.Task) -> dict:
        """{(kind, sha): ObjectRef of the file's bytes} for `task` (read from task.data_dir)."""
        out = {}
        for kind, sha in needed(task):
            with self._lock:
                ref = self._refs.get((kind, sha))
                if ref is not None:
                    self._refs.move_to_end((kind, sha))
            if ref is None:
                ref = self._ray.put(Files.view(task.data_dir).read(kind, sha))
                with self._lock:
                    self._refs[(kind, sha)] = ref
                    self.puts += 1
                    while len(self._refs) > self._limit:
                        self._refs.popitem(last=False)   # Ray frees it once no task holds it
            out[(kind, sha)] = ref
        return out


def node_cache() -> Path:
    """This node's file cache: $FUSETRAIN_NODE_CACHE, else ~/.cache/fusetrain/node-files."""
    root = os.environ.get(NODE_CACHE_VAR) or Path.home() / ".cache" / "fusetrain" / "node-files"
    return Path(root)


def materialise(refs: dict, root: Path | None = None) -> Path:
    """Write the files of `refs` missing from the node cache (checked against their sha256,
    atomically: a temp file renamed); return the cache root, a data directory for run_job."""
    import ray
    root = Path(root or node_cache())
    files = Files.view(root)              # not Files(root): that empties tmp/, which other tasks use
    for kind in (*KINDS, "tmp"):
        (root / kind).mkdir(parents=True, exist_ok=True)
    fetched = False
    for (kind, sha), ref in refs.items():
        if files.exists(kind, sha):
            try:
                os.utime(files.path(kind, sha))     # used now: the last to be trimmed
            except FileNotFoundError:               # trimmed by another task just now: fetch it
                pass
            else:
                continue
        got = files.write(kind, ray.get(ref), sync_dir=False)   # named by its own sha256, never by `sha`
        if got != sha:
            raise OSError(f"{kind} file {sha} arrived with sha256 {got}")
        fetched = True
    if fetched:
        trim(root, int(os.environ.get(NODE_CACHE_BYTES_VAR) or NODE_CACHE_BYTES))
    return root


def trim(root: Path, limit: int, now: float | None = None) -> int:
    """Remove the node cache's least recently used files (by mtime) until it holds at most `limit`
    bytes, keeping every file used in the last KEEP_SECONDS; the bytes removed."""
    now = time.time() if now is None else now
    found = []
    for kind in KINDS:
        for entry in os.scandir(root / kind):
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            found.append((st.st_mtime, st.st_size, entry.path))
    total, freed = sum(size for _, size, _ in found), 0
    for mtime, size, path in sorted(found):
        if total - freed <= limit or now - mtime < KEEP_SECONDS:
            break
        try:
            os.unlink(path)
            freed += size
        except FileNotFoundError:
            pass
    return freed
