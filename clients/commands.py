"""What each `fusetrain` sub-command does (cli.py builds the parser and maps errors to exit codes).

Every command writes human output by default (tables on stdout, progress bars on stderr) and
JSON with --json. Each returns its exit code. This module holds the job commands (train,
submit, sweep, jobs, status, watch, cancel, delete); resultcmds.py result and predict;
servercmds.py datasets and info. All are reachable from here.
"""

from __future__ import annotations

import json
import statistics
import sys

from google.protobuf import json_format

from fusetrain.wire.metrics import higher_is_better

from . import errors, jobfiles, output as out
from .cmdutil import (EXIT_JOB_FAILED, EXIT_OK, client_of, job_failed, overrides_of, print_result,  # noqa: F401
                      resolve_job_id, show_progress)
from .resultcmds import predict, result  # noqa: F401 -- the parser finds every command here
from .servercmds import datasets_delete, datasets_list, datasets_show, datasets_upload, info  # noqa: F401
from .types import event_to_dict

# ------------------------------------------------------------------------------------- train

DATA_SUFFIXES = (".csv", ".tsv", ".txt", ".npy", ".npz", ".gz", ".idx", ".ubyte")


def check_job_file(path) -> None:
    """`train` and `submit` take job files; a data file given instead is named as one."""
    name = str(path).lower()
    if name.endswith(DATA_SUFFIXES) or "-idx" in name:
        raise errors.SpecError(
            f"{path} is a data file, and train takes a job file (JSON or YAML: model, optimizer, training, "
            f"data). Name the data in the job file, `data: {{train: {{file: {{path: {path}}}}}}}` (see "
            f"examples/jobs/iris.yaml), or upload it with `fusetrain datasets upload {path}`")


def train(args) -> int:
    check_job_file(args.file)
    overrides = overrides_of(args)
    if args.repeats and not args.folds:
        raise errors.SpecError("--repeats needs --folds (repeated k-fold cross-validation)")
    if args.folds:
        return _sweep_run(args, jobfiles.Sweep(*jobfiles.load_spec(args.file, overrides)), folds=args.folds,
                          repeats=args.repeats)
    if args.local:
        from .local import train_local
        try:
            result = train_local(args.file, progress=show_progress(args), threads=args.threads, overrides=overrides)
        except errors.JobFailed as exc:
            return job_failed(args, exc.job)
    else:
        with client_of(args) as c:
            msg = c.prepare(args.file, overrides=overrides)
            job = c.submit(msg)
            try:
                job = c.wait(job.id, progress=show_progress(args))
            except KeyboardInterrupt:
                return _interrupted(c, job)
            if job.state != "SUCCEEDED":
                return job_failed(args, job)
            result = c.result(job.id, spec=msg)
    saved = result.save(args.output) if args.output else None
    if args.json:
        out.print_json({**result.summary(), **({"saved": str(saved)} if saved else {})})
        return EXIT_OK
    print_result(result)
    if saved:
        print(f"  saved {saved}")
    return EXIT_OK


def _interrupted(c, job) -> int:
    """Ctrl-C while a job trains: cancel it, and say which job and where it stands."""
    try:
        job = c.cancel(job.id)
        now = f"{job.state}" + (f": {job.message}" if job.message else "")
    except (errors.FusetrainError, KeyboardInterrupt) as exc:
        now = f"not cancelled ({exc}); `fusetrain cancel {job.id}` cancels it"
    print(f"\ninterrupted: job {job.id} {now}; `fusetrain status {job.id}` follows it", file=sys.stderr)
    return 130


# ------------------------------------------------------------------------------------ submit

def submit(args) -> int:
    for path in args.files:
        check_job_file(path)
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
                jobs = [c.wait(jobs[0].id, progress=show_progress(args))]
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
    sw = jobfiles.load_sweep(args.file, overrides_of(args), args.folds, args.repeats)
    return _sweep_run(args, sw)


def _sweep_run(args, sw: jobfiles.Sweep, folds: int = 0, repeats: int = 0) -> int:
    if repeats and not folds:
        raise errors.SpecError("--repeats needs --folds (repeated k-fold cross-validation)")
    if folds:
        jobfiles.add_folds(sw, folds, repeats=repeats or 1)
    if getattr(args, "local", False):
        raise errors.SpecError("sweeps and --folds run on a server; --local trains one job")
    for note in sw.notes:
        print(f"note: {note}", file=sys.stderr)
    metric = getattr(args, "sort", None) or sw.sort
    with client_of(args) as c:
        batch = c.submit_sweep(sw)
        if sw.search is not None:
            return _search_report(args, c, batch)
        if not args.json:
            axes = " x ".join(f"{name} ({len(v)})" for name, v in sw.axes) or "no grid"
            print(f"batch {batch.id}: {len(batch.jobs)} jobs ({axes})", flush=True)
        jobs = c.wait_batch(batch, progress=show_progress(args))
        rows = []
        for job, combo in zip(jobs, batch.overrides):
            final, timings = {}, {}
            if job.has_result:
                r = c.result(job.id)
                final, timings = r.final, r.timings
            rows.append({"job_id": job.id, "overrides": combo, "state": job.state, "epochs": job.epochs_done,
                         "final": final, "timings": timings, "message": job.message})
    metric = metric or _default_metric(rows)
    desc = higher_is_better(metric)
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
               "val_loss", "val_acc", "val_f1", "val_rmse", "val_r2", "train_ms"]
    table = []
    for i, r in enumerate(ranked, 1):
        f = r["final"]
        table.append([i, r["job_id"], *[_fmt(r["overrides"].get(n)) for n in names], r["state"], r["epochs"],
                      out.num(f.get("train_loss")), out.pct(f.get("train_accuracy")), out.num(f.get("val_loss")),
                      out.pct(f.get("val_accuracy")), out.pct(f.get("val_macro_f1")), out.num(f.get("val_rmse")),
                      out.num(f.get("val_r2")),
                      "" if r["timings"].get("train") is None else f"{1e3 * r['timings']['train']:.1f}"])
    out.table(f"results, sorted by {metric}", columns, table)
    for entry in cv:
        print(cv_line(entry, sw.folds, metric, sw.repeats))
    if failed:
        print(f"{failed} of {len(rows)} jobs did not succeed")
    return EXIT_JOB_FAILED if failed else EXIT_OK


def _search_report(args, c, batch) -> int:
    """Wait for a search job; print its candidates sorted by the metric, and the winner."""
    from .searchspec import candidate_rows

    job = batch.jobs[0]
    s = job.proto.spec.search
    names = [p.field for p in s.params]
    if not args.json:
        print(f"batch {batch.id}: search job {job.id} ({s.kind}, {s.candidates} candidates, up to "
              f"{s.max_epochs} epochs each)", flush=True)
    job = c.wait_batch(batch, progress=show_progress(args))[0]
    if not job.has_result:
        print(f"search job {job.id} {job.state}: {job.message}", file=sys.stderr)
        return EXIT_JOB_FAILED
    r = c.result(job.id)
    table = r.search
    rows = candidate_rows(table)
    if args.json:
        out.print_json({"batch_id": batch.id, "job_id": job.id, "kind": table.kind, "metric": table.metric,
                        "winner": table.winner, "model_epochs": table.model_epochs,
                        "winner_spec": json_format.MessageToDict(table.winner_spec), "final": r.final,
                        "candidates": rows})
        return EXIT_OK if job.state == "SUCCEEDED" else EXIT_JOB_FAILED
    fmt = out.pct if "accuracy" in table.metric else out.num
    columns = ["#", "candidate", *[_short(n) for n in names], "epochs", table.metric, "rungs"]
    lines = [[i, row["index"], *[_fmt(row["params"].get(n)) for n in names], row["epochs"],
              "diverged" if row["diverged"] else fmt(row["value"]),
              " ".join(fmt(g["value"]) if g["value"] is not None else "nan" for g in row["rungs"])]
             for i, row in enumerate(rows, 1)]
    out.table(f"{table.kind} search, sorted by {table.metric}", columns, lines)
    print(f"winner: candidate {table.winner} ({table.metric} {fmt(table.value)} after "
          f"{table.winner_spec.training.epochs} epochs); {table.model_epochs} model-epochs in all; "
          f"its weights are job {job.id}'s result, and its spec (JobResult.search.winner_spec) trained "
          f"alone gives the same weights bit for bit")
    return EXIT_OK if job.state == "SUCCEEDED" else EXIT_JOB_FAILED


def cv_line(entry: dict, folds: int, metric: str, repeats: int = 1) -> str:
    """One grid point's cross-validated mean, spread and folds, as the sweep table ends."""
    where = ", ".join(f"{_short(k)}={_fmt(v)}" for k, v in entry["overrides"].items())
    scores = " ".join(out.metric(metric, v) for v in entry["folds"])
    times = f" x {repeats} repeats" if repeats > 1 else ""
    return (f"{folds}-fold cross-validation{times}{' (' + where + ')' if where else ''}: {metric} mean "
            f"{out.metric(metric, entry['mean'])} ± {out.metric(metric, entry['std'])}  (folds: {scores})")


def _default_metric(rows: list) -> str:
    for key in ("val_accuracy", "train_accuracy", "val_loss"):
        if any(r["final"].get(key) is not None for r in rows):
            return key
    return "train_loss"


def _cross_validation(rows: list, sw, metric: str) -> list:
    groups: dict = {}
    for r in rows:
        key = tuple((k, json.dumps(v)) for k, v in r["overrides"].items() if k not in jobfiles.CV_FIELDS)
        groups.setdefault(key, []).append(r)
    out_rows = []
    for key, members in groups.items():
        members.sort(key=lambda r: tuple(r["overrides"].get(f, 0) for f in jobfiles.CV_FIELDS))
        values = [r["final"].get(metric) for r in members]
        if any(v is None for v in values):
            continue
        out_rows.append({"overrides": {k: json.loads(v) for k, v in key}, "metric": metric, "folds": values,
                         "mean": statistics.fmean(values), "std": statistics.pstdev(values)})
    out_rows.sort(key=lambda e: e["mean"], reverse=higher_is_better(metric))
    return out_rows


def _short(name: str) -> str:
    return {"data.cross_validation.fold": "fold", "data.cross_validation.repeat": "repeat",
            "optimizer.learning_rate": "lr"}.get(name, name.split(".")[-1])


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
        job = c.job(resolve_job_id(c, args.job_id))
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
        job = c.job(resolve_job_id(c, args.job_id))
        if args.json:
            for event in c.watch(job.id, after=args.after):
                out.print_json(event_to_dict(event), lines=True)
        else:
            c.wait(job.id, progress=not args.no_progress)
        job = c.job(job.id)
    if not args.json:
        why = f" ({job.failure_reason})" if job.failure_reason else ""
        print(f"job {job.id} {job.state}{why}" + (f": {job.message}" if job.message else "")
              + (f"  {out.metrics_line(job.latest)}" if job.latest else ""))
    return EXIT_OK if job.state == "SUCCEEDED" else EXIT_JOB_FAILED


def cancel(args) -> int:
    found = []
    with client_of(args) as c:
        for text in args.job_ids:
            before = c.job(resolve_job_id(c, text))
            if before.done:                 # CancelJob answers a finished job unchanged
                found.append((before, False))
            else:
                found.append((c.cancel(before.id, force=args.force), True))
    if args.json:
        out.print_json([{**j.to_dict(), "cancelled": did} for j, did in found])
    else:
        for j, did in found:
            if did:
                print(f"job {j.id} {j.state}" + (f": {j.message}" if j.message else ""))
            else:
                print(f"job {j.id} already {j.state}: nothing to cancel")
    return EXIT_OK


def delete(args) -> int:
    deleted = []
    with client_of(args) as c:
        for text in args.job_ids:
            job_id = resolve_job_id(c, text)
            c.delete(job_id)
            deleted.append(job_id)
            if not args.json:
                print(f"job {job_id} deleted")
    if args.json:
        out.print_json({"deleted": deleted})
    return EXIT_OK
