"""Every result names the BLAS kernel that did its arithmetic (weights are bit-identical across
thread counts on one kernel; another machine's kernel may round differently)."""

from service_helpers import wait_done, xor_spec

from fusetrain.engine import config as engine_config
from fusetrain.v1 import service_pb2 as pb


def test_result_names_the_blas_kernel(local):
    job = local.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()))
    assert wait_done(local, job.id).state == pb.SUCCEEDED
    result = local.GetResult(pb.GetResultRequest(job_id=job.id))
    kernel = engine_config.blas_kernel()
    assert kernel["library"] == "openblas" and kernel["architecture"]
    assert result.blas_kernel == f"{kernel['library']} {kernel['version']} {kernel['architecture']}"
