"""The `fusetrain` command line: the parser and the map from errors to exit codes.

One sub-command per `_add_<name>(sub)`; what each does is in commands.py (`serve`: serve.py).
Only `serve` (and `train --local`) import the service and the engine; the rest need grpcio,
protobuf, numpy and rich.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .serve import add_serve

# Exit codes (documented in `fusetrain --help` and docs/CLIENT.md).
EXIT_CODES = {
    0: "success",
    1: "a job failed or was cancelled (train, watch, submit --wait, sweep), or a --verify mismatch",
    2: "bad command line (unknown option, missing argument)",
    3: "bad input: a job, sweep or data file that cannot be read, or a spec the server refused "
       "(INVALID_ARGUMENT)",
    4: "no such job or dataset (NOT_FOUND)",
    5: "refused: the job's state or a server limit (FAILED_PRECONDITION, RESOURCE_EXHAUSTED, "
       "ALREADY_EXISTS, UNAUTHENTICATED)",
    6: "the server cannot be reached or is shutting down (UNAVAILABLE, DEADLINE_EXCEEDED)",
    7: "an unexpected server error (INTERNAL, UNKNOWN): a bug, please report it",
    130: "interrupted (Ctrl-C); a job started by `train` is cancelled",
}

MAIN_EPILOG = """examples:
  fusetrain serve                                    # the service on 127.0.0.1:50051 (make run)
  fusetrain train examples/jobs/xor.json             # submit, show progress, print the final metrics
  fusetrain train examples/jobs/iris.yaml -o iris.onnx
  fusetrain train examples/jobs/xor.json --local     # in this process, no server
  fusetrain sweep examples/sweeps/seeds_cv.yaml      # 5-fold cross-validation as one batch
  fusetrain jobs --state RUNNING
  fusetrain result JOB_ID -o model.onnx --verify ../shared/datasets/iris.csv
  fusetrain predict JOB_ID '[[0, 1], [1, 1]]'
  fusetrain status 77c3                              # a unique prefix of a job (or dataset) id will do

The server is --server HOST:PORT, or $FUSETRAIN_SERVER, or 127.0.0.1:50051.

exit codes:
""" + "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES.items())


class _Parser(argparse.ArgumentParser):
    """argparse, except that an unknown option is named even when a required argument is missing
    too (`fusetrain train --bogus` says "unrecognized arguments: --bogus", not "required: file")."""

    def parse_known_args(self, args=None, namespace=None):
        self._argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message):
        if message.startswith("the following arguments are required"):
            unknown = [a for a in getattr(self, "_argv", [])
                       if a.startswith("-") and len(a) > 1 and not _is_number(a)
                       and a.split("=", 1)[0] not in self._option_string_actions]
            if unknown:
                message = f"unrecognized arguments: {' '.join(unknown)}"
        super().error(message)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version as package_version
    try:
        return package_version("fusetrain")
    except PackageNotFoundError:
        return "unknown"


def _common() -> argparse.ArgumentParser:
    """Options every client command takes, before or after its arguments."""
    p = _Parser(add_help=False)
    g = p.add_argument_group("connection and output")
    g.add_argument("--server", default=None, metavar="HOST:PORT",
                   help="the service (default $FUSETRAIN_SERVER or 127.0.0.1:50051)")
    g.add_argument("--token", default=None, help="sent as 'authorization: Bearer TOKEN' (default $FUSETRAIN_TOKEN)")
    g.add_argument("--tls", nargs="?", const=True, default=None, metavar="CA.pem",
                   help="use TLS (with the system's roots, or this root certificate)")
    g.add_argument("--tls-cert", default=None, metavar="CERT.pem",
                   help="client certificate for a server that asks for one (with --tls-key)")
    g.add_argument("--tls-key", default=None, metavar="KEY.pem", help="the client certificate's key")
    g.add_argument("--timeout", type=float, default=30.0, help="deadline of each call in seconds (default 30)")
    g.add_argument("--json", action="store_true", help="machine-readable JSON on stdout instead of tables")
    return p


def _parser(sub, name: str, help_: str, examples: str, common, func) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_, description=help_, parents=[common],
                       epilog="examples:\n" + examples, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=func)
    return p


def _spec_options(p) -> None:
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="override a field of the job file (repeatable): training.epochs=20, "
                        "model.layers[0].units=16, data.train.file.path=my.csv")
    p.add_argument("--label", action="append", metavar="KEY=VALUE", help="add a label (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    from . import commands as c

    parser = _Parser(prog="fusetrain", description="Fast CPU training of MLPs, over gRPC.",
                     epilog=MAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"fusetrain {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common()

    add_serve(sub)

    p = _parser(sub, "train", "train a job file: submit it, show live progress, print the result", """\
  fusetrain train examples/jobs/xor.json
  fusetrain train examples/jobs/iris.yaml -o iris.onnx
  fusetrain train examples/jobs/seeds.yaml --folds 5      # k-fold cross-validation (a batch)
  fusetrain train examples/jobs/seeds.yaml --folds 5 --repeats 3   # repeated k-fold, 15 jobs
  fusetrain train examples/jobs/xor.json --local          # in this process, no server
  fusetrain train examples/jobs/mnist.yaml --set training.epochs=2 --json""", common, c.train)
    p.add_argument("file", type=Path, help="job file: JobSpec as JSON or YAML (not a data file: the job file "
                                           "names its data)")
    p.add_argument("--local", action="store_true", help="train in this process (needs the engine), no server")
    p.add_argument("--threads", type=int, default=None, help="threads for --local (default: all cores)")
    p.add_argument("--folds", type=int, default=0, metavar="K",
                   help="k-fold cross-validation: K jobs, one per held-out fold, as one batch (replaces the "
                        "file's training.validation_fraction); stratified for class targets")
    p.add_argument("--repeats", type=int, default=0, metavar="R",
                   help="with --folds: repeated k-fold, R shuffles of the rows (R x K jobs)")
    p.add_argument("--sort", default=None, help="with --folds: the metric the results table is sorted by")
    p.add_argument("-o", "--output", type=Path, help="save the model: .npz, .safetensors or .onnx")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _spec_options(p)

    p = _parser(sub, "submit", "queue job files and print their ids (--wait: until they end)", """\
  fusetrain submit examples/jobs/xor.json examples/jobs/iris.yaml
  fusetrain submit examples/jobs/xor.json --wait --json""", common, c.submit)
    p.add_argument("files", nargs="+", type=Path, help="job files (JSON or YAML)")
    p.add_argument("--request-id", default="", help="idempotency key (one file only)")
    p.add_argument("--wait", action="store_true", help="wait for the jobs to end")
    p.add_argument("--no-progress", action="store_true", help="no progress bar with --wait")
    _spec_options(p)

    p = _parser(sub, "sweep", "run a sweep file (base spec x grid) as one batch; print a results table", """\
  fusetrain sweep examples/sweeps/seeds_cv.yaml
  fusetrain sweep examples/sweeps/xor_grid.yaml --sort train_loss --json""", common, c.sweep)
    p.add_argument("file", type=Path, help="sweep file: base, grid, optional folds, labels, sort")
    p.add_argument("--folds", type=int, default=None, metavar="K", help="add (or change) k-fold cross-validation")
    p.add_argument("--repeats", type=int, default=None, metavar="R",
                   help="repeated k-fold: R shuffles of the rows (with folds)")
    p.add_argument("--sort", default=None, help="metric to sort by (default: val_accuracy, else train_accuracy, "
                                                "else train_loss)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _spec_options(p)

    p = _parser(sub, "jobs", "list jobs, newest first", """\
  fusetrain jobs
  fusetrain jobs --state RUNNING --state QUEUED
  fusetrain jobs --label task=xor --limit 5 --json""", common, c.jobs)
    p.add_argument("--state", action="append", type=str.upper,
                   choices=["QUEUED", "RUNNING", "CANCELLING", "SUCCEEDED", "FAILED", "CANCELLED"])
    p.add_argument("--label", action="append", metavar="KEY=VALUE")
    p.add_argument("--batch", help="jobs of one batch (sweep)")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--all", action="store_true", help="every job")

    p = _parser(sub, "status", "one job's state and latest metrics", "  fusetrain status JOB_ID\n"
                "  fusetrain status JOB_ID --json", common, c.status)
    p.add_argument("job_id")

    p = _parser(sub, "watch", "follow a job live until it ends (--json: one event per line)", """\
  fusetrain watch JOB_ID
  fusetrain watch JOB_ID --json --after 10     # events after sequence number 10""", common, c.watch)
    p.add_argument("job_id")
    p.add_argument("--after", type=int, default=0, help="start after this event sequence number")
    p.add_argument("--no-progress", action="store_true", help="only the final state")

    p = _parser(sub, "cancel", "cancel jobs (at the next epoch boundary, keeping the weights)", """\
  fusetrain cancel JOB_ID
  fusetrain cancel JOB_ID --force     # end the worker now, no weights""", common, c.cancel)
    p.add_argument("job_ids", nargs="+", metavar="JOB_ID")
    p.add_argument("--force", action="store_true", help="end the worker now (no weights kept)")

    p = _parser(sub, "delete", "delete finished jobs and their results", "  fusetrain delete JOB_ID",
                common, c.delete)
    p.add_argument("job_ids", nargs="+", metavar="JOB_ID")

    p = _parser(sub, "result", "a job's result; -o saves the model as .npz, .safetensors or .onnx", """\
  fusetrain result JOB_ID
  fusetrain result JOB_ID -o model.onnx --verify ../shared/datasets/iris.csv
  fusetrain result JOB_ID -o model.safetensors --json
  fusetrain result JOB_ID --history""", common, c.result)
    p.add_argument("job_id")
    p.add_argument("-o", "--output", type=Path, help="model file: .npz, .safetensors or .onnx")
    p.add_argument("--verify", metavar="INPUT",
                   help="run the saved model on INPUT's rows (onnxruntime for .onnx) and compare with Predict")
    p.add_argument("--history", action="store_true", help="also print every epoch's metrics")

    p = _parser(sub, "predict", "run a job's model on rows from a file or a JSON list", """\
  fusetrain predict JOB_ID '[[0, 0], [0, 1], [1, 0], [1, 1]]'
  fusetrain predict JOB_ID ../shared/datasets/iris.csv          # the last column is the target: accuracy
  fusetrain predict JOB_ID t10k-images-idx3-ubyte.gz --labels t10k-labels-idx1-ubyte.gz -o pred.npy""",
                common, c.predict)
    p.add_argument("job_id")
    p.add_argument("input", help="CSV, NPY, NPZ or IDX(.gz) file, or a JSON list of rows")
    p.add_argument("--labels", help="a file of targets for the rows (IDX labels, .npy, CSV): report accuracy")
    p.add_argument("--target", type=int, default=None,
                   help="CSV column of the targets (default: the last, when the file has one column more than "
                        "the model's inputs)")
    p.add_argument("-o", "--output", type=Path, help="write every prediction: .npy or .csv")
    p.add_argument("--rows", type=int, default=10, help="rows to print (default 10)")

    ds = sub.add_parser("datasets", help="upload or inspect datasets", description="upload or inspect datasets")
    dsub = ds.add_subparsers(dest="datasets_command", required=True, metavar="COMMAND")
    p = _parser(dsub, "upload", "upload a data file (skipped when the server has the bytes)", """\
  fusetrain datasets upload ../shared/datasets/iris.csv
  fusetrain datasets upload train-images-idx3-ubyte.gz --labels train-labels-idx1-ubyte.gz
  fusetrain datasets upload data.npz --json""", common, c.datasets_upload)
    p.add_argument("path", help="NPZ (sent as it is), CSV, NPY or IDX(.gz) (read, then sent as arrays x, y)")
    p.add_argument("--labels", help="a separate file of targets")
    p.add_argument("--name", default="", help="a human name (default: the file name)")
    p.add_argument("--target", type=int, default=None, help="CSV: target column (default the last)")
    p.add_argument("--header", action=argparse.BooleanOptionalAction, default=None, help="CSV: header row")
    p.add_argument("--one-hot", action=argparse.BooleanOptionalAction, default=None,
                   help="one-hot class labels (default: detected)")
    p.add_argument("--delimiter", default="", help="CSV: field delimiter (default ',')")
    _parser(dsub, "list", "your uploaded datasets, newest first", "  fusetrain datasets list\n"
            "  fusetrain datasets list --json", common, c.datasets_list)
    p = _parser(dsub, "show", "an uploaded dataset's arrays", "  fusetrain datasets show DATASET_ID", common,
                c.datasets_show)
    p.add_argument("dataset_id")
    p = _parser(dsub, "delete", "forget uploaded datasets (refused while a queued or running job uses one)",
                "  fusetrain datasets delete DATASET_ID", common, c.datasets_delete)
    p.add_argument("dataset_ids", nargs="+", metavar="DATASET_ID")

    _parser(sub, "info", "this machine's kernel cache, threads and versions (compiles nothing); "
            "--server: a server's info and kernel warm-up", """\
  fusetrain info                       # the kernel cache in use, compiled dtypes, threads, versions, BLAS
  fusetrain info --json
  fusetrain info --server HOST:PORT    # the server's; its kernels: ready, compiling or not started""",
            common, c.info)
    return parser


def exit_code(exc: BaseException) -> int:
    """The documented exit code of an error."""
    from . import errors
    from .export import ExportError
    from .loaders import LoadError

    if isinstance(exc, (errors.SpecError, LoadError, ExportError, errors.InvalidArgument)):
        return 3
    if isinstance(exc, errors.NotFound):
        return 4
    if isinstance(exc, (errors.FailedPrecondition, errors.ResourceExhausted, errors.AlreadyExists,
                        errors.Unauthenticated)):
        return 5
    if isinstance(exc, (errors.Unavailable, errors.DeadlineExceeded)):
        return 6
    if isinstance(exc, errors.JobFailed):
        return 1
    # An error raised in this process by shared code (fusetrain.wire) travels by its code name.
    return _BY_CODE.get(getattr(exc, "code_name", ""), 7)


_BY_CODE = {"INVALID_ARGUMENT": 3, "NOT_FOUND": 4, "FAILED_PRECONDITION": 5, "RESOURCE_EXHAUSTED": 5,
            "ALREADY_EXISTS": 5, "UNAUTHENTICATED": 5, "UNAVAILABLE": 6, "DEADLINE_EXCEEDED": 6}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return args.func(args)
    from . import errors
    from .export import ExportError
    from .loaders import LoadError

    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:              # `fusetrain jobs --json | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (errors.FusetrainError, LoadError, ExportError) as exc:
        code = exit_code(exc)
        kind = getattr(exc, "code_name", None) or ("INVALID_INPUT" if code == 3 else type(exc).__name__)
        message = getattr(exc, "details", None) or str(exc)
        if getattr(args, "json", False):
            from .output import print_json
            print_json({"error": {"code": kind, "message": message, "exit_code": code}})
        if isinstance(exc, errors.MissingExtra):       # one line: the pip command that adds it
            print(f"fusetrain {args.command}: {message}", file=sys.stderr)
            return code
        hint = ""
        if code == 6:
            from .client import default_address
            hint = (f"\n  is a server running at {args.server or default_address()}? Start one with "
                    f"`make run` or `fusetrain serve`, or pass --server HOST:PORT")
        print(f"fusetrain {args.command}: {kind}: {message}{hint}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
