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


def test_the_node_cache_drops_its_least_recently_used_files_over_its_limit(tmp_path, stub_ray, monkeypatch):
    """Over FUSETRAIN_NODE_CACHE_BYTES the oldest files go, never one used in the last KEEP_SECONDS;
    a file fetched again is used again (its mtime renewed)."""
    import os
    from fusetrain.service import ray_files

    server = Files(tmp_path / "server")
    node = tmp_path / "node"
    shas = [server.write("datasets", bytes([i]) * 1000) for i in range(4)]
    refs = [FileShipper(stub_ray).refs(_task(server.root, sha)) for sha in shas]
    for i, r in enumerate(refs[:3]):
        materialise(r, node)
        path = Files.view(node).path("datasets", shas[i])
        os.utime(path, (1000.0 + i, 1000.0 + i))          # used long ago, oldest first
    materialise(refs[0], node)                          # the oldest is used again: now the newest
    monkeypatch.setenv(ray_files.NODE_CACHE_BYTES_VAR, "2500")
    materialise(refs[3], node)                          # a fourth: 4,000 bytes over a limit of 2,500
    have = [Files.view(node).exists("datasets", sha) for sha in shas]
    assert have == [True, False, False, True]           # the two least recently used went
    # nothing used within KEEP_SECONDS is removed, whatever the limit
    assert ray_files.trim(node, 0) == 0 and Files.view(node).exists("datasets", shas[3])
    assert ray_files.trim(node, 0, now=os.path.getmtime(Files.view(node).path("datasets", shas[3]))
                          + ray_files.KEEP_SECONDS + 1) == 2000
