"""What `fusetrain info` says about this machine, no server asked: kernel cache, threads, versions, BLAS.

Nothing here compiles. Which dtypes the cache holds is read from the Numba index files of the
engine's epoch loop and predict kernels: an entry counts when it was written for this engine
build, this source file's stamp, this Numba and this CPU, i.e. when a run would load it. The
engine (and so Numba) is imported only inside these functions: the rest of the client needs
neither; importing it makes the (empty) cache directory, as every use of the engine does.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Optional

DTYPES = ("float32", "float64")


def cache_base_source() -> str:
    """What chose the cache's base directory, in engine/cache.py's order."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return "NUMBA_CACHE_DIR"
    return "XDG_CACHE_HOME" if os.environ.get("XDG_CACHE_HOME") else "default"


def cached_dtypes() -> dict[str, Optional[bool]]:
    """{dtype: whether the cache holds this build's compiled epoch loop and predict for it on this CPU};
    None for every dtype when that cannot be read (the JIT is off, or Numba's cache changed)."""
    from fusetrain.engine.kernels.epochs import predict_rows, run_epochs

    found = {dtype: True for dtype in DTYPES}
    for kernel in (run_epochs, predict_rows):
        try:
            cache = kernel._cache
            codegen = kernel.targetctx.codegen()
            index = cache._cache_file._load_index()   # {} when absent, stale or of another Numba
            have = {str(key[0][0].dtype) for key in index if key == cache._index_key(key[0], codegen)}
        except Exception:  # noqa: BLE001 -- NUMBA_DISABLE_JIT=1 (no cache), Numba's internals moved, a bad index
            return {dtype: None for dtype in DTYPES}
        for dtype in DTYPES:
            found[dtype] = found[dtype] and dtype in have
    return found


def _version(name: str) -> str:
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def local_info() -> dict:
    """Everything `fusetrain info` prints without --server, as a JSON-ready dict."""
    import numba
    import numpy as np

    from fusetrain.engine import cache, config

    folder = cache.cache_dir()
    return {
        "kernel_cache": {"directory": str(folder), "base": str(cache.base_dir()), "base_from": cache_base_source(),
                         "compiled": cached_dtypes()},
        "threads": {"threading_layer": config.threading_layer(),
                    "threading_layer_setting": config.THREADING_LAYER,
                    "threading_layer_priority": list(numba.config.THREADING_LAYER_PRIORITY),
                    "numba_threads": int(numba.config.NUMBA_NUM_THREADS), "cores": config.cpu_count(),
                    "blas_threads": 1},
        "versions": {"fusetrain": _version("fusetrain"), "python": platform.python_version(),
                     "numpy": np.__version__, "numba": numba.__version__, "llvmlite": _version("llvmlite")},
        "blas": config.blas_kernel(),
    }


def print_local(doc: dict) -> None:
    """`fusetrain info`'s human output."""
    k, t, v, b = doc["kernel_cache"], doc["threads"], doc["versions"], doc["blas"]
    print(f"kernel cache  {k['directory']}")
    why = {"NUMBA_CACHE_DIR": "$NUMBA_CACHE_DIR", "XDG_CACHE_HOME": "$XDG_CACHE_HOME/fusetrain/numba"}
    print(f"              under {k['base']} ({why.get(k['base_from'], 'the default')}; one directory per engine "
          f"build; $NUMBA_CACHE_DIR or `fusetrain serve --kernel-cache DIR` moves it)")
    for dtype, state in k["compiled"].items():
        word = {True: "compiled (loads in well under a second)",
                False: "not compiled (the first use compiles it: tens of seconds on two cores)",
                None: "unknown (the JIT is off, or the cache index cannot be read)"}[state]
        print(f"  {dtype:11} {word}")
    setting = t["threading_layer_setting"]
    print(f"threads       Numba threading layer {t['threading_layer']} (setting {setting!r}, "
          f"priority {', '.join(t['threading_layer_priority'])}); {t['numba_threads']} Numba threads, "
          f"{t['cores']} cores; BLAS single-threaded inside the engine")
    print("versions      " + ", ".join(f"{name} {version}" for name, version in v.items()))
    print("BLAS          " + (f"{b.get('library')} {b.get('version')} ({b.get('architecture')} kernel)"
                              if b else "none found"))


def use_kernel_cache(path: Path) -> str:
    """`fusetrain serve --kernel-cache DIR`: make DIR (absolute) $NUMBA_CACHE_DIR for the server and the
    workers it spawns; before the engine is imported. A clear error when DIR cannot be a directory."""
    folder = Path(path).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--kernel-cache {path}: exists and is not a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--kernel-cache {path}: cannot create it ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"--kernel-cache {path}: not writable, so compiled kernels could not be kept")
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    return str(folder)
