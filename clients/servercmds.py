"""`fusetrain datasets ...` and `fusetrain info`: uploaded datasets, and what a server or this machine runs.

`fusetrain info` alone describes this machine (localinfo.py: the kernel cache, threads, versions,
BLAS; it compiles nothing); with --server it asks that server: version, names, limits and how
far its workers' kernels have warmed up.
"""

from __future__ import annotations

from pathlib import Path

from . import errors, jobfiles, output as out
from .cmdutil import EXIT_OK, client_of, list_datasets, resolve_dataset_id


def datasets_upload(args) -> int:
    path = Path(args.path)
    with client_of(args) as c:
        if path.suffix.lower() == ".npz" and not args.labels:
            if not path.exists():
                raise errors.SpecError(f"{path}: not found")
            ds = c.upload_dataset(path, name=args.name or path.name)
        else:
            src = jobfiles.job_pb2.LocalFile(path=str(path), labels=args.labels or "",
                                             delimiter=args.delimiter or "")
            if args.target is not None:
                src.target = args.target
            if args.header is not None:
                src.header = args.header
            if args.one_hot is not None:
                src.one_hot = args.one_hot
            d = jobfiles.read_file_source(src, Path.cwd(), "dataset")
            ds = c.upload_dataset({"x": d.x, "y": d.y}, name=args.name or path.name)
            if d.classes and args.one_hot is None and not args.json:
                print(f"y: {len(d.classes)} classes ({', '.join(map(str, d.classes[:5]))}"
                      f"{', ...' if len(d.classes) > 5 else ''}) one-hot encoded into {len(d.classes)} columns; "
                      f"--no-one-hot keeps the numbers (a regression target)")
    return _print_dataset(ds, args)


def datasets_list(args) -> int:
    with client_of(args) as c:
        found = list_datasets(c)
    if args.json:
        out.print_json([_dataset_doc(ds) for ds in found])
        return EXIT_OK
    rows = [[ds.id[:16], ds.name, f"{ds.size_bytes:,}",
             ", ".join(f"{a.name} {tuple(a.shape)} {a.dtype}" for a in ds.arrays),
             ds.created_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") if ds.HasField("created_at") else ""]
            for ds in found]
    out.table(None, ["dataset", "name", "bytes", "arrays", "uploaded"], rows)
    if not found:
        print("no datasets")
    return EXIT_OK


def datasets_show(args) -> int:
    with client_of(args) as c:
        return _print_dataset(c.dataset(resolve_dataset_id(c, args.dataset_id)), args)


def datasets_delete(args) -> int:
    with client_of(args) as c:
        for text in args.dataset_ids:
            dataset_id = resolve_dataset_id(c, text)
            c.delete_dataset(dataset_id)
            if args.json:
                out.print_json({"id": dataset_id, "deleted": True})
            else:
                print(f"dataset {dataset_id} deleted")
    return EXIT_OK


def _dataset_doc(ds) -> dict:
    return {"id": ds.id, "name": ds.name, "size_bytes": ds.size_bytes,
            "arrays": {a.name: {"dtype": a.dtype, "shape": list(a.shape)} for a in ds.arrays},
            "already_present": ds.already_present}


def _print_dataset(ds, args) -> int:
    arrays = {a.name: {"dtype": a.dtype, "shape": list(a.shape)} for a in ds.arrays}
    if args.json:
        out.print_json(_dataset_doc(ds))
        return EXIT_OK
    what = ", ".join(f"{k} {tuple(v['shape'])} {v['dtype']}" for k, v in arrays.items())
    print(f"dataset {ds.id}  {ds.name}  {ds.size_bytes:,} bytes  {what}"
          + ("  (already on the server: nothing sent)" if ds.already_present else ""))
    print(f'use it in a job file: "data": {{"train": {{"dataset_id": "{ds.id}"}}}}')
    return EXIT_OK


def info(args) -> int:
    if args.server is None:
        return _local_info(args)
    with client_of(args) as c:
        i = c.server_info()
    kernels = [{"dtype": k.dtype, "state": k.state, "workers_ready": k.workers_ready, "seconds": k.seconds,
                "families_ready": k.families_ready, "families": k.families} for k in i.kernels]
    if args.json:
        out.print_json({**out.message_dict(i), "kernels": kernels})
        return EXIT_OK
    print(f"fusetrain {i.version} at {c.address}: {i.workers} workers x {i.threads_per_worker} thread(s) "
          f"({i.executor})")
    for name in ("activations", "losses", "optimizers", "initializers", "schedules", "dtypes"):
        print(f"  {name:13} {', '.join(getattr(i, name))}")
    lim = out.message_dict(i.limits)
    print("  limits        " + ", ".join(f"{k} {v}" for k, v in lim.items()))
    print("  kernels       " + ("; ".join(_kernel_line(k, i.workers) for k in kernels)
                                or f"not reported by the {i.executor} executor"))
    return EXIT_OK


def _kernel_line(k: dict, workers: int) -> str:
    if k["state"] == "ready":
        families = (f"{k['families_ready']} of {k['families']} kernel families, " if k.get("families") else "")
        return (f"{k['dtype']} ready in {k['workers_ready']} of {workers} workers ({families}"
                f"warm-up {k['seconds']:.1f} s)")
    if k["state"] == "compiling":
        return f"{k['dtype']} compiling or loading for {k['seconds']:.1f} s so far (ready in no worker yet)"
    return f"{k['dtype']} not started"


def _local_info(args) -> int:
    from .localinfo import local_info, print_local
    try:
        doc = local_info()
    except ImportError:                    # a client-only install: no engine, so no kernels here
        from . import errors
        raise errors.MissingExtra("this install has no engine (so no kernel cache): pip install "
                                  "'fusetrain[server]', or ask a server: fusetrain info --server ADDRESS",
                                  "server") from None
    if args.json:
        out.print_json(doc)
    else:
        print_local(doc)
    return EXIT_OK
