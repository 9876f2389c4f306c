"""The worker side of the comparison: what `compare.py --worker NAME` does with its job file."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from compare_shapes import Shape, evaluate, load
from peers import load as load_peer

OPTIMIZER_PEERS = ("fusetrain", "baseline", "torch")


def _set_affinity(threads: int) -> None:
    """Pin the worker to `threads` cores when fewer than all are asked for (every library obeys)."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if cores and threads < len(cores):
        os.sched_setaffinity(0, cores[:threads])


def _train_row(peer, shape: Shape, path: str, threads: int, optimizer: str) -> dict:
    data, layers = load(Path(path))
    try:
        out = peer.train(shape, data, layers, threads, optimizer)
    except Exception as exc:  # a peer failing on one shape must not sink the whole comparison
        return {"error": f"{type(exc).__name__}: {exc}"}
    weights = out.pop("weights")
    out.update(evaluate(shape, weights, data["x"], data["y"]))
    out["samples_per_s"] = out["samples"] / out["seconds"]
    out["gflops"] = out["samples_per_s"] * shape.flops_per_sample / 1e9
    return out


def _peer(name: str, job: dict):
    """The peer module for `name`, prepared; "baseline" is fusetrain's engine at the baseline revision."""
    if name == "baseline":
        # The engine exported at the baseline revision comes first on the path (fusetrain.engine).
        sys.path.insert(0, job["baseline"]["path"])
    peer = load_peer("fusetrain" if name == "baseline" else name)
    peer.prepare(job["threads"])
    return peer


def run_worker(name: str, job: dict) -> dict:
    threads = job["threads"]
    _set_affinity(threads)
    shapes = {n: Shape.from_dict(d) for n, d in job["shapes"].items()}
    if name == "limits":
        import compare_limits
        return compare_limits.measure(list(shapes.values()), threads)
    if name == "many":
        import compare_many
        return compare_many.measure(Shape.from_dict(job["many"]["shape"]), job["many"]["data"],
                                    job["many"]["models"], threads)
    if name == "probe":
        import compare_many
        return compare_many.probe(Shape.from_dict(job["probe"]["shape"]), job["probe"]["data"], threads)
    if name == "memory":
        import compare_memory
        (sname, shape), = shapes.items()
        return compare_memory.measure(_peer(job["library"], job), shape, job["data"][sname], threads)
    if name == "convergence":
        import compare_convergence
        return compare_convergence.measure(_peer(job["library"], job), shapes, job["data"], threads)

    peer = _peer(name, job)
    t0 = time.perf_counter()
    result = {"version": peer.version(), "shapes": {}, "optimizers": {}}
    result["import_seconds"] = time.perf_counter() - t0
    for sname, shape in shapes.items():
        result["shapes"][sname] = _train_row(peer, shape, job["data"][sname], threads, "sgd")
    opt_shape = job.get("optimizer_shape")
    if opt_shape and name in OPTIMIZER_PEERS:
        shape = Shape.from_dict(job["optimizer_shape"])
        for kind in peer.OPTIMIZERS:
            result["optimizers"][kind] = _train_row(peer, shape, job["optimizer_data"], threads, kind)
    import compare_limits
    result["blas"] = compare_limits.blas_info()
    return result
