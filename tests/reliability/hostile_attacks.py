"""The hostile proof's attack classes (issue 11's findings, one method each) and its set-up: what
mallory sends, and the owners, tallies and stored jobs the attacks use. hostile.py runs them."""

from __future__ import annotations

import io
import math
import random
import threading
import time
from collections import Counter, defaultdict

import grpc
import numpy as np
from google.protobuf import struct_pb2

from service_helpers import npz_bytes, seeds_data, xor_spec

from fusetrain.v1 import job_pb2, service_pb2 as pb, service_pb2_grpc

TOKENS = {"alice": "alice-token-0123456789abcdef", "mallory": "mallory-token-0123456789abcdef",
          "mallory/x": "mallory-x-token-0123456789abcdef"}
TERMINAL = (pb.SUCCEEDED, pb.FAILED, pb.CANCELLED)
BAD = ("UNKNOWN", "INTERNAL")

class Owner:
    """A channel and stub that send one owner's token; `receive` caps replies (-1: none)."""

    def __init__(self, address: str, name: str, receive: int = -1):
        self.channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", receive)])
        self.stub = service_pb2_grpc.TrainingServiceStub(self.channel)
        self.md = (("authorization", f"Bearer {TOKENS[name]}"),)


class Tally:
    """Status codes per attack class, findings, and the shared deadline."""

    def __init__(self, deadline: float):
        self.deadline, self.codes = deadline, defaultdict(Counter)
        self.findings: list[str] = []
        self.lock = threading.Lock()

    def over(self) -> bool:
        return time.monotonic() > self.deadline

    def call(self, cls: str, fn):
        try:
            value, code = fn(), "OK"
        except grpc.RpcError as exc:
            value, code = None, exc.code().name
            if code in BAD:
                self.find(f"{cls}: {code} {exc.details()!r}")
        with self.lock:
            self.codes[cls][code] += 1
        return value

    def find(self, text: str) -> None:
        with self.lock:
            if len(self.findings) < 50:
                self.findings.append(text)


# ----------------------------------------------------------------------------- the attacks

def _inline(spec, x: np.ndarray, y: np.ndarray) -> None:
    for t, a in ((spec.data.train.x, x), (spec.data.train.y, y)):
        t.CopyFrom(job_pb2.Tensor(dtype="float32", shape=list(a.shape), data=a.astype(np.float32).tobytes()))


def _drain(call, stop_after: int = 0) -> int:
    n = 0
    for _ in call:
        n += 1
        if stop_after and n >= stop_after:
            call.cancel()                                  # the client leaves mid-replay
            break
    return n


class Attacks:
    """One method per attack class; each makes one bounded attempt (every call has a deadline)."""

    def __init__(self, address: str, tally: Tally, fixtures: dict, rng: random.Random):
        self.m, self.t, self.f, self.rng = Owner(address, "mallory"), tally, fixtures, rng
        self.mx = Owner(address, "mallory/x")
        self.small = Owner(address, "mallory", receive=4 << 20)     # a default client's reply limit
        self.cancelled: list[tuple[str, int]] = []
        self.diverged: list[str] = []
        self.n = 0

    def watch_replay(self):                                 # 1
        req = pb.WatchJobRequest(job_id=self.f["long"], after_sequence=0)
        timeout, leave = self.rng.choice([0.2, 0.5, 1.0, 5.0]), self.rng.choice([0, 1, 3])
        self.t.call("1 watch replay", lambda: _drain(self.m.stub.WatchJob(req, metadata=self.m.md,
                                                                          timeout=timeout), leave))

    def npz_bomb(self):                                     # 2
        bomb = self.f["bomb"]

        def chunks():
            for s in range(0, len(bomb), 1 << 20):
                yield pb.UploadDatasetRequest(name="bomb" if s == 0 else "", chunk=bomb[s:s + (1 << 20)])
        self.t.call("2 npz bomb", lambda: self.m.stub.UploadDataset(chunks(), metadata=self.m.md, timeout=30))

    def grid_amplification(self):                           # 3
        axis = pb.GridAxis(field="model.seed", values=[struct_pb2.Value(number_value=i) for i in range(600)])
        req = pb.SubmitJobsRequest(base=self.f["big_base"], grid=[axis])
        self.t.call("3 grid of a 3 MB base", lambda: self.m.stub.SubmitJobs(req, metadata=self.m.md, timeout=30))

    def idle_streams(self):                                 # 4
        hold, calls = self.rng.uniform(1, 4), []

        def trickle():
            end = time.monotonic() + hold
            yield pb.UploadDatasetRequest(name="slow", chunk=b"P")
            while time.monotonic() < end:
                time.sleep(0.5)
                yield pb.UploadDatasetRequest(chunk=b"K")
        for _ in range(10):
            calls.append(self.m.stub.UploadDataset.future(trickle(), metadata=self.m.md, timeout=hold + 5))
        time.sleep(hold / 2)
        for c in calls[::2]:
            c.cancel()                                     # half leave, half finish their trickle
        for c in calls:
            self.t.call("4 idle streams", lambda: c.result() if not c.cancelled() else _raise_cancelled())

    def job_too_big(self):                                  # 5
        self.t.call("5 job memory", lambda: self.m.stub.SubmitJob(pb.SubmitJobRequest(spec=self.f["too_big"]),
                                                                  metadata=self.m.md, timeout=30))

    def cancel_race(self):                                  # 6
        job = self.t.call("6 cancel race", lambda: self.m.stub.SubmitJob(
            pb.SubmitJobRequest(spec=xor_spec(epochs=300)), metadata=self.m.md, timeout=30))
        if job is None:
            return
        answer = self.t.call("6 cancel race", lambda: self.m.stub.CancelJob(
            pb.CancelJobRequest(job_id=job.id, force=self.rng.random() < 0.3), metadata=self.m.md, timeout=30))
        if answer is not None:
            self.cancelled.append((job.id, answer.state, time.time()))

    def divergence(self):                                   # 7
        spec = xor_spec(epochs=50)
        spec.optimizer.kind = "sgd"
        setattr(spec.optimizer, self.rng.choice(["learning_rate", "weight_decay"]), 1e308)
        job = self.t.call("7 lr/decay 1e308", lambda: self.m.stub.SubmitJob(pb.SubmitJobRequest(spec=spec),
                                                                            metadata=self.m.md, timeout=30))
        if job is not None:
            self.diverged.append(job.id)

    def request_ids(self):                                  # 8
        self.n += 1
        a = self.t.call("8 request ids", lambda: self.mx.stub.SubmitJob(pb.SubmitJobRequest(
            spec=xor_spec(epochs=5), request_id=f"r{self.n}"), metadata=self.mx.md, timeout=30))
        b = self.t.call("8 request ids", lambda: self.m.stub.SubmitJob(pb.SubmitJobRequest(
            spec=xor_spec(epochs=7), request_id=f"x/r{self.n}"), metadata=self.m.md, timeout=30))
        if a is not None and b is not None and (a.id == b.id or b.spec.training.epochs != 7):
            self.t.find(f"8 request ids: owners mallory/x and mallory collided on job {a.id}")

    def page_tokens(self):                                  # 9
        token = self.rng.choice(["\u00b2", "9" * 5000, "9" * 20, "-1", "1e3", " 12", "\x00"])
        self.t.call("9 page tokens", lambda: self.m.stub.ListJobs(pb.ListJobsRequest(page_token=token),
                                                                  metadata=self.m.md, timeout=30))

    def label_filters(self):                                # 10
        labels = self.rng.choice([{"a\x00b": "x"}, {f"k{i}": "v" for i in range(1200)}, {"task": "v" * 300}])
        self.t.call("10 label filters", lambda: self.m.stub.ListJobs(pb.ListJobsRequest(labels=labels),
                                                                     metadata=self.m.md, timeout=30))

    def nan_grid(self):                                     # 11
        value = self.rng.choice([math.nan, math.inf, -math.inf])
        axis = pb.GridAxis(field="optimizer.learning_rate",
                           values=[struct_pb2.Value(number_value=0.1), struct_pb2.Value(number_value=value)])
        self.t.call("11 NaN grid value", lambda: self.m.stub.SubmitJobs(
            pb.SubmitJobsRequest(base=xor_spec(), grid=[axis]), metadata=self.m.md, timeout=30))

    def init_scale(self):                                   # 12
        spec = xor_spec()
        spec.model.initializer, spec.model.init_scale = self.rng.choice(["uniform", "normal"]), 1e308
        self.t.call("12 init_scale 1e308", lambda: self.m.stub.SubmitJob(pb.SubmitJobRequest(spec=spec),
                                                                         metadata=self.m.md, timeout=30))

    def predict(self):                                      # 13: rows over the cap, and many at once
        rows = self.rng.choice([100_001, 100_000, 10])
        x = job_pb2.Tensor(dtype="float32", shape=[rows, 2], data=bytes(8 * rows))
        futures = [self.m.stub.Predict.future(pb.PredictRequest(job_id=self.f["model"], x=x),
                                              metadata=self.m.md, timeout=30) for _ in range(8)]
        for fut in futures:
            self.t.call("13 Predict rows/calls", fut.result)

    def list_specs(self):                                   # 13: ListJobs with include_spec
        token, pages = "", 0
        while pages < 50:
            page = self.t.call("13 ListJobs include_spec", lambda: self.small.stub.ListJobs(
                pb.ListJobsRequest(include_spec=True, page_size=1000, page_token=token),
                metadata=self.small.md, timeout=30))
            pages += 1
            if page is None or not page.next_page_token:
                return
            token = page.next_page_token

    def close(self):
        for o in (self.m, self.mx, self.small):
            o.channel.close()


class _Cancelled(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.CANCELLED

    def details(self):
        return "cancelled by the client"


def _raise_cancelled():
    raise _Cancelled()


CLASSES = ["watch_replay", "npz_bomb", "grid_amplification", "idle_streams", "job_too_big", "cancel_race",
           "divergence", "request_ids", "page_tokens", "label_filters", "nan_grid", "init_scale", "predict",
           "list_specs"]


# ------------------------------------------------------------------ set-up, honest clients, samplers

def _wait(owner: Owner, job_id: str, timeout: float) -> pb.Job:
    end = time.monotonic() + timeout
    while True:
        job = owner.stub.GetJob(pb.GetJobRequest(job_id=job_id), metadata=owner.md, timeout=30)
        if job.state in TERMINAL or time.monotonic() > end:
            return job
        time.sleep(0.2)


def prepare(address: str, long_epochs: int, list_jobs: int) -> dict:
    """Mallory's long finished job, a model to predict with, many stored jobs, and the payloads;
    alice's seeds data set."""
    m, alice = Owner(address, "mallory"), Owner(address, "alice")
    long = m.stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=long_epochs)), metadata=m.md, timeout=60)
    model = m.stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=20)), metadata=m.md, timeout=60)
    big = []
    for i in range(8):                                             # 480 kB specs each
        spec = xor_spec(epochs=1)
        _inline(spec, np.zeros((40_000, 2)), np.zeros((40_000, 1)))
        big.append(spec)
    m.stub.SubmitJobs(pb.SubmitJobsRequest(specs=[xor_spec(epochs=1)] * list_jobs), metadata=m.md, timeout=120)
    for spec in big:
        m.stub.SubmitJob(pb.SubmitJobRequest(spec=spec), metadata=m.md, timeout=60)
    buf = io.BytesIO()                                             # 1.2 MB that decodes to 1.2 GiB
    np.savez_compressed(buf, x=np.zeros((160_000_000, 1), np.float32), y=np.zeros((160_000_000, 1), np.float32))
    big_base = xor_spec()                                          # 3 MB of inline data
    _inline(big_base, np.zeros((250_000, 2)), np.zeros((250_000, 1)))
    too_big = xor_spec(epochs=5)                                   # 1-65536-1, 5,000 rows, full batch
    too_big.model.inputs, too_big.model.layers[0].units = 1, 65_536
    x = np.linspace(0, 1, 5000).reshape(-1, 1)
    _inline(too_big, x, x > 0.5)
    sx, sy = seeds_data()
    seeds = alice.stub.UploadDataset(iter([pb.UploadDatasetRequest(name="seeds", chunk=npz_bytes(x=sx, y=sy))]),
                                     metadata=alice.md, timeout=60)
    done = _wait(m, long.id, 600)
    _wait(m, model.id, 120)
    m.channel.close()
    alice.channel.close()
    return {"long": long.id, "long_state": pb.JobState.Name(done.state), "model": model.id,
            "bomb": buf.getvalue(), "big_base": big_base, "too_big": too_big, "seeds": seeds.id}
