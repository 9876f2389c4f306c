"""Where the engine's compiled kernels are cached: one directory per engine build, shared by every entry point.

Numba checks a cached function against its own source file only, so a change in a file it
calls (dense.py under epochs.py) would load stale machine code. Here every kernel of the
engine is cached under a directory named by a digest of all the engine's sources and of the
compiler stack (Python, NumPy, Numba, llvmlite): any change anywhere gives a new directory and
a clean compile, never a wrong load. Numba keeps apart the code of different CPUs inside it.

The base directory is $NUMBA_CACHE_DIR when set, else the user's cache directory
($XDG_CACHE_HOME or ~/.cache) + /fusetrain/numba: the command line, `fusetrain serve` and its
workers, Ray tasks, asv and the tests all share it.
"""

from __future__ import annotations

import hashlib
import os
import platform
from functools import lru_cache
from pathlib import Path

import llvmlite
import numba
import numpy as np
from numba.core import caching

ENGINE_ROOT = Path(__file__).resolve().parent
# Subdirectory of cache_dir() holding generated kernel sources (tinygen.py), cached beside them.
GENERATED = "tiny"


def base_dir() -> Path:
    """$NUMBA_CACHE_DIR, else $XDG_CACHE_HOME/fusetrain/numba, else ~/.cache/fusetrain/numba."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "fusetrain" / "numba"


def source_digest(root: Path = ENGINE_ROOT) -> str:
    """16 hex digits over every .py file under `root` (path and bytes) and the compiler stack."""
    h = hashlib.sha256()
    for part in (platform.python_version(), np.__version__, numba.__version__, llvmlite.__version__):
        h.update(part.encode() + b"\0")
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@lru_cache(maxsize=None)
def cache_dir() -> Path:
    """The directory this engine build caches its kernels in (base_dir() / engine-<digest>)."""
    return base_dir() / f"engine-{source_digest()}"


def _inside(py_file, root: Path) -> bool:
    try:
        Path(py_file).resolve().relative_to(root.resolve())
        return True
    except (ValueError, OSError):
        return False


class EngineCacheLocator(caching.UserProvidedCacheLocator):
    """Numba's cache locator for the engine's own files: cache_dir(), whatever NUMBA_CACHE_DIR says.

    Generated sources (cache_dir()/GENERATED/*.py, tinygen.py) are cached in their own directory,
    beside the file: the build directory and the file name (a digest of the architecture) decide.
    """

    def __init__(self, py_func, py_file):
        super().__init__(py_func, py_file)
        if _inside(py_file, cache_dir() / GENERATED):
            self._cache_path = str(Path(py_file).resolve().parent)
        else:
            self._cache_path = str(cache_dir() / self.get_suitable_cache_subpath(py_file))

    @classmethod
    def from_function(cls, py_func, py_file):
        if not (_inside(py_file, ENGINE_ROOT) or _inside(py_file, cache_dir() / GENERATED)):
            return None  # not the engine's: Numba's own locators decide
        return caching._SourceFileBackedLocatorMixin.from_function.__func__(cls, py_func, py_file)


def install() -> None:
    """Put EngineCacheLocator first among Numba's locators (before any engine kernel is decorated)."""
    locators = caching.CacheImpl._locator_classes
    if EngineCacheLocator not in locators:
        locators.insert(0, EngineCacheLocator)
