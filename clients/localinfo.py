"""What `fusetrain info` says about this machine, no server asked: kernel cache, threads, versions, BLAS.

Nothing here compiles. Which dtypes the cache holds is read from Numba's index files of the
engine's epoch loops and predict kernel: an entry counts when it was written by this Numba, for
this CPU, from the source file as it is now (the directory already names the engine build), i.e.
when a run would load it. The engine (and so Numba) is imported only inside these functions:
the rest of the client needs neither; importing it makes the (empty) cache directories, as
every use of the engine does.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

DTYPES = ("float32", "float64")


def cache_base_source() -> str:
    """What chose the cache's base directory, in engine/cache.py's order."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return "NUMBA_CACHE_DIR"
    return "XDG_CACHE_HOME" if os.environ.get("XDG_CACHE_HOME") else "default"


def _loadable_entries(folder: Path, sources: Path):
    """(function name, first array argument's dtype) of every entry of the Numba index files in `folder`
    that this process would load: written by this Numba, for this CPU, from the source file as it is now
    (Numba's stamp of a source file: the sha256 of its bytes, or in older Numba its mtime and size)."""
    import hashlib
    import pickle

    import numba
    from numba.core import types
    from numba.core.registry import cpu_target

    magic = cpu_target.target_context.codegen().magic_tuple()
    for index in sorted(folder.glob("*.nbi")):
        module, _, rest = index.name.partition(".")
        source = sources / f"{module}.py"
        try:
            stat = source.stat()
            stamps = (hashlib.sha256(source.read_bytes()).digest(), (stat.st_mtime, stat.st_size))
            with open(index, "rb") as f:
                version = pickle.load(f)
                stamp, overloads = pickle.loads(f.read())
        except Exception:  # noqa: BLE001 -- gone, half-written or of another Numba: not loadable
            continue
        if version != numba.__version__ or stamp not in stamps:
            continue
        for key in overloads:
            arrays = [t for t in key[0] if isinstance(t, types.Array)]
            if key[1] == magic and arrays:
                yield module + "." + rest.split("-")[0], str(arrays[0].dtype)


def cached_kernels(folder: Path) -> dict[str, dict]:
    """Per dtype: the engine's epoch loops and predict kernel that `folder` (a cache_dir()) holds in a form
    a run here would load; "compiled" when predict and at least one epoch loop are there."""
    from numba.core.caching import _CacheLocator

    from fusetrain.engine.cache import ENGINE_ROOT

    sources = ENGINE_ROOT / "kernels"
    found = {dtype: set() for dtype in DTYPES}
    for name, dtype in _loadable_entries(folder / _CacheLocator.get_suitable_cache_subpath(str(sources / "x.py")),
                                         sources):
        if dtype in found and name.startswith(("epochs.run_epochs", "epochs.predict_rows")):
            found[dtype].add(name.split(".", 1)[1])
    return {dtype: {"compiled": "predict_rows" in names and any(n.startswith("run_epochs") for n in names),
                    "kernels": sorted(names)} for dtype, names in found.items()}


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
                         "dtypes": cached_kernels(folder)},
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
    for dtype, state in k["dtypes"].items():
        loops = sum(name.startswith("run_epochs") for name in state["kernels"])
        print(f"  {dtype:11} " + (f"compiled: {loops} epoch loop(s) and predict cached for this CPU (they load in well "
                                   f"under a second)" if state["compiled"] else
                                   "not compiled (the first use compiles it: tens of seconds on two cores)"))
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
