"""The dashboard's HTTP side without a browser: the token rules of gRPC, CSRF on the cancel button,
events resumable after a reconnect, curves thinned without losing the last point."""

from __future__ import annotations

from http.client import HTTPConnection
import json
import urllib.parse

import pytest

from helpers import xor_spec
from web_helpers import ALICE, BOB, get_json, http

from fusetrain.v1 import service_pb2 as pb


@pytest.fixture(scope="module")
def done(dash):
    """An XOR job of alice's (500 epochs), trained to the end."""
    return dash.alice.wait(dash.alice.SubmitJob(pb.SubmitJobRequest(spec=xor_spec())).id)


def _login(url: str, token: str) -> tuple[int, str]:
    """POST the login form; (status, the session cookie pair 'name=value' or '')."""
    parts = urllib.parse.urlsplit(url)
    conn = HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("POST", "/login", body=urllib.parse.urlencode({"token": token}),
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    cookie = (response.getheader("Set-Cookie") or "").split(";")[0]
    conn.close()
    return response.status, cookie


def _events(url: str, token: str, last_event_id: str = "") -> list[tuple[int, str, object]]:
    """The (id, event, data) messages of a finished job's event stream, to its `end`."""
    status, headers, body = http(url, token=token, headers={"Last-Event-ID": last_event_id} if last_event_id else {})
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    out = []
    for block in body.decode().strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        out.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return out


def test_without_a_token_only_the_login_page_is_served(dash, done):
    assert http(dash.url)[0] == 200                                # the page itself: it shows the form
    for path in ("api/jobs", f"api/jobs/{done.id}", "api/server", "api/datasets", "metrics",
                 f"api/jobs/{done.id}/events", f"api/jobs/{done.id}/model.onnx"):
        assert http(dash.url + path)[0] == 401, path
        assert http(dash.url + path, token="not-a-token-of-anyone")[0] == 401, path
    assert _login(dash.url, "wrong-token-0123456789")[1] == ""


def test_each_owner_sees_only_its_own_jobs(dash, done):
    theirs = dash.bob.wait(dash.bob.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=10))).id)
    mine = [j["id"] for j in get_json(dash.url + "api/jobs?size=500", ALICE)["jobs"]]
    assert done.id in mine and theirs.id not in mine
    assert http(dash.url + f"api/jobs/{theirs.id}", token=ALICE)[0] == 404
    assert http(dash.url + f"api/jobs/{theirs.id}/curve", token=ALICE)[0] == 404
    assert http(dash.url + f"api/jobs/{theirs.id}/model.npz", token=ALICE)[0] == 404
    assert http(dash.url + f"api/jobs/{theirs.id}/cancel", "POST", token=ALICE)[0] == 404
    assert get_json(dash.url + f"api/jobs/{theirs.id}", BOB)["state"] == "SUCCEEDED"


def test_the_cancel_button_needs_the_csrf_token(dash, done):
    status, cookie = _login(dash.url, ALICE)
    assert status == 302 and cookie.startswith("fusetrain_session=")
    cancel = dash.url + f"api/jobs/{done.id}/cancel"
    assert http(cancel, "POST", headers={"Cookie": cookie})[0] == 403
    assert http(cancel, "POST", headers={"Cookie": cookie, "X-CSRF-Token": "0" * 64})[0] == 403
    _, _, body = http(dash.url + "api/session", headers={"Cookie": cookie})
    session = json.loads(body)
    assert session["owner"] == "alice"
    status, _, body = http(cancel, "POST", headers={"Cookie": cookie, "X-CSRF-Token": session["csrf"]})
    assert status == 200 and json.loads(body)["state"] == "SUCCEEDED"       # finished: nothing to cancel
    assert http(cancel, "POST", token=ALICE)[0] == 200                      # a bearer header needs none


def test_events_resume_after_a_reconnect_where_they_stopped(dash, done):
    url = dash.url + f"api/jobs/{done.id}/events?after=0"
    whole = _events(url, ALICE)
    assert [kind for _, kind, _ in whole][-2:] == ["state", "end"] and whole[-2][2]["state"] == "SUCCEEDED"
    ids = [i for i, _, _ in whole]
    assert ids == sorted(ids)
    seq_of = {}                                     # each point's sequence number, from its message id
    for i, kind, data in whole:
        if kind == "points":
            for k, point in enumerate(data):
                seq_of[i - len(data) + 1 + k] = point
    assert [p[0] for p in seq_of.values()] == list(range(1, 501))
    middle = sorted(seq_of)[250]
    resumed = _events(url, ALICE, last_event_id=str(middle))
    points = [p for _, kind, data in resumed if kind == "points" for p in data]
    assert points == [seq_of[s] for s in sorted(seq_of) if s > middle]
    assert resumed[-1][1] == "end"


def test_a_long_curve_is_thinned_for_drawing_and_keeps_its_last_point(dash, done):
    whole = get_json(dash.url + f"api/jobs/{done.id}/curve?points=0", ALICE)["points"]
    thin = get_json(dash.url + f"api/jobs/{done.id}/curve?points=50", ALICE)["points"]
    assert len(whole) == 500 and 40 <= len(thin) <= 55
    assert thin[0] == whole[0] and thin[-1] == whole[-1]
    assert http(dash.url + f"api/jobs/{done.id}/curve?points=x", token=ALICE)[0] == 400
    assert http(dash.url + "api/jobs?state=NOPE", token=ALICE)[0] == 400


def test_the_job_api_carries_spec_result_and_sha(dash, done):
    job = get_json(dash.url + f"api/jobs/{done.id}", ALICE)
    result = dash.alice.GetResult(pb.GetResultRequest(job_id=done.id))
    assert job["result"]["weights_sha256"] == result.weights_sha256
    assert "binary_cross_entropy" in job["spec_yaml"] and job["result"]["epochs_run"] == 500
    assert get_json(dash.url + "api/server", ALICE)["workers"] == 2
