"""What the `fusetrain` commands share: the client from the options, overrides, exit codes, a result's lines."""

from __future__ import annotations

from . import jobfiles, output as out
from .client import Client
from .types import Job

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


def show_progress(args) -> bool:
    return not args.json and not args.no_progress


def job_failed(args, job: Job) -> int:
    if args.json:
        out.print_json(job.to_dict())
    else:
        why = f" ({job.failure_reason})" if job.failure_reason else ""
        print(f"job {job.id} {job.state}{why}" + (f": {job.message}" if job.message else ""))
    return EXIT_JOB_FAILED


def print_result(result) -> None:
    t = result.timings
    queued = f", queued {out.seconds(t['queued'])}" if t.get("queued") else ""
    print(f"job {result.job_id} {result.state}: {result.epochs_run} epochs ({result.stop_reason.lower()}), "
          f"training {out.seconds(t['train'])}, compile {out.seconds(t['compile'])}{queued}")
    print(f"  final  {out.metrics_line(result.final)}")
    shapes = " -> ".join([str(result.weights[0][0].shape[1])] + [f"{w.shape[0]} {act}" for (w, _), (act, _) in
                                                                  zip(result.weights, result.activations)])
    norm = f", inputs {result.normalization.kind}" if result.normalization is not None else ""
    print(f"  model  {shapes} ({result.dtype}{norm}); weights sha256 {result.weights_sha256[:16]}")
