"""The dashboard's pure parts: curve points from stored epoch blocks, thinning that keeps the last
point, a batch's swept fields and statistics, and the session rules (login, CSRF) on tokens."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusetrain.service.executor import METRIC_FIELDS
from fusetrain.service.messages import pack_epoch_block
from fusetrain.service.web import views
from fusetrain.service.web.session import COOKIE, Sessions
from fusetrain.v1 import job_pb2, service_pb2 as pb


def _rows(epochs) -> np.ndarray:
    rows = np.full((len(epochs), len(METRIC_FIELDS)), math.nan)
    rows[:, METRIC_FIELDS.index("epoch")] = epochs
    rows[:, METRIC_FIELDS.index("train_loss")] = 1.0 / np.asarray(epochs)
    rows[:, METRIC_FIELDS.index("learning_rate")] = 0.1
    return rows


def test_curve_points_come_from_a_stored_block_with_missing_metrics_as_none():
    points = views.curve_points(pack_epoch_block(_rows([1, 2, 3]), when=5.0), 3)
    assert points == [[1.0, 1.0, None, None, None, 0.1, None, None, None, None], [2.0, 0.5, None, None, None, 0.1, None, None, None, None],
                      [3.0, 1 / 3, None, None, None, 0.1, None, None, None, None]]


def test_curve_points_of_a_block_stored_before_the_later_metrics_were_added():
    old = pack_epoch_block(_rows([1, 2])[:, :8], when=5.0)      # the first eight metrics only
    assert views.curve_points(old, 2) == [[1.0, 1.0, None, None, None, 0.1, None, None, None, None], [2.0, 0.5, None, None, None, 0.1, None, None, None, None]]


def test_curves_and_results_carry_the_validation_scores():
    rows = _rows([1, 2])
    rows[:, METRIC_FIELDS.index("val_rmse")] = [0.5, 0.25]
    rows[:, METRIC_FIELDS.index("val_r2")] = [0.1, 0.6]
    points = views.curve_points(pack_epoch_block(rows, when=5.0), 2)
    at = views.CURVE_FIELDS.index
    assert [p[at("val_rmse")] for p in points] == [0.5, 0.25]
    assert [p[at("val_r2")] for p in points] == [0.1, 0.6]
    assert [p[at("val_macro_f1")] for p in points] == [None, None]
    result = pb.JobResult(final=pb.FinalMetrics(train_loss=0.2, val_macro_f1=0.75, train_rmse=0.3))
    final = views.result_dict(result)["final"]
    assert final["val_macro_f1"] == 0.75 and final["train_rmse"] == 0.3
    assert final["val_r2"] is None and final["train_accuracy"] is None


@pytest.mark.parametrize("n, limit", [(10, 100), (1000, 100), (12_345, 2000), (7, 3)])
def test_thinning_keeps_the_first_and_last_point_and_stays_near_the_limit(n, limit):
    points = [[float(e), 1.0 / e] for e in range(1, n + 1)]
    thin = views.thin_points(points, limit)
    assert thin[0] == points[0] and thin[-1] == points[-1]
    assert len(thin) == n if n <= limit else len(thin) <= limit + 1
    epochs = [p[0] for p in thin]
    assert epochs == sorted(set(epochs))


def _row(i: int, val_loss: float) -> dict:
    latest = pb.EpochMetrics(epoch=10, train_loss=0.5, val_loss=val_loss)
    return {"id": f"job{i}", "name": "cv", "state": pb.SUCCEEDED, "labels": {}, "batch_id": "batch-x",
            "epochs_done": 10, "epochs_total": 10, "message": "", "attempt": 1, "created_at": 1.0,
            "started_at": 2.0, "finished_at": 3.0, "result_sha": "ab", "latest": latest.SerializeToString()}


def test_a_batch_names_its_swept_fields_and_the_mean_and_spread_of_each_metric():
    specs = []
    for fold in range(5):
        spec = job_pb2.JobSpec(name="cv")
        spec.training.epochs = 10
        spec.data.cross_validation.folds = 5
        spec.data.cross_validation.fold = fold
        specs.append(spec)
    losses = [0.1, 0.2, 0.3, 0.4, 0.5]
    summary = views.batch_summary([_row(i, v) for i, v in enumerate(losses)], specs)
    assert summary["fields"] == ["data.cross_validation.fold"]
    assert summary["folds"] == "data.cross_validation.fold"
    assert [j["fields"]["data.cross_validation.fold"] for j in summary["jobs"]] == [0, 1, 2, 3, 4]
    assert summary["stats"]["val_loss"]["mean"] == pytest.approx(0.3)
    assert summary["stats"]["val_loss"]["std"] == pytest.approx(np.std(losses))
    assert summary["stats"]["train_loss"] == {"mean": 0.5, "std": 0.0, "n": 5}
    assert "val_accuracy" not in summary["stats"]


def test_logins_and_csrf_follow_the_services_tokens():
    sessions = Sessions({"alice": "a" * 20, "bob": "b" * 20})
    assert sessions.caller({}, {}) is None
    assert sessions.caller({"Authorization": "Bearer " + "a" * 19}, {}) is None
    assert sessions.caller({"Authorization": "Bearer " + "b" * 20}, {}).owner == "bob"
    assert sessions.login("c" * 20) is None
    sid = sessions.login("a" * 20)
    caller = sessions.caller({}, {COOKIE: sid})
    assert caller.owner == "alice" and not caller.bearer
    assert sessions.csrf_ok(caller, sessions.csrf(caller)) and not sessions.csrf_ok(caller, "")
    other = sessions.caller({}, {COOKIE: sessions.login("b" * 20)})
    assert not sessions.csrf_ok(caller, sessions.csrf(other))
    sessions.logout(sid)
    assert sessions.caller({}, {COOKIE: sid}) is None
    open_ = Sessions({})
    assert open_.caller({}, {}).owner is None and open_.login("a" * 20) is None
