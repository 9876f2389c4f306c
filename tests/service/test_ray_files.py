"""Files for Ray tasks without a shared disk (service/ray_files.py), with Ray replaced by a stub:
each file is put once per content, and a node keeps only bytes whose sha256 is their name."""

from __future__ import annotations

import hashlib
import sys
import types

import pytest

from fusetrain.service import executor as ex
from fusetrain.service.config import ServiceLimits
from fusetrain.service.files import Files
from fusetrain.service.ray_files import FileShipper, materialise
from fusetrain.v1 import job_pb2


class StubRay:
    """ray.put returns the bytes themselves as the reference; ray.get returns them back."""

    def __init__(self):
        self.put_calls = 0

    def put(self, data):
        self.put_calls += 1
        return data

    @staticmethod
    def get(ref):
        return ref


@pytest.fixture
def stub_ray(monkeypatch):
    ray = StubRay()
    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(put=ray.put, get=ray.get))
    return ray


def _task(data_dir, dataset_id: str) -> ex.Task:
    spec = job_pb2.JobSpec()
    spec.data.train.dataset_id = dataset_id
    return ex.Task(job_id="j", attempt=1, spec=spec.SerializeToString(), data_dir=str(data_dir), threads=1,
                   time_limit=60.0, checkpoint_seconds=5.0, limits=ServiceLimits(), threads_per_worker=1)


def test_a_dataset_is_put_once_for_every_job_that_reads_it_and_lands_in_the_node_cache(tmp_path, stub_ray):
    server = Files(tmp_path / "server")
    sha = server.write("datasets", b"the dataset's bytes")
    shipper = FileShipper(stub_ray)
    refs = [shipper.refs(_task(server.root, sha)) for _ in range(4)]
    assert shipper.puts == 1 and stub_ray.put_calls == 1
    node = materialise(refs[0], tmp_path / "node")
    assert Files.view(node).read("datasets", sha) == b"the dataset's bytes"


def test_bytes_that_do_not_match_their_sha256_are_refused_and_never_stored_under_it(tmp_path, stub_ray):
    claimed = hashlib.sha256(b"what the server has").hexdigest()
    with pytest.raises(OSError, match=f"datasets file {claimed} arrived with sha256"):
        materialise({("datasets", claimed): b"something else"}, tmp_path / "node")
    assert not Files.view(tmp_path / "node").exists("datasets", claimed)
