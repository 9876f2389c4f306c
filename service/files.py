"""Content-addressed files under the data directory, written atomically (temp file, fsync, rename).

A writer of several files may leave out the directory fsync per file (`sync_dir=False`) and
call `sync_dirs` once for all of them before it commits the rows that name them.

    <data>/datasets/<sha256>.npz      uploaded datasets, named by the sha256 of their bytes
    <data>/results/<sha256>.pb        serialized JobResult messages
    <data>/checkpoints/<sha256>.npz   resumable training states (TrainState.arrays())
    <data>/specdata/<sha256>.pb       job specs' inline data tensors (specdata.py)
    <data>/tmp/                       partial files; emptied at start-up
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

KINDS = {"datasets": ".npz", "results": ".pb", "checkpoints": ".npz", "specdata": ".pb"}


class Files:
    def __init__(self, root: Path):
        self.root = Path(root)
        for kind in (*KINDS, "tmp"):
            (self.root / kind).mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.root / "tmp", ignore_errors=True)
        (self.root / "tmp").mkdir(exist_ok=True)

    @classmethod
    def view(cls, root: Path) -> "Files":
        """The files under `root` without the directory set-up of Files(root), which empties tmp/
        (a worker reading the server's files, a Ray node's cache that other tasks write into)."""
        files = cls.__new__(cls)
        files.root = Path(root)
        return files

    def path(self, kind: str, sha: str) -> Path:
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ValueError(f"not a sha256: {sha!r}")
        return self.root / kind / f"{sha}{KINDS[kind]}"

    def exists(self, kind: str, sha: str) -> bool:
        return self.path(kind, sha).exists()

    def temp(self) -> tuple[int, str]:
        """An open temp file in the data directory (same file system as the final place)."""
        return tempfile.mkstemp(dir=self.root / "tmp")

    def commit_temp(self, kind: str, tmp_path: str, sha: str, sync_dir: bool = True) -> Path:
        """Rename a complete, fsynced temp file to its content address; a duplicate is dropped.
        Without `sync_dir` the caller owes a `sync_dirs([kind])` before it relies on the name."""
        final = self.path(kind, sha)
        if final.exists():
            os.unlink(tmp_path)
        else:
            os.replace(tmp_path, final)
            if sync_dir:
                _fsync_dir(final.parent)
        return final

    def write(self, kind: str, data: bytes, sync_dir: bool = True) -> str:
        """Store `data`; return its sha256 (see commit_temp for `sync_dir`)."""
        sha = hashlib.sha256(data).hexdigest()
        if self.path(kind, sha).exists():
            return sha
        fd, tmp = self.temp()
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self.commit_temp(kind, tmp, sha, sync_dir)
        return sha

    def sync_dirs(self, kinds) -> None:
        """Make the names of files written with sync_dir=False durable: one fsync per directory."""
        for kind in dict.fromkeys(kinds):
            _fsync_dir(self.root / kind)

    def read(self, kind: str, sha: str) -> bytes:
        return self.path(kind, sha).read_bytes()

    def remove(self, kind: str, sha: str) -> None:
        try:
            self.path(kind, sha).unlink()
        except FileNotFoundError:
            pass

    def write_arrays(self, kind: str, arrays: dict, sync_dir: bool = True) -> str:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return self.write(kind, buf.getvalue(), sync_dir)

    def read_arrays(self, kind: str, sha: str) -> dict:
        with np.load(self.path(kind, sha), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
