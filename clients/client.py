"""The Python client of fusetrain.v1.TrainingService.

    with Client("127.0.0.1:50051") as c:
        result = c.train("examples/jobs/iris.yaml", progress=True)
        result.weights, result.final["val_accuracy"], result.save("iris.onnx")

Every call has a deadline (`timeout`, per call); only UNAVAILABLE is retried, with exponential
backoff, and submits carry a request id so a retried submit never queues a job twice. `watch`
reconnects after a dropped stream and resumes after the last event it saw. Errors are
errors.RpcError subclasses carrying the gRPC code and the server's message.
Needs grpcio, protobuf and numpy only (rich for progress bars, when asked for).
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Union

import grpc
import numpy as np
from google.protobuf import struct_pb2

from fusetrain.v1 import job_pb2, service_pb2 as pb, service_pb2_grpc
from fusetrain.wire.tensors import array_to_tensor, tensor_to_array

from . import errors, jobfiles
from .jobfiles import SpecLike
from .types import Batch, EpochEvent, Job, Result, StateEvent, event_from_proto

DEFAULT_ADDRESS = "127.0.0.1:50051"
CHUNK_BYTES = 1 << 20


def default_address() -> str:
    return os.environ.get("FUSETRAIN_SERVER", DEFAULT_ADDRESS)


class Client:
    """A connection to a fusetrain server.

    address: host:port (default $FUSETRAIN_SERVER or 127.0.0.1:50051). token: sent as
    `authorization: Bearer <token>` (default $FUSETRAIN_TOKEN). tls: None/False for plaintext,
    True for TLS with the system's roots, a path to a PEM root certificate, or
    grpc.ChannelCredentials; cert and key: PEM files of a client certificate, for a server that
    asks for one (mutual TLS; they imply tls=True). timeout: the deadline of each call in seconds. retries: attempts
    of a call that gets UNAVAILABLE, with backoff from `backoff` seconds doubling to 5 s.
    """

    def __init__(self, address: Optional[str] = None, token: Optional[str] = None, tls=None,
                 timeout: float = 30.0, retries: int = 6, backoff: float = 0.1,
                 reconnect_seconds: float = 120.0, options: Optional[list] = None,
                 cert: Optional[Union[str, Path]] = None, key: Optional[Union[str, Path]] = None):
        self.address = address or default_address()
        token = token if token is not None else os.environ.get("FUSETRAIN_TOKEN") or None
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout = timeout
        self.retries = max(1, retries)
        self.backoff = backoff
        self.reconnect_seconds = reconnect_seconds
        opts = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1),
                *(options or [])]
        if tls or cert or key:
            if (cert is None) != (key is None):
                raise errors.SpecError("a client certificate needs both cert and key")
            chain = (Path(key).read_bytes(), Path(cert).read_bytes()) if cert else (None, None)
            if isinstance(tls, grpc.ChannelCredentials):
                creds = tls
            elif tls is True or not tls:
                creds = grpc.ssl_channel_credentials(None, *chain)
            else:
                creds = grpc.ssl_channel_credentials(Path(tls).read_bytes(), *chain)
            self.channel = grpc.secure_channel(self.address, creds, options=opts)
        else:
            self.channel = grpc.insecure_channel(self.address, options=opts)
        self.stub = service_pb2_grpc.TrainingServiceStub(self.channel)
        self._info: Optional[pb.ServerInfo] = None

    # ------------------------------------------------------------------------------ plumbing

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method: str, request, timeout: Optional[float] = None):
        """One unary call with a deadline; UNAVAILABLE is retried with backoff, nothing else."""
        fn = getattr(self.stub, method)
        delay = self.backoff
        for attempt in range(self.retries):
            try:
                return fn(request, timeout=timeout or self.timeout, metadata=self.metadata)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == self.retries - 1:
                    raise errors.from_grpc(exc, method) from None
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def server_info(self) -> pb.ServerInfo:
        """Version, supported names, limits (GetServerInfo); cached."""
        if self._info is None:
            self._info = self._call("GetServerInfo", pb.GetServerInfoRequest())
        return self._info

    # ------------------------------------------------------------------------------ datasets

    def dataset(self, dataset_id: str) -> pb.Dataset:
        """An uploaded dataset's description (NotFound if those bytes were never uploaded)."""
        return self._call("GetDataset", pb.GetDatasetRequest(dataset_id=dataset_id))

    def delete_dataset(self, dataset_id: str) -> None:
        """Forget one of your datasets (FailedPrecondition while a queued or running job uses it)."""
        self._call("DeleteDataset", pb.DeleteDatasetRequest(dataset_id=dataset_id))

    def upload_dataset(self, data, y=None, name: str = "", chunk_bytes: int = CHUNK_BYTES) -> pb.Dataset:
        """Upload a dataset; returns pb.Dataset (`id` is the sha256, `already_present`).

        data: a path (an .npz is sent as it is; CSV, NPY and IDX files are read with loaders.py
        and sent as arrays x and y), an array x (with `y`), a dict of arrays, or NPZ bytes.
        The sha256 is computed first and nothing is sent when the server already has the bytes.
        """
        if isinstance(data, (str, Path)):
            path = Path(data)
            name = name or path.name
            if path.suffix.lower() == ".npz" and y is None:
                blob = path.read_bytes()
            else:
                src = job_pb2.LocalFile(path=str(path.resolve()))
                if y is not None:
                    src.labels = str(Path(y).resolve())
                d = jobfiles.read_file_source(src, Path.cwd(), "dataset")
                blob = jobfiles.npz_bytes({"x": d.x, "y": d.y})
        elif isinstance(data, (bytes, bytearray)):
            blob = bytes(data)
        elif isinstance(data, dict):
            blob = jobfiles.npz_bytes(data)
        else:
            blob = jobfiles.npz_bytes({"x": np.asarray(data), **({} if y is None else {"y": np.asarray(y)})})
        sha = hashlib.sha256(blob).hexdigest()
        try:
            return self.dataset(sha)
        except errors.NotFound:
            pass
        limit = self.server_info().limits.max_message_bytes or chunk_bytes
        size = max(1, min(chunk_bytes, limit - 1024))

        def requests():
            for start in range(0, len(blob), size):
                chunk = blob[start:start + size]
                yield (pb.UploadDatasetRequest(name=name, format="npz", chunk=chunk) if start == 0
                       else pb.UploadDatasetRequest(chunk=chunk))
        timeout = max(self.timeout, 30.0 + len(blob) / 5e6)   # at least 5 MB/s
        ds = self._call_stream_unary("UploadDataset", requests, timeout)
        if ds.id != sha:
            raise errors.FusetrainError(f"the server stored {ds.id} for bytes whose sha256 is {sha}")
        return ds

    def _call_stream_unary(self, method: str, requests: Callable[[], Iterable], timeout: float):
        fn = getattr(self.stub, method)
        delay = self.backoff
        for attempt in range(self.retries):
            try:
                return fn(requests(), timeout=timeout, metadata=self.metadata)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == self.retries - 1:
                    raise errors.from_grpc(exc, method) from None
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _store(self, arrays: dict, name: str) -> str:
        return self.upload_dataset(arrays, name=name).id

    # -------------------------------------------------------------------------------- submit

    def prepare(self, spec: SpecLike, x=None, y=None, validation=None,
                overrides: Optional[dict] = None, sample_weight=None) -> job_pb2.JobSpec:
        """The JobSpec to send: local data files read and uploaded, arrays x, y (and validation=
        (x_val, y_val), sample_weight= per-row weights of x) put inline when small or uploaded,
        `overrides` ({"training.epochs": 5}) applied."""
        msg, base_dir = jobfiles.load_spec(spec, overrides)
        if sample_weight is not None and x is None:
            raise errors.SpecError("sample_weight goes with arrays x and y")
        if x is not None or y is not None:
            if x is None or y is None:
                raise errors.SpecError("give both x and y")
            jobfiles.attach_arrays(msg, x, y, self._store, "train", sample_weight=sample_weight)
        if validation is not None:
            jobfiles.attach_arrays(msg, validation[0], validation[1], self._store, "validation")
        jobfiles.resolve_files(msg, base_dir, self._store)
        return msg

    def submit(self, spec: SpecLike, x=None, y=None, *, validation=None, request_id: Optional[str] = None,
               overrides: Optional[dict] = None, sample_weight=None) -> Job:
        """Queue one job; returns at once. A request id is made up when not given, so retries after
        UNAVAILABLE are idempotent."""
        msg = self.prepare(spec, x, y, validation, overrides, sample_weight)
        req = pb.SubmitJobRequest(spec=msg, request_id=request_id or uuid.uuid4().hex)
        return Job.from_proto(self._call("SubmitJob", req))

    def submit_many(self, specs: Iterable[SpecLike], labels: Optional[dict] = None,
                    request_id: Optional[str] = None) -> Batch:
        """Queue many specs as one batch (one SubmitJobs call)."""
        msgs = [self.prepare(s) for s in specs]
        req = pb.SubmitJobsRequest(specs=msgs, labels=labels or {}, request_id=request_id or uuid.uuid4().hex)
        resp = self._call("SubmitJobs", req)
        return Batch(resp.batch_id, [Job.from_proto(j) for j in resp.jobs], [{} for _ in resp.jobs])

    def sweep(self, base: SpecLike, grid: Union[dict, list, None] = None, *, folds: int = 0, fold_seed: int = 0,
              repeats: int = 1, labels: Optional[dict] = None, request_id: Optional[str] = None,
              overrides: Optional[dict] = None) -> Batch:
        """A base spec and a grid ({"optimizer.learning_rate": [0.1, 0.3], "model.seed": [0, 1]}),
        one job per combination (last axis fastest), sent as one SubmitJobs; base may also be a
        sweep file path (then grid, folds and labels come from it). folds=K adds k-fold
        cross-validation as one more axis (stratified for class targets), repeats=R repeats it
        with R shuffles (one more axis)."""
        if isinstance(base, (str, Path)) and grid is None and _is_sweep_file(base):
            sw = jobfiles.load_sweep(base, overrides, folds or None, repeats if repeats != 1 else None)
        else:
            msg, base_dir = jobfiles.load_spec(base, overrides)
            axes = list((grid or {}).items()) if isinstance(grid, dict) else [tuple(a) for a in grid or []]
            sw = jobfiles.Sweep(msg, base_dir, axes, dict(labels or {}))
            if folds:
                jobfiles.add_folds(sw, folds, fold_seed, "folds", repeats)
            elif repeats != 1:
                raise errors.SpecError("repeats needs folds (repeated k-fold cross-validation)")
        return self.submit_sweep(sw, labels=labels, request_id=request_id)

    def submit_sweep(self, sw: jobfiles.Sweep, labels: Optional[dict] = None,
                     request_id: Optional[str] = None) -> Batch:
        jobfiles.resolve_files(sw.base, sw.base_dir, self._store)
        grid = [pb.GridAxis(field=name, values=[_value(v) for v in values]) for name, values in sw.axes]
        req = pb.SubmitJobsRequest(base=sw.base, grid=grid, labels={**sw.labels, **(labels or {})},
                                   request_id=request_id or uuid.uuid4().hex, search=sw.search)
        resp = self._call("SubmitJobs", req, timeout=max(self.timeout, 120.0))
        return Batch(resp.batch_id, [Job.from_proto(j) for j in resp.jobs], sw.combinations())

    # --------------------------------------------------------------------------------- reads

    def job(self, job_id: str) -> Job:
        """One job's state and latest metrics (GetJob)."""
        return Job.from_proto(self._call("GetJob", pb.GetJobRequest(job_id=job_id)))

    status = job

    def jobs(self, states: Iterable[str] = (), labels: Optional[dict] = None, batch_id: str = "",
             limit: Optional[int] = None, page_size: int = 500) -> Iterator[Job]:
        """Jobs newest first, following pages; states are names ("RUNNING")."""
        codes = [pb.JobState.Value(s.upper()) for s in states]
        token, count = "", 0
        while True:
            size = page_size if limit is None else max(1, min(page_size, limit - count))
            resp = self._call("ListJobs", pb.ListJobsRequest(states=codes, labels=labels or {}, batch_id=batch_id,
                                                             page_size=size, page_token=token))
            for j in resp.jobs:
                yield Job.from_proto(j)
                count += 1
                if limit is not None and count >= limit:
                    return
            token = resp.next_page_token
            if not token:
                return

    def watch(self, job_id: str, after: int = 0, stream_seconds: float = 300.0
              ) -> Iterator[Union[StateEvent, EpochEvent]]:
        """StateEvent and EpochEvent objects as they happen, until the job's final state.

        A stream that breaks (UNAVAILABLE: a restart, a network cut) or reaches its deadline
        (`stream_seconds`, so no call is without one) is opened again after the last sequence
        seen, for up to `reconnect_seconds` of failing attempts: nothing is lost or repeated.
        """
        last = after
        delay = self.backoff
        failing_since = None
        while True:
            stream = self.stub.WatchJob(pb.WatchJobRequest(job_id=job_id, after_sequence=last),
                                        timeout=stream_seconds, metadata=self.metadata)
            try:
                for message in stream:
                    failing_since, delay = None, self.backoff
                    for e in message.events:
                        if e.sequence <= last:
                            continue
                        last = e.sequence
                        event = event_from_proto(e)
                        yield event
                return          # the server ends the stream after the final state
            except grpc.RpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    continue
                if code != grpc.StatusCode.UNAVAILABLE:
                    raise errors.from_grpc(exc, "WatchJob") from None
                now = time.monotonic()
                failing_since = failing_since or now
                if now - failing_since > self.reconnect_seconds:
                    raise errors.from_grpc(exc, "WatchJob") from None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                stream.cancel()

    def wait(self, job_id: str, progress=False) -> Job:
        """Block until the job ends; progress=True shows a bar, a callable gets every event."""
        if progress is True:
            from .progress import JobProgress
            job = self.job(job_id)
            show = JobProgress(job.name or job.id, job.epochs_total)
        else:
            show = progress if callable(progress) else None
        try:
            for event in self.watch(job_id):
                if show is not None:
                    show(event)
        finally:
            getattr(show, "close", lambda: None)()
        return self.job(job_id)

    def wait_batch(self, batch: Union[Batch, str], progress=False, poll_seconds: float = 0.25) -> list[Job]:
        """Block until every job of a batch ends (polls ListJobs, one call per poll, not one stream
        per job); progress=True shows one overall bar, a callable gets the job list each poll."""
        batch_id = batch.id if isinstance(batch, Batch) else batch
        order = [j.id for j in batch.jobs] if isinstance(batch, Batch) else None
        bar = None
        if progress is True:
            from .progress import BatchProgress
            bar = BatchProgress()
        try:
            while True:
                jobs = {j.id: j for j in self.jobs(batch_id=batch_id)}
                if bar is not None:
                    bar.update(list(jobs.values()))
                elif callable(progress):
                    progress(list(jobs.values()))
                if jobs and all(j.done for j in jobs.values()):
                    break
                time.sleep(poll_seconds)
        finally:
            if bar is not None:
                bar.close()
        return [jobs[i] for i in order] if order else list(jobs.values())

    def cancel(self, job_id: str, force: bool = False) -> Job:
        """Graceful: stops at the next epoch boundary, keeping its weights; force: ends it now."""
        return Job.from_proto(self._call("CancelJob", pb.CancelJobRequest(job_id=job_id, force=force)))

    def delete(self, job_id: str) -> None:
        """Remove a finished job, its events and result."""
        self._call("DeleteJob", pb.DeleteJobRequest(job_id=job_id))

    def result(self, job_id: str, spec: Optional[job_pb2.JobSpec] = None) -> Result:
        """Weights, metrics history, final metrics, timings and normalisation of a job with weights."""
        r = self._call("GetResult", pb.GetResultRequest(job_id=job_id), timeout=max(self.timeout, 120.0))
        if r.HasField("search"):      # a search job's model is its winner's
            spec = r.search.winner_spec
        elif spec is None:
            spec = self._call("GetJob", pb.GetJobRequest(job_id=job_id)).spec
        return Result.from_proto(r, spec)

    def predict(self, job_id: str, x, batch_rows: Optional[int] = None) -> np.ndarray:
        """The job's model on raw inputs x (rows, inputs); the server applies the normalisation.
        Large inputs go in several calls, each under the server's message limit."""
        x = np.asarray(x)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.dtype.name not in ("float32", "float64", "int32", "int64", "uint8"):
            x = x.astype(np.float64)
        limit = self.server_info().limits.max_message_bytes or (4 << 20)
        row_bytes = max(1, x.itemsize * x.shape[1])
        rows = batch_rows or max(1, (limit // 2) // row_bytes)
        outs = []
        for start in range(0, max(len(x), 1), rows):
            part = x[start:start + rows]
            resp = self._call("Predict", pb.PredictRequest(job_id=job_id, x=array_to_tensor(part)))
            outs.append(tensor_to_array(resp.y, "y", copy=True).reshape(len(part), -1))
        return np.concatenate(outs) if len(outs) > 1 else outs[0]

    # --------------------------------------------------------------------------------- train

    def train(self, spec: SpecLike, x=None, y=None, *, validation=None, progress=False,
              request_id: Optional[str] = None, overrides: Optional[dict] = None, sample_weight=None) -> Result:
        """Submit, wait (progress=True: a live bar; a callable: every event), return the Result.
        Raises errors.JobFailed when the job ends FAILED or CANCELLED."""
        msg = self.prepare(spec, x, y, validation, overrides, sample_weight)
        job = self.submit(msg, request_id=request_id)
        try:
            job = self.wait(job.id, progress=progress)
        except KeyboardInterrupt:
            self.cancel(job.id)
            raise
        if job.state != "SUCCEEDED":
            raise errors.JobFailed(job)
        return self.result(job.id, spec=msg)


def _is_sweep_file(path) -> bool:
    try:
        doc = jobfiles.read_document(path)
    except errors.SpecError:
        return False
    return "base" in doc


def _value(v) -> struct_pb2.Value:
    out = struct_pb2.Value()
    if isinstance(v, bool):
        out.bool_value = v
    elif isinstance(v, (int, float, np.integer, np.floating)):
        out.number_value = float(v)
    elif isinstance(v, str):
        out.string_value = v
    elif v is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(v, dict):
        out.struct_value.update(v)
    elif isinstance(v, (list, tuple)):
        out.list_value.extend(list(v))
    else:
        raise errors.SpecError(f"grid value {v!r} is not a JSON value")
    return out
