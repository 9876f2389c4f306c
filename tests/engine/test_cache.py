"""The kernels' cache: one directory per engine build, under $NUMBA_CACHE_DIR or the user's cache directory."""

import json
import os
import shutil
import subprocess
import sys

from fusetrain.engine import cache

PROBE = """
import json
from fusetrain.engine import cache
from fusetrain.engine.kernels.blas import gemm_plan
gemm_plan(128, 512, 784)  # compiles (or loads) one small kernel
print(json.dumps({"dir": str(cache.cache_dir()), "digest": cache.source_digest()}))
"""


def probe(env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(extra)
    return env


def test_default_is_the_user_cache_dir_one_folder_per_build(tmp_path):
    got = probe(clean_env(XDG_CACHE_HOME=str(tmp_path)))
    expect = tmp_path / "fusetrain" / "numba" / f"engine-{got['digest']}"
    assert got["dir"] == str(expect)
    assert got["digest"] == cache.source_digest()
    # The kernel landed there, and nowhere in the source tree's __pycache__.
    assert list(expect.glob("kernels_*/blas.gemm_plan-*.nbi")), sorted(p.name for p in expect.rglob("*"))


def test_numba_cache_dir_moves_the_base(tmp_path):
    got = probe(clean_env(NUMBA_CACHE_DIR=str(tmp_path / "nc"), XDG_CACHE_HOME=str(tmp_path / "xdg")))
    assert got["dir"] == str(tmp_path / "nc" / f"engine-{got['digest']}")
    assert list((tmp_path / "nc").rglob("blas.gemm_plan-*.nbi"))
    assert not (tmp_path / "xdg").exists()


def test_any_change_to_any_engine_source_names_a_new_directory(tmp_path):
    # Numba alone would check a kernel against its own file only: a change in blas.py would
    # leave epochs.py's cached run_epochs (which inlines it) in use. The digest covers all.
    root = tmp_path / "engine"
    shutil.copytree(cache.ENGINE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    before = cache.source_digest(root)
    assert before == cache.source_digest()
    blas = root / "kernels" / "blas.py"
    text = blas.read_text()
    blas.write_text(text.replace("MAX_BLOCKS = ", "MAX_BLOCKS = 1 * ", 1))
    assert cache.source_digest(root) != before
    blas.write_text(text)
    assert cache.source_digest(root) == before
    (root / "kernels" / "new_kernel.py").write_text("")
    assert cache.source_digest(root) != before


WARM = """
import json, sys
from fusetrain.engine.kernels.epochs import EPOCH_LOOPS, loops_compiled
from fusetrain.engine.warm import ensure_compiled
print("ready", flush=True)
sys.stdin.readline()                     # both processes start compiling at the same moment
seconds = ensure_compiled("float32", (True, True))     # one path: tiny networks, plain SGD
print(json.dumps({"misses": loops_compiled(),
                  "hits": sum(sum(d.stats.cache_hits.values()) for d in EPOCH_LOOPS.values()),
                  "seconds": seconds}))
"""


def test_processes_starting_together_compile_once(tmp_path):
    # Two workers of a server starting with an empty cache: one compiles, the other waits for
    # it and loads the kernels from the cache instead of compiling them a second time.
    env = clean_env(NUMBA_CACHE_DIR=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", WARM], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()[-2000:]
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            p.kill()
    runs = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert sorted(r["misses"] == 0 for r in runs) == [False, True], runs
    loaded = next(r for r in runs if r["misses"] == 0)
    assert loaded["hits"] >= 1


def test_warmup_says_what_it_does(tmp_path):
    code = ("from fusetrain.engine import warmup\n"
            "warmup(dtypes=('float32',), progress=lambda line: print('>', line, flush=True), paths=[(True, True)])\n")
    lines = []
    for _ in range(2):   # an empty cache, then the same cache again
        out = subprocess.run([sys.executable, "-c", code], env=clean_env(NUMBA_CACHE_DIR=str(tmp_path)),
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        lines.append([line for line in out.stdout.splitlines() if line.startswith("> ")])
    first, again = lines
    what = "> float32 kernels (tiny networks, plain SGD)"     # the one family asked for
    assert first[0].startswith(f"{what}: loading from " + str(tmp_path))
    assert first[1].startswith(f"{what} ready in ") and first[1].endswith("s (compiled)")
    assert again[1].endswith("s (loaded from the cache)")


def test_a_job_waits_for_a_background_warm_up_and_counts_the_wait(tmp_path):
    # A worker warms float64 on a thread after it says ready; a float64 job that comes first
    # must wait for those kernels (not compile them a second time on its own) and report the
    # wait as compile seconds, not as training.
    code = """
import json, threading, time
import numpy as np
from fusetrain import engine
from fusetrain.engine import LayerSpec, ModelSpec, OptimizerSpec, TrainConfig
from fusetrain.engine.warm import ensure_compiled
warm = threading.Thread(target=ensure_compiled, args=("float64", (True, False)))   # tiny, Adam
warm.start()
time.sleep(0.5)
x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64); y = np.array([[0], [1], [1], [0]], dtype=np.float64)
model = ModelSpec(inputs=2, layers=[LayerSpec(3, "tanh"), LayerSpec(1, "sigmoid")], dtype="float64")
r = engine.train(model, OptimizerSpec(kind="adam"), TrainConfig(epochs=2), x, y)
warm.join()
from fusetrain.engine.kernels.epochs import loops_compiled
print(json.dumps({"compile": r.compile_seconds, "train": r.train_seconds, "misses": loops_compiled()}))
"""
    out = subprocess.run([sys.executable, "-c", code], env=clean_env(NUMBA_CACHE_DIR=str(tmp_path)),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["misses"] == 1          # one compile of the epoch loop, by the warm-up thread
    assert got["compile"] > got["train"]
