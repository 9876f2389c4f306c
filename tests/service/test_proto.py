"""fusetrain.v1 is generated: regenerating it from proto/ must change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "proto"


def test_generated_modules_are_up_to_date(tmp_path):
    protoc = pytest.importorskip("grpc_tools.protoc", reason="grpcio-tools is in the test extra")
    import grpc_tools
    sources = sorted(str(p.relative_to(PROTO)) for p in (PROTO / "fusetrain" / "v1").glob("*.proto"))
    include = str(Path(grpc_tools.__file__).parent / "_proto")
    rc = protoc.main(["protoc", f"-I{PROTO}", f"-I{include}", f"--python_out={tmp_path}",
                      f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}",
                      *(str(PROTO / s) for s in sources)])
    assert rc == 0
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert generated, "protoc produced nothing"
    stale = [str(g) for g in generated if (PROTO / g).read_bytes() != (tmp_path / g).read_bytes()]
    assert not stale, f"run `make proto` and commit: {stale} differ from proto/*.proto"


def test_job_file_json_round_trip():
    """The job file format is JobSpec's proto3 JSON: the example parses and prints back the same."""
    import json
    from google.protobuf import json_format
    from fusetrain.v1 import job_pb2

    text = json.loads((ROOT / "examples" / "jobs" / "xor.json").read_text())
    spec = json_format.ParseDict(text, job_pb2.JobSpec())
    assert spec.model.layers[0].activation == "tanh" and spec.training.batch_size == 0
    assert spec.training.HasField("batch_size")          # 0 (full batch) is not "unset"
    back = json_format.MessageToDict(spec, preserving_proto_field_name=True)
    assert json_format.ParseDict(back, job_pb2.JobSpec()) == spec
