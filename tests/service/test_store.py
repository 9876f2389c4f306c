"""The store's schema upgrades: request ids of a schema-2 store become (owner, id) keys; a schema-3
store gains the column of spec data stored apart."""

from __future__ import annotations

import json
import sqlite3

from fusetrain.service.store import SCHEMA, SCHEMA_VERSION, Store, request_id_of, request_key


def _job(job_id: str, owner: str, request_id: str) -> dict:
    return {"id": job_id, "state": 4, "spec": b"", "spec_sha": "", "request_id": request_id,
            "batch_id": None, "name": "", "labels": {}, "epochs_total": 1, "created_at": 0.0,
            "owner": owner}


def test_request_keys_are_pairs():
    assert request_key("alice/x", "r9") != request_key("alice", "x/r9")
    assert request_id_of(request_key("alice", "x/r9")) == "x/r9"
    assert request_key(None, "") is None and request_id_of(None) == ""


def test_schema_2_request_ids_are_migrated(tmp_path):
    store = Store(tmp_path)
    with store.tx() as tx:
        tx.insert_job(_job("j1", "alice", "alice/r1"))
        tx.insert_job(_job("j2", "", "plain"))
        tx.insert_batch("b1", "bob/s1", "sha", ["j3"])
        tx.insert_job(_job("j3", "bob", None))
        tx.c.execute("PRAGMA user_version = 2")
    store.close()
    store = Store(tmp_path)
    with store.tx() as tx:
        assert tx.job_by_request(request_key("alice", "r1"))["id"] == "j1"
        assert tx.job_by_request(request_key("", "plain"))["id"] == "j2"
        assert tx.batch_by_request(request_key("bob", "s1"))["id"] == "b1"
    store.close()
    version = sqlite3.connect(tmp_path / "fusetrain.db").execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION
    assert json.loads(request_key("alice", "r1")) == ["alice", "r1"]


def test_schema_3_store_gains_the_spec_data_column_and_the_results_table(tmp_path):
    """A real schema-3 jobs table (no spec_data_sha): opened, migrated, its rows read as before."""
    old = "\n".join(line.replace("DEFAULT '',", "DEFAULT ''") if "owner " in line else line
                    for line in SCHEMA.splitlines() if "spec_data_sha" not in line)
    conn = sqlite3.connect(tmp_path / "fusetrain.db")
    conn.executescript(old)
    conn.execute("INSERT INTO jobs (id, state, spec, spec_sha, created_at, owner) VALUES ('j1', 4, x'0a01', '', 0, '')")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    store = Store(tmp_path)
    row = store.job("j1")
    assert row["spec"] == b"\n\x01" and row["spec_data_sha"] is None and store.spec_data(row) == b""
    tables = {r[0] for r in store._query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "results" in tables
    store.close()
    version = sqlite3.connect(tmp_path / "fusetrain.db").execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION == 5
