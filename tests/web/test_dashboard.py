"""The dashboard in a real browser (Debian's chromium, driven by Playwright): jobs listed live,
curves gaining points, cancel, a 5-fold cross-validation page, an ONNX download, owners kept
apart, no request leaving the server, and a screenshot of every page."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from helpers import npz_bytes, seeds_data, upload, xor_spec
from web_helpers import cv_request, long_spec

from fusetrain.v1 import service_pb2 as pb
from fusetrain.wire.tensors import array_to_tensor, tensor_to_array

LAST_EPOCH = "Number((document.querySelector('#points') || {dataset: {}}).dataset.last || 0)"   # on the page
XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)


@pytest.fixture(scope="module")
def xor_job(dash):
    """An XOR job of alice's, trained to the end."""
    job = dash.alice.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()))
    return dash.alice.wait(job.id)


@pytest.fixture(scope="module")
def cv_batch(dash):
    """A 5-fold cross-validation of alice's on an uploaded dataset, run to the end."""
    x, y = seeds_data()
    dataset = upload(dash.alice, npz_bytes(x=x, y=y), name="seeds")
    reply = dash.alice.SubmitJobs(cv_request(dataset.id))
    return reply.batch_id, [dash.alice.wait(j.id) for j in reply.jobs]


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where the screenshots go: $FUSETRAIN_SCREENSHOTS (`make dashboard-shots`: docs/dashboard), else a temporary folder."""
    return Path(os.environ.get("FUSETRAIN_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))


def test_the_jobs_page_lists_a_job_submitted_through_grpc(alice_page, dash):
    job = dash.alice.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=50)))
    row = alice_page.wait_for_selector(f'tr[data-job="{job.id}"]')     # the table refreshes by itself
    assert "xor" in row.inner_text() and "task=xor" in row.inner_text()
    dash.alice.wait(job.id)
    alice_page.wait_for_function(f"""() => document.querySelector('tr[data-job="{job.id}"] .state')
                                       .textContent === 'SUCCEEDED'""")
    alice_page.select_option("#filter-state", "RUNNING")
    alice_page.wait_for_function("() => location.hash.includes('state=RUNNING')")
    alice_page.wait_for_function(f"""() => !document.querySelector('tr[data-job="{job.id}"]')""")
    assert alice_page.outside == []


def test_a_curve_gains_points_while_its_job_trains(alice_page, dash):
    job = dash.alice.SubmitJob(pb.SubmitJobRequest(spec=long_spec("live curve")))
    try:
        alice_page.goto(f"{dash.url}#/job/{job.id}")
        alice_page.wait_for_function(f"() => {LAST_EPOCH} > 0")
        first = alice_page.evaluate(f"() => {LAST_EPOCH}")
        alice_page.wait_for_function(f"() => {LAST_EPOCH} > {first}")
        assert alice_page.evaluate("() => document.querySelectorAll('#charts canvas').length") >= 2
    finally:
        dash.alice.CancelJob(pb.CancelJobRequest(job_id=job.id))
    assert dash.alice.wait(job.id).state == pb.CANCELLED
    assert alice_page.outside == []


def test_cancel_from_the_page_ends_the_job_cancelled(alice_page, dash):
    job = dash.alice.SubmitJob(pb.SubmitJobRequest(spec=long_spec("to cancel")))
    alice_page.goto(f"{dash.url}#/job/{job.id}")
    alice_page.wait_for_function(f"() => {LAST_EPOCH} > 0")
    with alice_page.expect_response(lambda r: r.url.endswith(f"/api/jobs/{job.id}/cancel")) as answer:
        alice_page.click("#cancel")
    assert answer.value.status == 200, answer.value.text()
    assert answer.value.json()["state"] in ("CANCELLING", "CANCELLED")
    assert dash.alice.wait(job.id).state == pb.CANCELLED
    alice_page.wait_for_function("() => (document.querySelector('#job-state') || {}).textContent === 'CANCELLED'")
    assert alice_page.outside == []


def test_a_five_fold_cross_validation_page_shows_five_rows_and_the_mean(alice_page, dash, cv_batch):
    batch_id, jobs = cv_batch
    assert [j.state for j in jobs] == [pb.SUCCEEDED] * 5
    alice_page.goto(f"{dash.url}#/batch/{batch_id}")
    alice_page.wait_for_selector("#batch-stats")
    assert alice_page.locator("#batch-table tbody tr").count() == 5
    mean = float(alice_page.inner_text('#batch-stats tr[data-metric="val_loss"] .mean'))
    assert mean == pytest.approx(np.mean([j.latest.val_loss for j in jobs]), rel=1e-3)
    assert "data.cross_validation.fold" in alice_page.inner_text("#batch-table thead")
    alice_page.click('th[data-key="val_loss"]')                 # sortable: lowest first
    shown = [float(t) for t in alice_page.locator('#batch-table tbody td[data-key="val_loss"]').all_inner_texts()]
    assert alice_page.locator("#batch-plots canvas").count() >= 2
    assert shown == sorted(shown)
    assert alice_page.outside == []


def test_an_onnx_download_runs_in_onnxruntime(alice_page, dash, xor_job, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    alice_page.goto(f"{dash.url}#/job/{xor_job.id}")
    alice_page.wait_for_selector("#download-onnx:not([hidden])")
    with alice_page.expect_download() as download:
        alice_page.click("#download-onnx")
    path = tmp_path / "model.onnx"
    download.value.save_as(path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: XOR_X})[0]
    served = dash.alice.Predict(pb.PredictRequest(job_id=xor_job.id, x=array_to_tensor(XOR_X)))
    np.testing.assert_allclose(out, tensor_to_array(served.y), atol=1e-5)
    assert (out[:, 0] > 0.5).tolist() == [False, True, True, False]
    assert alice_page.outside == []


def test_another_owners_job_does_not_appear(alice_page, dash, xor_job):
    theirs = dash.bob.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=20)))
    dash.bob.wait(theirs.id)
    alice_page.goto(f"{dash.url}#/jobs")
    alice_page.wait_for_selector(f'tr[data-job="{xor_job.id}"]')
    assert alice_page.locator(f'tr[data-job="{theirs.id}"]').count() == 0
    assert alice_page.request.get(f"{dash.url}api/jobs/{theirs.id}").status == 404
    alice_page.goto(f"{dash.url}#/job/{theirs.id}")
    assert "not found" in alice_page.wait_for_selector("#error").inner_text()
    assert alice_page.outside == []


def test_every_page_works_offline_and_is_screenshotted(alice_page, dash, xor_job, cv_batch, shots):
    batch_id, jobs = cv_batch
    pages = {"jobs": "#/jobs", "job": f"#/job/{jobs[0].id}", "batch": f"#/batch/{batch_id}",
             "datasets": "#/datasets", "server": "#/server"}
    shots.mkdir(parents=True, exist_ok=True)
    for name, route in pages.items():
        alice_page.goto(f"{dash.url}{route}")
        alice_page.wait_for_function(f"() => document.body.dataset.ready === {route[1:].split('?')[0]!r}")
        alice_page.wait_for_timeout(300)                      # charts drawn
        alice_page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    assert alice_page.evaluate("() => typeof uPlot") == "function"
    assert alice_page.outside == []                           # nothing but the server was asked
    for name in pages:
        data = (shots / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
