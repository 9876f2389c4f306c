"""Hostile input: hypothesis over every field of JobSpec, tensors, uploads and every RPC, plus raw
random bytes, against a real `fusetrain serve` with two owners. Each case must get an expected
status code (never UNKNOWN or INTERNAL, the server never goes away), and alice's jobs, running
meanwhile, must end with the weights of an uninterrupted in-process run.

FUSETRAIN_FUZZ_EXAMPLES sets hypothesis' examples per strategy (`make fuzz` runs many more)."""

from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
import random
import time
from collections import Counter

import grpc
import numpy as np
import pytest
from google.protobuf import descriptor as D
from hypothesis import HealthCheck, given, settings, strategies as st

from reliability_helpers import ALICE, env_int, rss_bytes, stub_for
from service_helpers import npz_bytes, xor_spec

from helpers import ServerProcess
from fusetrain.v1 import job_pb2, service_pb2 as pb

EXAMPLES = env_int("FUSETRAIN_FUZZ_EXAMPLES", 60)
MALLORY = "mallory-token-5555555555555555"
SERVICE = "/fusetrain.v1.TrainingService/"
MAX_MESSAGE = 1 << 20
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
# method: (request type, client streaming, server streaming)
METHODS = {
    "GetServerInfo": (pb.GetServerInfoRequest, False, False),
    "UploadDataset": (pb.UploadDatasetRequest, True, False),
    "GetDataset": (pb.GetDatasetRequest, False, False),
    "SubmitJob": (pb.SubmitJobRequest, False, False),
    "SubmitJobs": (pb.SubmitJobsRequest, False, False),
    "GetJob": (pb.GetJobRequest, False, False),
    "ListJobs": (pb.ListJobsRequest, False, False),
    "WatchJob": (pb.WatchJobRequest, False, True),
    "CancelJob": (pb.CancelJobRequest, False, False),
    "DeleteJob": (pb.DeleteJobRequest, False, False),
    "GetResult": (pb.GetResultRequest, False, False),
    "Predict": (pb.PredictRequest, False, False),
}
ALLOWED = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
           "ALREADY_EXISTS"}
CASES: set = set()
REFUSED: set = set()     # distinct cases the server refused (the malformed ones)
CODES: Counter = Counter()
BY_KIND: Counter = Counter()


class Target:
    def __init__(self, proc: ServerProcess):
        self.proc = proc
        self.channel, self.stub, self.md = stub_for(proc.address, MALLORY)
        self.victims: list = []

    def call(self, kind: str, method: str, payload) -> str:
        """Send one case (request bytes, or a list of them for a client stream); return the code name."""
        key = hashlib.sha256(method.encode() + (b"\0".join(payload) if isinstance(payload, list)
                                                  else payload)).hexdigest()
        CASES.add(key)
        BY_KIND[kind] += 1
        _, client_stream, server_stream = METHODS[method]
        path = SERVICE + method
        try:
            if client_stream:
                answer = self.channel.stream_unary(path)(iter(payload), metadata=self.md, timeout=30)
            elif server_stream:
                for _ in self.channel.unary_stream(path)(payload, metadata=self.md, timeout=3):
                    pass
                answer = None
            else:
                answer = self.channel.unary_unary(path)(payload, metadata=self.md, timeout=30)
            code = "OK"
        except grpc.RpcError as exc:
            code = exc.code().name
            if code == "DEADLINE_EXCEEDED" and server_stream:
                code = "OK"          # a watch of a live job: it streams until our deadline
            details = exc.details()
            answer = None
        else:
            details = ""
        CODES[code] += 1
        if code != "OK":
            REFUSED.add(key)
        assert code in ALLOWED, f"{kind} {method}: {code} {details!r}"
        if code == "OK" and method in ("SubmitJob", "SubmitJobs"):
            self._cancel_own(method, answer)
        return code

    def _cancel_own(self, method: str, answer: bytes) -> None:
        """Mallory's accepted jobs are force-cancelled at once: the workers stay free for alice."""
        if method == "SubmitJob":
            ids = [pb.Job.FromString(answer).id]
        else:
            ids = [j.id for j in pb.SubmitJobsResponse.FromString(answer).jobs]
        for job_id in ids:
            self.stub.CancelJob(pb.CancelJobRequest(job_id=job_id, force=True), metadata=self.md, timeout=30)


def victim_specs() -> list[job_pb2.JobSpec]:
    specs = []
    for seed in range(3):
        s = xor_spec(epochs=3000)
        s.name, s.model.seed = f"victim-{seed}", seed
        specs.append(s)
    return specs


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "tokens").write_text(f"alice {ALICE}\nmallory {MALLORY}\n")
    proc = ServerProcess(root / "data", "--workers", "2", "--token-file", str(root / "tokens"),
                         "--max-epochs", "5000", "--max-job-seconds", "30", "--max-batch-jobs", "20",
                         "--max-message-bytes", str(MAX_MESSAGE), "--max-parameters", "200000",
                         "--max-queued-jobs", "2000")
    try:
        proc.wait_healthy()
        t = Target(proc)
        channel, alice, md = stub_for(proc.address, ALICE)
        t.victims = [(spec, alice.SubmitJob(pb.SubmitJobRequest(spec=spec), metadata=md).id)
                     for spec in victim_specs()]
        t.alice = (channel, alice, md)
        yield t
        t.channel.close()
        channel.close()
    finally:
        code = proc.stop()
        log = "\n".join(proc.log)
        assert "internal error" not in log and "Traceback" not in log, log[-3000:]
        assert code == 0, log[-3000:]


# ---------------------------------------------------------------------------- JobSpec fields

def _leaf_paths(descriptor, prefix=(), depth=0):
    """Every scalar field path of a message type (repeated messages through their first item)."""
    out = []
    for f in descriptor.fields:
        path = prefix + (f,)
        if f.type == D.FieldDescriptor.TYPE_MESSAGE:
            if f.message_type.GetOptions().map_entry:
                out.append(path)
            elif depth < 4:
                out += _leaf_paths(f.message_type, path, depth + 1)
        else:
            out.append(path)
    return out


SPEC_PATHS = _leaf_paths(job_pb2.JobSpec.DESCRIPTOR)
INT_LIMITS = {D.FieldDescriptor.CPPTYPE_INT32: (-2**31, 2**31 - 1), D.FieldDescriptor.CPPTYPE_INT64: (-2**63, 2**63 - 1),
              D.FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1), D.FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1)}
PICKLED = pickle.dumps({"x": np.arange(3)}) + pickle.dumps(os.system)


def hostile_value(field):
    t = field.cpp_type
    if t in INT_LIMITS:
        lo, hi = INT_LIMITS[t]
        special = [v for v in (0, -1, 1, 2, 2**40, -2**40, 2**31 - 1, -2**31, 2**63 - 1, 10**9) if lo <= v <= hi]
        return st.one_of(st.sampled_from(special), st.integers(lo, hi))
    if t in (D.FieldDescriptor.CPPTYPE_DOUBLE, D.FieldDescriptor.CPPTYPE_FLOAT):
        return st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, -1e308, 5e-324, -1.0]),
                         st.floats(allow_nan=True, allow_infinity=True, width=32 if t == D.FieldDescriptor.CPPTYPE_FLOAT else 64))
    if t == D.FieldDescriptor.CPPTYPE_BOOL:
        return st.booleans()
    if t == D.FieldDescriptor.CPPTYPE_ENUM:
        return st.integers(-5, 1000)
    if t == D.FieldDescriptor.CPPTYPE_STRING and field.type == D.FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), st.sampled_from([b"", PICKLED, b"\x00" * 7]))
    return st.one_of(st.sampled_from(["", "nonsense", "\x00", "float16", "object", "O", "relu'; DROP TABLE jobs; --",
                                      "../../../etc/passwd", "a" * 5000, "0" * 64, "\u202e\ufeff"]),
                     st.text(max_size=40))


def _set(message, path, value):
    """Set the leaf at `path` (creating items of repeated messages), repeated scalars get [value]."""
    for f in path[:-1]:
        if f.is_repeated:
            items = getattr(message, f.name)
            message = items[0] if len(items) else items.add()
        else:
            message = getattr(message, f.name)
    leaf = path[-1]
    if leaf.type == D.FieldDescriptor.TYPE_MESSAGE:          # a map: one odd entry
        getattr(message, leaf.name)[str(value)[:80]] = str(value)[:300]
    elif leaf.is_repeated:
        getattr(message, leaf.name)[:] = [value] * 3
    else:
        setattr(message, leaf.name, value)


@st.composite
def spec_mutations(draw):
    spec = xor_spec(epochs=5)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(SPEC_PATHS))
        value = draw(hostile_value(path[-1]) if path[-1].type != D.FieldDescriptor.TYPE_MESSAGE
                     else st.text(max_size=20))
        try:
            _set(spec, path, value)
        except (ValueError, TypeError):     # protobuf's own range checks: not sendable
            pass
    return spec


@FUZZ
@given(spec=spec_mutations(), batch=st.booleans())
def test_every_jobspec_field(target, spec, batch):
    if batch:
        request = pb.SubmitJobsRequest(specs=[spec, xor_spec(epochs=2)])
        target.call("spec-field", "SubmitJobs", request.SerializeToString())
    else:
        target.call("spec-field", "SubmitJob", pb.SubmitJobRequest(spec=spec).SerializeToString())


# ---------------------------------------------------------------------------- tensors

DTYPES = ["float32", "float64", "int32", "int64", "uint8", "", "object", "O", "<f8", ">f4", "float16",
          "complex128", "str", "V8", "bool"]


@st.composite
def tensors(draw):
    t = job_pb2.Tensor(dtype=draw(st.sampled_from(DTYPES)))
    t.shape[:] = draw(st.lists(st.sampled_from([0, 1, 2, 3, 4, -1, -4, 2**40, 2**62]) | st.integers(-3, 9),
                               max_size=5))
    if draw(st.booleans()):
        t.data = draw(st.one_of(st.binary(max_size=96), st.sampled_from([PICKLED, b""]),
                                st.builds(lambda n: np.full(n, np.nan).tobytes(), st.integers(0, 12))))
    else:
        t.values[:] = draw(st.lists(st.sampled_from([0.0, 1.0, math.nan, math.inf, -math.inf, 1e308]),
                                    max_size=12))
    return t


@FUZZ
@given(x=tensors(), y=tensors(), where=st.sampled_from(["train", "validation", "weights", "predict"]))
def test_tensors(target, x, y, where):
    spec = xor_spec(epochs=5)
    if where == "train":
        spec.data.train.x.CopyFrom(x)
        spec.data.train.y.CopyFrom(y)
    elif where == "validation":
        spec.data.validation.x.CopyFrom(x)
        spec.data.validation.y.CopyFrom(y)
    elif where == "weights":
        spec.model.layers[0].weights.CopyFrom(x)
        spec.model.layers[0].bias.CopyFrom(y)
    if where == "predict":
        job_id = target.victims[0][1]
        target.call("tensor", "Predict", pb.PredictRequest(job_id=job_id, x=x).SerializeToString())
    else:
        target.call("tensor", "SubmitJob", pb.SubmitJobRequest(spec=spec).SerializeToString())


# ---------------------------------------------------------------------------- uploads

def _object_npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=np.array([{"a": 1}, None], dtype=object), y=np.zeros((2, 1)))
    return buf.getvalue()


GOOD_NPZ = npz_bytes(x=np.zeros((8, 2), np.float32), y=np.ones((8, 1), np.float32))
BAD_NPZ = [_object_npz(), npz_bytes(x=np.full((4, 2), np.nan), y=np.zeros((4, 1))),
           npz_bytes(x=np.array(["a", "b"]), y=np.zeros(2)), npz_bytes(), PICKLED, b"PK\x03\x04" + b"\0" * 40]


@FUZZ
@given(blob=st.sampled_from([GOOD_NPZ, *BAD_NPZ]) | st.binary(max_size=300),
       cut=st.integers(0, 2000), chunk=st.integers(1, 700), how=st.sampled_from(["truncate", "reorder", "flip", "as is"]),
       fmt=st.sampled_from(["", "npz", "csv", "pickle", "\x00"]))
def test_uploads(target, blob, cut, chunk, how, fmt):
    if how == "truncate":
        blob = blob[:cut % (len(blob) + 1)]
    elif how == "flip" and blob:
        i = cut % len(blob)
        blob = blob[:i] + bytes([blob[i] ^ 0xFF]) + blob[i + 1:]
    chunks = [blob[i:i + chunk] for i in range(0, len(blob), chunk)] or [b""]
    if how == "reorder" and len(chunks) > 1:
        random.Random(cut).shuffle(chunks)
    requests = [pb.UploadDatasetRequest(name="fuzz" if i == 0 else "", format=fmt if i == 0 else "",
                                        chunk=c).SerializeToString() for i, c in enumerate(chunks)]
    target.call("upload", "UploadDataset", requests)


# ---------------------------------------------------------------------------- every RPC

@st.composite
def messages(draw, descriptor, depth=0):
    """Any message of a type: random fields, nested messages to a few levels."""
    from google.protobuf import message_factory
    msg = message_factory.GetMessageClass(descriptor)()
    for f in draw(st.lists(st.sampled_from(list(descriptor.fields)), max_size=6, unique_by=lambda f: f.name)
                  if descriptor.fields else st.just([])):
        try:
            if f.type == D.FieldDescriptor.TYPE_MESSAGE:
                if f.message_type.GetOptions().map_entry:
                    getattr(msg, f.name)[draw(st.text(max_size=10))] = draw(st.text(max_size=10))
                elif f.message_type.full_name.startswith("google.protobuf.") or depth >= 4:
                    continue
                elif f.is_repeated:
                    for _ in range(draw(st.integers(0, 2))):
                        getattr(msg, f.name).add().CopyFrom(draw(messages(f.message_type, depth + 1)))
                else:
                    getattr(msg, f.name).CopyFrom(draw(messages(f.message_type, depth + 1)))
            elif f.is_repeated:
                getattr(msg, f.name)[:] = draw(st.lists(hostile_value(f), max_size=3))
            else:
                setattr(msg, f.name, draw(hostile_value(f)))
        except (ValueError, TypeError):
            pass
    return msg


@FUZZ
@given(data=st.data(), method=st.sampled_from(sorted(METHODS)))
def test_every_rpc_with_random_messages(target, data, method):
    request_type, client_stream, _ = METHODS[method]
    request = data.draw(messages(request_type.DESCRIPTOR))
    if method in ("GetJob", "GetResult", "Predict", "WatchJob", "CancelJob", "DeleteJob") and data.draw(st.booleans()):
        request.job_id = target.victims[0][1]       # alice's job: mallory must get NOT_FOUND
    raw = request.SerializeToString()
    code = target.call("rpc", method, [raw] if client_stream else raw)
    if request.job_id == target.victims[0][1] if hasattr(request, "job_id") else False:
        assert code == "NOT_FOUND"


NESTED = b"".join([b"\x1a\x7f"] * 200)   # field 3, length 127, over and over: nested nonsense


@FUZZ
@given(raw=st.binary(max_size=512) | st.sampled_from([NESTED, b"\x0b" * 300, b"\xff" * 64, b"\x0a\xff\xff\xff\xff\x0f"]),
       method=st.sampled_from(sorted(METHODS)))
def test_raw_random_bytes(target, raw, method):
    target.call("raw-bytes", method, [raw] if METHODS[method][1] else raw)


# ---------------------------------------------------------------------------- named cases

def _named_cases():
    """The issue's list, spelled out once each."""
    def spec(**edit):
        s = xor_spec(epochs=5)
        for key, fn in edit.items():
            fn(s)
        return s

    def tensor(dtype, shape, data=b"", values=()):
        return job_pb2.Tensor(dtype=dtype, shape=shape, data=data, values=list(values))

    x = lambda t: (lambda s: s.data.train.x.CopyFrom(t))  # noqa: E731
    cases = {
        "nan data": spec(a=x(tensor("", [4, 2], values=[math.nan] * 8))),
        "inf data": spec(a=x(tensor("float32", [4, 2], np.full(8, np.inf, np.float32).tobytes()))),
        "mismatched shapes": spec(a=x(tensor("", [3, 2], values=[0] * 6))),
        "2**40 units": spec(a=lambda s: setattr(s.model.layers[0], "units", 2**31 - 1)),
        "negative units": spec(a=lambda s: setattr(s.model.layers[0], "units", -4)),
        "zero units": spec(a=lambda s: setattr(s.model.layers[0], "units", 0)),
        "negative batch": spec(a=lambda s: setattr(s.training, "batch_size", -1)),
        "zero inputs": spec(a=lambda s: setattr(s.model, "inputs", 0)),
        "2**40 shape": spec(a=x(tensor("float32", [2**40, 2], b"\0" * 32))),
        "negative shape": spec(a=x(tensor("float32", [-4, -2], b"\0" * 32))),
        "empty data": spec(a=x(tensor("float32", [0, 2]))),
        "zero rows, 2**62 columns": spec(a=x(tensor("float32", [0, 2**62]))),   # found by make fuzz
        "wrong byte count": spec(a=x(tensor("float32", [4, 2], b"\0" * 31))),
        "object dtype": spec(a=x(tensor("object", [4, 2], PICKLED))),
        "pickled payload": spec(a=x(tensor("", [4, 2], PICKLED))),
        "unknown activation": spec(a=lambda s: setattr(s.model.layers[0], "activation", "gelu2")),
        "unknown optimizer": spec(a=lambda s: setattr(s.optimizer, "kind", "adamw9")),
        "wrong sha256 dataset": spec(a=lambda s: s.data.train.ClearField("x"),
                                     b=lambda s: setattr(s.data.train, "dataset_id", "0" * 64)),
        "not a sha256 dataset": spec(a=lambda s: setattr(s.data.train, "dataset_id", "../../fusetrain.db")),
    }
    out = [(name, "SubmitJob", pb.SubmitJobRequest(spec=s).SerializeToString()) for name, s in cases.items()]
    out.append(("unknown enum state", "ListJobs", b"\x08\xe7\x07"))      # states = [999]
    out.append(("deeply nested", "SubmitJob", NESTED))
    out.append(("wrong sha256 get", "GetDataset", pb.GetDatasetRequest(dataset_id="f" * 64).SerializeToString()))
    return out


@pytest.mark.parametrize("name, method, raw", _named_cases(), ids=[c[0] for c in _named_cases()])
def test_named_cases(target, name, method, raw):
    assert target.call("named", method, raw) in ("INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "NOT_FOUND")


def test_named_uploads(target):
    chunks = [GOOD_NPZ[i:i + 100] for i in range(0, len(GOOD_NPZ), 100)]
    for name, parts in [("truncated", chunks[:-1]), ("reordered", chunks[::-1]), ("object", [_object_npz()]),
                        ("pickle", [PICKLED]), ("empty", [b""])]:
        raw = [pb.UploadDatasetRequest(chunk=c).SerializeToString() for c in parts]
        assert target.call("named", "UploadDataset", raw) == "INVALID_ARGUMENT", name


def test_oversized_request_then_a_small_one(target):
    big = pb.SubmitJobRequest(spec=xor_spec())
    big.spec.data.train.x.data = b"\0" * (MAX_MESSAGE + 1024)
    raw = big.SerializeToString()
    pid = target.proc.proc.pid
    before = rss_bytes(pid)
    for i in range(20):
        assert target.call("oversized", "SubmitJob", raw + bytes([i]) * 0) == "RESOURCE_EXHAUSTED"
        assert target.call("oversized", "GetServerInfo", b"") == "OK"
    growth = rss_bytes(pid) - before
    print(f"\noversized: 20 requests of {len(raw) / 2**20:.2f} MiB refused RESOURCE_EXHAUSTED, each followed "
          f"by a served small one; server memory {before / 2**20:.1f} -> {(before + growth) / 2**20:.1f} MiB")
    assert growth < 64 << 20


def test_zz_others_unaffected_and_summary(target):
    from fusetrain.client.local import train_local

    channel, alice, md = target.alice
    for spec, job_id in target.victims:
        for _ in alice.WatchJob(pb.WatchJobRequest(job_id=job_id), metadata=md, timeout=300):
            pass
        result = alice.GetResult(pb.GetResultRequest(job_id=job_id), metadata=md)
        assert result.weights_sha256 == train_local(spec).weights_sha256
    health = target.stub.GetServerInfo(pb.GetServerInfoRequest(), metadata=target.md)
    assert health.version
    print(f"\nfuzz: {len(CASES)} distinct cases, {len(REFUSED)} of them malformed and refused; calls by kind "
          f"{dict(BY_KIND)}; status codes {dict(CODES)}; "
          f"0 UNKNOWN/INTERNAL; server alive; {len(target.victims)} concurrent jobs of another owner "
          f"bit-identical to uninterrupted runs")
    assert len(REFUSED) >= 200
    assert not (set(CODES) - ALLOWED - {"DEADLINE_EXCEEDED"})
