"""The store's tables and their migrations (store.py opens the database and calls `migrate`)."""

from __future__ import annotations

import json
import sqlite3
from typing import Optional

SCHEMA_VERSION = 5   # 2: jobs.owner; 3: request ids keyed by (owner, request id); 4: jobs.spec_data_sha;
                     # 5: the results table (a server of schema 4 would not look there)


def request_key(owner: Optional[str], request_id: str) -> Optional[str]:
    """A client request id as stored: the pair (owner, id) in one unambiguous string (a JSON
    array), so no two owners' ids can collide whatever characters they hold."""
    if not request_id:
        return None
    return json.dumps([owner or "", request_id], ensure_ascii=False, separators=(",", ":"))


def request_id_of(key: Optional[str]) -> str:
    """The client's request id in a stored key."""
    if not key:
        return ""
    return json.loads(key)[1]


SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,  -- submission order
    id             TEXT NOT NULL UNIQUE,
    state          INTEGER NOT NULL,                   -- fusetrain.v1.JobState
    spec           BLOB NOT NULL,                      -- serialized JobSpec, without the inline data
                                                       -- tensors when spec_data_sha is set
    spec_sha       TEXT NOT NULL,
    request_id     TEXT UNIQUE,
    batch_id       TEXT,
    name           TEXT NOT NULL DEFAULT '',
    labels         TEXT NOT NULL DEFAULT '{}',         -- JSON object
    failure_reason INTEGER NOT NULL DEFAULT 0,         -- fusetrain.v1.FailureReason
    message        TEXT NOT NULL DEFAULT '',
    attempt        INTEGER NOT NULL DEFAULT 0,
    epochs_done    INTEGER NOT NULL DEFAULT 0,
    epochs_total   INTEGER NOT NULL DEFAULT 0,
    latest         BLOB,                               -- serialized EpochMetrics
    created_at     REAL NOT NULL,
    started_at     REAL,
    finished_at    REAL,
    result_sha     TEXT,                               -- results/<sha>.pb
    checkpoint_sha TEXT,                               -- checkpoints/<sha>.npz
    next_seq       INTEGER NOT NULL DEFAULT 1,         -- next event sequence number
    owner          TEXT NOT NULL DEFAULT '',           -- the token's owner ('' without authentication)
    spec_data_sha  TEXT                                -- specdata/<sha>.pb: the spec's inline tensors
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, seq);
CREATE INDEX IF NOT EXISTS jobs_by_batch ON jobs(batch_id, seq);
CREATE TABLE IF NOT EXISTS events (
    job_id    TEXT NOT NULL,
    seq_first INTEGER NOT NULL,
    seq_last  INTEGER NOT NULL,
    kind      INTEGER NOT NULL,                        -- 0: JobEvents, 1: a block of epoch metrics
    payload   BLOB NOT NULL,                           -- 0: length-prefixed JobEvent messages,
                                                       -- 1: float64 (epochs, 1 + metrics): time, then
                                                       --    executor.METRIC_FIELDS
    PRIMARY KEY (job_id, seq_last)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS datasets (
    id         TEXT PRIMARY KEY,                       -- sha256 of the bytes
    name       TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    arrays     TEXT NOT NULL,                          -- JSON {name: {dtype, shape}}
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dataset_owners (                -- who uploaded a dataset, under which name
    dataset_id TEXT NOT NULL,                          -- datasets.id
    owner      TEXT NOT NULL,                          -- the token's owner ('' without authentication)
    name       TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (dataset_id, owner)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS results (                 -- serialized JobResult messages up to
    sha  TEXT PRIMARY KEY,                             -- RESULT_INLINE_BYTES, by sha256 (larger:
    data BLOB NOT NULL                                 -- results/<sha>.pb files)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batches (
    id          TEXT PRIMARY KEY,
    request_id  TEXT UNIQUE,
    request_sha TEXT NOT NULL,
    job_ids     TEXT NOT NULL,                         -- JSON list, in request order
    created_at  REAL NOT NULL
);
"""

# Created after the migrations (they add the columns these name).
INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_by_spec_data ON jobs(spec_data_sha) WHERE spec_data_sha IS NOT NULL;
"""

JOB_COLUMNS = ("seq", "id", "state", "spec", "spec_sha", "request_id", "batch_id", "name", "labels",
               "failure_reason", "message", "attempt", "epochs_done", "epochs_total", "latest",
               "created_at", "started_at", "finished_at", "result_sha", "checkpoint_sha", "next_seq", "owner",
               "spec_data_sha")


def migrate(c: sqlite3.Connection, where: str) -> None:
    """Create the tables of a fresh store, or bring an older one to SCHEMA_VERSION (inside the
    caller's transaction)."""
    for statement in SCHEMA.split(";"):
        if statement.strip():
            c.execute(statement)
    version = c.execute("PRAGMA user_version").fetchone()[0]
    fresh = version == 0
    if version == 1:     # a store made before jobs had owners: they belong to no token
        c.execute("ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
        version = 2
    if version == 2:     # request ids were stored as 'owner/id'
        _migrate_request_ids(c)
        version = 3
    if version == 3:     # every spec was stored whole, inline data included
        if "spec_data_sha" not in {r[1] for r in c.execute("PRAGMA table_info(jobs)")}:
            c.execute("ALTER TABLE jobs ADD COLUMN spec_data_sha TEXT")
        version = 4
    if version == 4:     # results were files only; SCHEMA above made the results table
        version = 5
    if not fresh and version != SCHEMA_VERSION:
        raise RuntimeError(f"{where}: store schema {version}, this server knows {SCHEMA_VERSION}")
    c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    for statement in INDEXES.split(";"):
        if statement.strip():
            c.execute(statement)


def _migrate_request_ids(c: sqlite3.Connection) -> None:
    """Schema 2 -> 3: 'owner/id' (or a bare id without an owner) becomes request_key(owner, id)."""
    def split(owner: str, stored: str) -> str:
        return stored[len(owner) + 1:] if owner and stored.startswith(owner + "/") else stored

    for job_id, owner, stored in c.execute("SELECT id, owner, request_id FROM jobs "
                                           "WHERE request_id IS NOT NULL").fetchall():
        c.execute("UPDATE jobs SET request_id = ? WHERE id = ?", (request_key(owner, split(owner, stored)), job_id))
    for batch_id, stored, job_ids in c.execute("SELECT id, request_id, job_ids FROM batches "
                                               "WHERE request_id IS NOT NULL").fetchall():
        ids = json.loads(job_ids)
        row = c.execute("SELECT owner FROM jobs WHERE id = ?", (ids[0],)).fetchone() if ids else None
        owner = row[0] if row else ""
        c.execute("UPDATE batches SET request_id = ? WHERE id = ?",
                  (request_key(owner, split(owner, stored)), batch_id))
