"""What each `fusetrain` sub-command does (cli.py builds the parser and maps errors to exit codes).

Every command writes human output by default (tables on stdout, progress bars on stderr) and
JSON with --json. Each returns its exit code.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path
from typing import Optional

import numpy as np

from . import errors, jobfiles, loaders, output as out
from .client import Client
from .types import Job, event_to_dict

EXIT_OK, EXIT_JOB_FAILED = 0, 1


def client_of(args) -> Client:
    return Client(args.server, token=args.token, tls=args.tls or None, timeout=args.timeout,
                  cert=getattr(args, "tls_cert", None), key=getattr(args, "tls_key", None))


def overrides_of(args) -> dict:
    pairs = [jobfiles.parse_assignment(text) for text in getattr(args, "set", None) or []]
    labels = getattr(args, "label", None) or []
    for text in labels:
        key, _, value = text.partition("=")
        pairs.append((f"labels.{key}", value))
    return dict(pairs)


def _progress(args) -> bool:
    return not args.json and not args.no_progress


# ------------------------------------------------------------------------------------- train

def train(args) -> int:
    overrides = overrides_of(args)
    if args.folds:
        return _sweep_run(args, jobfiles.Sweep(*jobfiles.load_spec(args.file, overrides)), folds=args.folds)
    try:
        if args.local:
            from .local import train_local
            result = train_local(args.file, progress=_progress(args), threads=args.threads, overrides=overrides)
        else:
            with client_of(args) as c:
                result = c.train(args.file, progress=_progress(args), overrides=overrides)
    except errors.JobFailed as exc:
        return _job_failed(args, exc.job)
    saved = result.save(args.output) if args.output else None
    if args.json:
        out.print_json({**result.summary(), **({"saved": str(saved)} if saved else {})})
        return EXIT_OK
    _print_result(result)
    if saved:
        print(f"  saved {saved}")
    return EXIT_OK


def _job_failed(args, job: Job) -> int:
    if args.json:
        out.print_json(job.to_dict())
    else:
        why = f" ({job.failure_reason})" if job.failure_reason else ""
        print(f"job {job.id} {job.state}{why}" + (f": {job.message}" if job.message else ""))
    return EXIT_JOB_FAILED


def _print_result(result) -> None:
    t = result.timings
    queued = f", queued {out.seconds(t['queued'])}" if t.get("queued") else ""
    print(f"job {result.job_id} {result.state}: {result.epochs_run} epochs ({result.stop_reason.lower()}), "
          f"training {out.seconds(t['train'])}, compile {out.seconds(t['compile'])}{queued}")
    print(f"  final  {out.metrics_line(result.final)}")
    shapes = " -> ".join([str(result.weights[0][0].shape[1])] + [f"{w.shape[0]} {act}" for (w, _), (act, _) in
                                                                  zip(result.weights, result.activations)])
    norm = f", inputs {result.normalization.kind}" if result.normalization is not None else ""
    print(f"  model  {shapes} ({result.dtype}{norm}); weights sha256 {result.weights_sha256[:16]}")


# ------------------------------------------------------------------------------------ submit

def submit(args) -> int:
    overrides = overrides_of(args)
    jobs = []
    with client_of(args) as c:
        for path in args.files:
            job = c.submit(path, overrides=overrides, request_id=args.request_id or None)
            jobs.append(job)
            if not args.json:
                print(f"{path}: job {job.id} {job.state}", flush=True)
        if args.wait:
            if len(jobs) == 1:
                jobs = [c.wait(jobs[0].id, progress=_progress(args))]
            else:
                jobs = [c.wait(j.id) for j in jobs]
            if not args.json:
                for job in jobs:
                    why = f" ({job.failure_reason}: {job.message})" if job.failure_reason else ""
                    print(f"job {job.id} {job.state}{why}  {out.metrics_line(job.latest)}")
    if args.json:
        out.print_json([j.to_dict() for j in jobs])
    return EXIT_JOB_FAILED if args.wait and any(j.state != "SUCCEEDED" for j in jobs) else EXIT_OK


# ------------------------------------------------------------------------------------- sweep

def sweep(args) -> int:
    sw = jobfiles.load_sweep(args.file, overrides_of(args), args.folds)
    return _sweep_run(args, sw)


def _sweep_run(args, sw: jobfiles.Sweep, folds: int = 0) -> int:
    if folds:
        sw.base.data.cross_validation.folds = folds
        sw.axes.append((jobfiles.FOLD_FIELD, list(range(folds))))
        sw.folds = folds
    if getattr(args, "local", False):
        raise errors.SpecError("sweeps and --folds run on a server; --local trains one job")
    metric = getattr(args, "sort", None) or sw.sort
    with client_of(args) as c:
        batch = c.submit_sweep(sw)
        if not args.json:
            axes = " x ".join(f"{name} ({len(v)})" for name, v in sw.axes) or "no grid"
            print(f"batch {batch.id}: {len(batch.jobs)} jobs ({axes})", flush=True)
        jobs = c.wait_batch(batch, progress=_progress(args))
        rows = []
        for job, combo in zip(jobs, batch.overrides):
            final, timings = {}, {}
            if job.has_result:
                r = c.result(job.id)
                final, timings = r.final, r.timings
            rows.append({"job_id": job.id, "overrides": combo, "state": job.state, "epochs": job.epochs_done,
                         "final": final, "timings": timings, "message": job.message})
    metric = metric or _default_metric(rows)
    desc = "accuracy" in metric
    ok = [r for r in rows if r["final"].get(metric) is not None]
    ok.sort(key=lambda r: r["final"][metric], reverse=desc)
    ranked = ok + [r for r in rows if r["final"].get(metric) is None]
    cv = _cross_validation(ranked, sw, metric) if sw.folds else []
    failed = sum(r["state"] != "SUCCEEDED" for r in rows)
    if args.json:
        out.print_json({"batch_id": batch.id, "sort": metric, "jobs": ranked, "cross_validation": cv})
        return EXIT_JOB_FAILED if failed else EXIT_OK
    names = [name for name, _ in sw.axes]
    columns = ["#", "job", *[_short(n) for n in names], "state", "epochs", "train_loss", "train_acc",
               "val_loss", "val_acc", "train_ms"]
    table = []
    for i, r in enumerate(ranked, 1):
        f = r["final"]
        table.append([i, r["job_id"], *[_fmt(r["overrides"].get(n)) for n in names], r["state"], r["epochs"],
                      out.num(f.get("train_loss")), out.pct(f.get("train_accuracy")), out.num(f.get("val_loss")),
                      out.pct(f.get("val_accuracy")),
                      "" if r["timings"].get("train") is None else f"{1e3 * r['timings']['train']:.1f}"])
    out.table(f"results, sorted by {metric}", columns, table)
    for entry in cv:
        where = ", ".join(f"{_short(k)}={_fmt(v)}" for k, v in entry["overrides"].items())
        scores = " ".join(out.pct(v) if "accuracy" in metric else out.num(v) for v in entry["folds"])
        mean = out.pct(entry["mean"]) if "accuracy" in metric else out.num(entry["mean"])
        std = out.pct(entry["std"]) if "accuracy" in metric else out.num(entry["std"])
        print(f"{sw.folds}-fold cross-validation{' (' + where + ')' if where else ''}: {metric} mean {mean} "
              f"± {std}  (folds: {scores})")
    if failed:
        print(f"{failed} of {len(rows)} jobs did not succeed")
    return EXIT_JOB_FAILED if failed else EXIT_OK


def _default_metric(rows: list) -> str:
    for key in ("val_accuracy", "train_accuracy", "val_loss"):
        if any(r["final"].get(key) is not None for r in rows):
            return key
    return "train_loss"


def _cross_validation(rows: list, sw, metric: str) -> list:
    groups: dict = {}
    for r in rows:
        key = tuple((k, json.dumps(v)) for k, v in r["overrides"].items() if k != jobfiles.FOLD_FIELD)
        groups.setdefault(key, []).append(r)
    out_rows = []
    for key, members in groups.items():
        members.sort(key=lambda r: r["overrides"][jobfiles.FOLD_FIELD])
        values = [r["final"].get(metric) for r in members]
        if any(v is None for v in values):
            continue
        out_rows.append({"overrides": {k: json.loads(v) for k, v in key}, "metric": metric, "folds": values,
                         "mean": statistics.fmean(values), "std": statistics.pstdev(values)})
    out_rows.sort(key=lambda e: e["mean"], reverse="accuracy" in metric)
    return out_rows


def _short(name: str) -> str:
    return {"data.cross_validation.fold": "fold", "optimizer.learning_rate": "lr"}.get(name, name.split(".")[-1])


def _fmt(value) -> str:
    return "" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))


# --------------------------------------------------------------------------- jobs and status

def jobs(args) -> int:
    labels = dict(text.partition("=")[::2] for text in args.label or [])
    with client_of(args) as c:
        found = list(c.jobs(states=args.state or (), labels=labels, batch_id=args.batch or "",
                            limit=None if args.all else args.limit))
    if args.json:
        out.print_json([j.to_dict() for j in found])
        return EXIT_OK
    rows = [[j.id, j.name, j.state, f"{j.epochs_done}/{j.epochs_total}", out.num(j.latest.get("train_loss")),
             out.pct(j.latest.get("train_accuracy")), out.pct(j.latest.get("val_accuracy")),
             j.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S") if j.created_at else "", j.batch_id]
            for j in found]
    out.table(None, ["job", "name", "state", "epochs", "loss", "acc", "val_acc", "created", "batch"], rows)
    if not found:
        print("no jobs")
    return EXIT_OK


def status(args) -> int:
    with client_of(args) as c:
        job = c.job(args.job_id)
    if args.json:
        out.print_json(job.to_dict())
        return EXIT_OK
    lines = [("job", job.id), ("name", job.name), ("state", job.state + (f" ({job.failure_reason})"
                                                                        if job.failure_reason else "")),
             ("message", job.message), ("epochs", f"{job.epochs_done}/{job.epochs_total}"),
             ("latest", out.metrics_line(job.latest)), ("attempt", job.attempt), ("batch", job.batch_id),
             ("labels", ", ".join(f"{k}={v}" for k, v in job.labels.items())),
             ("created", job.created_at), ("started", job.started_at), ("finished", job.finished_at),
             ("result", "yes" if job.has_result else "no")]
    for key, value in lines:
        if value not in ("", None):
            print(f"{key:9} {value}")
    return EXIT_OK


def watch(args) -> int:
    with client_of(args) as c:
        job = c.job(args.job_id)
        if args.json:
            for event in c.watch(args.job_id, after=args.after):
                out.print_json(event_to_dict(event), lines=True)
        else:
            c.wait(args.job_id, progress=not args.no_progress)
        job = c.job(args.job_id)
    if not args.json:
        why = f" ({job.failure_reason})" if job.failure_reason else ""
        print(f"job {job.id} {job.state}{why}" + (f": {job.message}" if job.message else "")
              + (f"  {out.metrics_line(job.latest)}" if job.latest else ""))
    return EXIT_OK if job.state == "SUCCEEDED" else EXIT_JOB_FAILED


def cancel(args) -> int:
    with client_of(args) as c:
        found = [c.cancel(job_id, force=args.force) for job_id in args.job_ids]
    if args.json:
        out.print_json([j.to_dict() for j in found])
    else:
        for j in found:
            print(f"job {j.id} {j.state}" + (f": {j.message}" if j.message else ""))
    return EXIT_OK


def delete(args) -> int:
    with client_of(args) as c:
        for job_id in args.job_ids:
            c.delete(job_id)
            if not args.json:
                print(f"job {job_id} deleted")
    if args.json:
        out.print_json({"deleted": args.job_ids})
    return EXIT_OK


# -------------------------------------------------------------------------- result, predict

def result(args) -> int:
    with client_of(args) as c:
        r = c.result(args.job_id)
        saved = r.save(args.output) if args.output else None
        check = _verify(c, r, Path(saved), args.verify, args) if saved and args.verify else None
    if args.json:
        extra = {"saved": str(saved)} if saved else {}
        if check:
            extra["verify"] = check
        if args.history:
            extra["history"] = r.history.to_list()
        out.print_json({**r.summary(), **extra})
    else:
        _print_result(r)
        if args.history:
            for row in r.history.to_list():
                print(f"  epoch {row['epoch']:5d}  {out.metrics_line(row)}")
        if saved:
            print(f"  saved {saved} ({Path(saved).suffix[1:]}: {len(r.weights)} layers"
                  f"{', with the input ' + r.normalization.kind if r.normalization else ''})")
        if check:
            print(f"  verify {check['runtime']} on {check['rows']} rows of {check['input']}: max |difference| "
                  f"from Predict {check['max_abs_diff']:.3g} (tolerance {check['tolerance']:g}): "
                  f"{'ok' if check['ok'] else 'MISMATCH'}")
    return EXIT_OK if not check or check["ok"] else EXIT_JOB_FAILED


def _verify(c: Client, r, path: Path, input_text: str, args) -> dict:
    """Run the saved model on INPUT (onnxruntime for .onnx, numpy for .npz/.safetensors) and compare
    with the server's Predict."""
    from . import export

    x, _ = _read_inputs(input_text, r.spec.model.inputs, args)
    want = c.predict(r.job_id, x)
    tol = 1e-5 if r.dtype == "float32" else 1e-8
    if path.suffix.lower() == ".onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise errors.FusetrainError("--verify of an .onnx file needs onnxruntime (pip install onnxruntime)") \
                from None
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {"x": np.asarray(x, dtype=r.dtype)})[0]
        runtime = f"onnxruntime {ort.__version__}"
    else:
        reader = export.load_npz if path.suffix.lower() == ".npz" else export.load_safetensors
        layers, norm, _ = reader(path)
        got = export.forward(layers, norm, np.asarray(x))
        runtime = "numpy"
    diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) if len(x) else 0.0
    return {"input": input_text, "rows": int(len(x)), "runtime": runtime, "max_abs_diff": diff, "tolerance": tol,
            "ok": diff <= tol}


def _read_inputs(text: str, inputs: int, args) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Rows to predict from a file or a JSON list, and their targets when the file has them."""
    if text.lstrip().startswith("["):
        try:
            x = np.asarray(json.loads(text), dtype=np.float64)
        except ValueError as exc:
            raise errors.SpecError(f"INPUT {text!r}: not a JSON list of rows: {exc}") from None
        return x.reshape(-1, inputs) if x.ndim == 1 else x, None
    path = Path(text)
    if not path.exists():
        raise errors.SpecError(f"INPUT {path}: not found")
    labels = getattr(args, "labels", None)
    target = getattr(args, "target", None)
    try:
        if path.suffix.lower() in (".csv", ".txt", ".tsv"):
            with open(path, newline="") as f:
                width = len(next(csv.reader(f), []))
            has_target = target is not None or width == inputs + 1
            d = loaders.load_csv(path, target=(-1 if target is None else target) if has_target else None)
        else:
            d = loaders.load(path)
        y = d.y
        if labels:
            y, _ = loaders.load_labels(labels)
    except loaders.LoadError as exc:
        raise errors.SpecError(str(exc)) from None
    return d.x, y


def predict(args) -> int:
    with client_of(args) as c:
        job = c.job(args.job_id)
        inputs = job.proto.spec.model.inputs
        x, y = _read_inputs(args.input, inputs, args)
        pred = c.predict(args.job_id, x)
    acc = _accuracy(pred, y) if y is not None and len(y) == len(pred) else None
    if args.output:
        path = Path(args.output)
        if path.suffix.lower() == ".npy":
            np.save(path, pred)
        else:
            np.savetxt(path, pred, delimiter=",", fmt="%.9g")
    if args.json:
        doc = {"job_id": job.id, "rows": int(len(pred)), "outputs": int(pred.shape[1])}
        if acc is not None:
            doc["accuracy"] = acc
        if args.output:
            doc["saved"] = str(args.output)
        else:
            doc["y"] = pred.tolist()
        out.print_json(doc)
        return EXIT_OK
    shown = pred[:args.rows]
    columns = ["row", *[f"y{j}" for j in range(pred.shape[1])]] + (["class"] if pred.shape[1] > 1 else [])
    rows = [[i, *[f"{v:.4f}" for v in r], *([int(np.argmax(r))] if pred.shape[1] > 1 else [])]
            for i, r in enumerate(shown)]
    out.table(None, columns, rows)
    if len(pred) > len(shown):
        print(f"... {len(pred) - len(shown)} more rows" + (f" (all in {args.output})" if args.output else
                                                          " (-o FILE writes them all)"))
    if acc is not None:
        print(f"accuracy {out.pct(acc)} on {len(pred)} rows")
    return EXIT_OK


def _accuracy(pred: np.ndarray, y: np.ndarray) -> Optional[float]:
    y = np.asarray(y, dtype=np.float64)
    if y.shape[1] != pred.shape[1]:
        return None
    if pred.shape[1] > 1:
        return float(np.mean(np.argmax(pred, axis=1) == np.argmax(y, axis=1)))
    return float(np.mean((pred[:, 0] > 0.5) == (y[:, 0] > 0.5)))


# --------------------------------------------------------------------------- datasets, info

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
    return _print_dataset(ds, args)


def datasets_show(args) -> int:
    with client_of(args) as c:
        return _print_dataset(c.dataset(args.dataset_id), args)


def datasets_delete(args) -> int:
    with client_of(args) as c:
        for dataset_id in args.dataset_ids:
            c.delete_dataset(dataset_id)
            if args.json:
                out.print_json({"id": dataset_id, "deleted": True})
            else:
                print(f"dataset {dataset_id} deleted")
    return EXIT_OK


def _print_dataset(ds, args) -> int:
    arrays = {a.name: {"dtype": a.dtype, "shape": list(a.shape)} for a in ds.arrays}
    if args.json:
        out.print_json({"id": ds.id, "name": ds.name, "size_bytes": ds.size_bytes, "arrays": arrays,
                        "already_present": ds.already_present})
        return EXIT_OK
    what = ", ".join(f"{k} {tuple(v['shape'])} {v['dtype']}" for k, v in arrays.items())
    print(f"dataset {ds.id}  {ds.name}  {ds.size_bytes:,} bytes  {what}"
          + ("  (already on the server: nothing sent)" if ds.already_present else ""))
    print(f'use it in a job file: "data": {{"train": {{"dataset_id": "{ds.id}"}}}}')
    return EXIT_OK


def info(args) -> int:
    from google.protobuf import json_format
    with client_of(args) as c:
        i = c.server_info()
    if args.json:
        out.print_json(json_format.MessageToDict(i, preserving_proto_field_name=True))
        return EXIT_OK
    print(f"fusetrain {i.version} at {c.address}: {i.workers} workers x {i.threads_per_worker} thread(s) "
          f"({i.executor})")
    for name in ("activations", "losses", "optimizers", "initializers", "schedules", "dtypes"):
        print(f"  {name:13} {', '.join(getattr(i, name))}")
    lim = json_format.MessageToDict(i.limits, preserving_proto_field_name=True)
    print("  limits        " + ", ".join(f"{k} {v}" for k, v in lim.items()))
    return EXIT_OK

