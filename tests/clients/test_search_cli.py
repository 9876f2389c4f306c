"""`fusetrain sweep` with a search: the sweep file's `search` section, the table sorted by the
metric, the winner's result through the client, and the file errors that name the key."""

from __future__ import annotations

import pytest
from client_helpers import EXAMPLES, SHARED, parse

from fusetrain.client import Client, errors, jobfiles
from fusetrain.client.searchspec import parse_search

SEEDS = pytest.mark.skipif(not (SHARED / "seeds_dataset.csv").exists(), reason=f"UCI seeds not found under {SHARED}")


def test_search_section_parses_to_the_message(tmp_path):
    sw = jobfiles.load_sweep(EXAMPLES / "sweeps" / "seeds_halving.yaml")
    s = sw.search
    assert (s.kind, s.candidates, s.max_epochs, s.min_epochs, s.eta, s.metric) == ("halving", 27, 81, 3, 3.0,
                                                                                  "val_loss")
    assert [(p.field, p.distribution) for p in s.params] == [
        ("optimizer.learning_rate", "log_uniform"), ("optimizer.momentum", "uniform"),
        ("optimizer.weight_decay", "log_uniform"), ("model.layers[0].units", "choice")]
    assert [v.number_value for v in s.params[3].choices] == [5, 10]
    assert sw.base.training.validation_fraction == 0.2 and not sw.axes      # from `set`


@pytest.mark.parametrize("doc, words", [
    ({"kind": "halving", "budget": 3}, "unknown search keys ['budget']"),
    ({"params": {"optimizer.learning_rate": {"normal": [0, 1]}}}, "search.params.optimizer.learning_rate"),
    ({"params": {"optimizer.learning_rate": {"uniform": [1]}}}, "needs [low, high]"),
    ({"candidates": "many"}, "search:"),
])
def test_search_section_errors_name_the_key(doc, words):
    with pytest.raises(errors.SpecError) as exc:
        parse_search(doc, "s.yaml")
    assert words in str(exc.value)


def test_search_and_grid_together_are_refused(tmp_path):
    (tmp_path / "s.yaml").write_text(f"base: {EXAMPLES / 'jobs' / 'xor.json'}\ngrid: {{model.seed: [0, 1]}}\n"
                                     "search: {candidates: 2}\n")
    with pytest.raises(errors.SpecError, match="give search or grid"):
        jobfiles.load_sweep(tmp_path / "s.yaml")


@SEEDS
def test_sweep_prints_the_search_table(cli):
    args = ("sweep", EXAMPLES / "sweeps" / "seeds_halving.yaml")
    code, out, _ = cli(*args, "--json")
    assert code == 0
    doc = parse(out)
    rows = doc["candidates"]
    assert doc["kind"] == "halving" and len(rows) == 27 and doc["winner"] == rows[0]["index"]
    assert doc["model_epochs"] == sum(r["epochs"] for r in rows)
    top = [r["value"] for r in rows if r["epochs"] == rows[0]["epochs"]]
    assert top == sorted(top)                          # val_loss: lowest first
    assert doc["winner_spec"]["training"]["epochs"] == rows[0]["epochs"]
    with Client(cli.server) as c:
        r = c.result(doc["job_id"])
        assert r.search is not None and r.spec.model.layers[0].units == rows[0]["params"]["model.layers[0].units"]
        assert len(r.weights[0][0]) == r.spec.model.layers[0].units
    code, out, _ = cli(*args)
    assert code == 0 and "halving search, sorted by val_loss" in out and "model-epochs in all" in out
    header = next(line for line in out.splitlines() if line.lstrip().startswith("#"))
    assert header.split()[:7] == ["#", "candidate", "lr", "momentum", "weight_decay", "units", "epochs"]
