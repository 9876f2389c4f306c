"""What the `fusetrain` commands share: the client from the options, overrides, exit codes, a result's lines."""

from __future__ import annotations

import grpc

from . import errors, jobfiles, output as out
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
    return jobfiles.Overrides(pairs, origin="--set")


JOB_ID_LENGTH = 20          # the server's job ids: 20 hex digits
DATASET_ID_LENGTH = 64      # sha256, hex


def _unique(kind: str, text: str, matches: list) -> str:
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise errors.NotFound(grpc.StatusCode.NOT_FOUND, f"no {kind} id starts with {text!r}")
    shown = ", ".join(sorted(matches)[:5]) + (", ..." if len(matches) > 5 else "")
    raise errors.SpecError(f"{kind} id prefix {text!r} is ambiguous: {len(matches)} {kind}s match ({shown}); "
                           f"give more characters")


def resolve_job_id(c: Client, text: str) -> str:
    """A job id from the id or a unique prefix of it (`fusetrain status 77c3`)."""
    text = text.strip()
    if len(text) >= JOB_ID_LENGTH:
        return text
    if not text:
        raise errors.SpecError("the job id is empty")
    return _unique("job", text, [j.id for j in c.jobs() if j.id.startswith(text)])


def resolve_dataset_id(c: Client, text: str) -> str:
    """A dataset id from the id or a unique prefix of it, among the caller's datasets."""
    text = text.strip()
    if len(text) >= DATASET_ID_LENGTH:
        return text
    if not text:
        raise errors.SpecError("the dataset id is empty")
    return _unique("dataset", text, [d.id for d in list_datasets(c, text)])


def list_datasets(c: Client, prefix: str = "") -> list:
    """The caller's datasets (ListDatasets), newest first."""
    from fusetrain.v1 import service_pb2 as pb
    try:
        return list(c._call("ListDatasets", pb.ListDatasetsRequest(id_prefix=prefix)).datasets)
    except errors.RpcError as exc:
        # A server without the method answers UNIMPLEMENTED (or INTERNAL, through its error interceptor).
        if exc.code_name == "UNIMPLEMENTED" or (exc.code_name == "INTERNAL" and "ListDatasets" in exc.details):
            raise errors.FailedPrecondition(grpc.StatusCode.FAILED_PRECONDITION, "this server cannot list datasets (it has no "
                                                      "ListDatasets); give whole dataset ids") from None
        raise


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
    for key, which in (("train_confusion", "training"), ("val_confusion", "validation")):
        if result.final.get(key) is not None:
            print(f"  confusion matrix, {which} rows:")
            for line in out.confusion_lines(result.final[key], result.class_names):
                print(f"    {line}")
