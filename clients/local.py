"""`fusetrain train --local`: run a job in this process, with no server.

The service's in-process entry point (fusetrain.service.inprocess) does the work: the same
admission checks, cross-validation split, normalisation and engine call as a server's worker.
This module reads the job file and its local data files, shows progress, and turns the JobResult
message into the same Result a server would give. The service and the engine are imported only
here and only when asked for: a client installed without the server extra gets MissingExtra, a
one-line message naming the pip command.
"""

from __future__ import annotations

from typing import Optional

from . import errors, jobfiles
from .jobfiles import SpecLike
from .types import Job, Result, event_from_proto

EXTRA = "server"
MISSING = f"fusetrain train --local needs the engine: pip install 'fusetrain[{EXTRA}]'"


def _inprocess():
    """fusetrain.service.inprocess, or MissingExtra when the server extra is not installed."""
    try:
        from fusetrain.service import inprocess
    except ImportError as exc:
        # Only a missing third-party module means a missing extra; anything else is a bug to see.
        if (exc.name or "").split(".")[0] in ("fusetrain", ""):
            raise
        raise errors.MissingExtra(MISSING, EXTRA) from None
    return inprocess


def train_local(spec: SpecLike, x=None, y=None, *, validation=None, progress=False,
                threads: Optional[int] = None, overrides: Optional[dict] = None, sample_weight=None) -> Result:
    """Train in-process; progress=True shows the same bar as a server job, a callable gets events.
    sample_weight: per-row weights of x."""
    inprocess = _inprocess()
    from fusetrain.wire.errors import FusetrainError as WireError

    msg, base_dir = jobfiles.load_spec(spec, overrides)
    with inprocess.Datasets() as datasets:
        if x is not None and y is not None:
            jobfiles.attach_arrays(msg, x, y, datasets.add, "train", sample_weight=sample_weight)
        if validation is not None:
            jobfiles.attach_arrays(msg, validation[0], validation[1], datasets.add, "validation")
        jobfiles.resolve_files(msg, base_dir, datasets.add)

        name = msg.name or "local"
        show: list = [progress if callable(progress) and progress is not True else None]

        def accepted(job) -> None:
            if progress is True:
                from .progress import JobProgress
                show[0] = JobProgress(name, job.epochs_total)

        def on_event(event) -> None:
            if show[0] is not None:
                show[0](event_from_proto(event))

        try:
            r = inprocess.train(msg, datasets, threads=threads, on_event=on_event, on_accepted=accepted)
        except WireError as exc:           # what SubmitJob would have refused
            raise errors.from_wire(exc, "local") from None
        except inprocess.JobEnded as exc:
            raise errors.JobFailed(Job(id="local", state=exc.state, name=name, failure_reason=exc.reason,
                                       message=exc.message)) from None
        finally:
            getattr(show[0], "close", lambda: None)()
    return Result.from_proto(r, r.search.winner_spec if r.HasField("search") else msg)
