"""The durable job record: SQLite in WAL mode for jobs, events and datasets; files beside it.

One connection per process, shared by the server's threads under one lock; every write is a
`BEGIN IMMEDIATE` transaction (`with store.tx() as tx:`), committed with synchronous=FULL before
the caller acknowledges anything. The recorder's progress-only transactions (RUNNING, epoch
blocks: `tx(durable=False)`) skip the fsync (synchronous=NORMAL); the next FULL commit's fsync
covers them (WAL frames are appended in order). Results up to RESULT_INLINE_BYTES live in the
`results` table, committed with their job's outcome (one fsync for both); larger ones are files.
Only the server process opens the store: workers send their results back to it. Rows are plain
dicts; jobs.py turns them into messages.
"""

from __future__ import annotations

import json
import sqlite3
import struct
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Optional

from .errors import Unavailable
from .files import Files
from .schema import JOB_COLUMNS, SCHEMA, SCHEMA_VERSION, migrate, request_id_of, request_key  # noqa: F401


def storage_unavailable(exc: BaseException) -> Unavailable:
    """The store cannot be used now (locked by another process, disk full, I/O error): the client
    gets UNAVAILABLE and may retry; nothing was written."""
    what = getattr(exc, "strerror", None) or str(exc)
    return Unavailable(f"the job store is unavailable ({what}); nothing was changed, try again later")


RESULT_INLINE_BYTES = 256 * 1024   # results up to this size live in the results table, not files


def pack_events(payloads: Iterable[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(p)) + p for p in payloads)


def unpack_events(blob: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(blob):
        (n,) = struct.unpack_from("<I", blob, pos)
        out.append(blob[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out


class Tx:
    """The write operations, valid inside one `Store.tx()` transaction."""

    def __init__(self, conn: sqlite3.Connection):
        self.c = conn

    def insert_job(self, row: dict) -> None:
        cols = [k for k in row if k in JOB_COLUMNS and k != "seq"]
        values = [json.dumps(row[k], sort_keys=True) if k == "labels" else row[k] for k in cols]
        self.c.execute(f"INSERT INTO jobs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                       values)

    def update_job(self, job_id: str, **fields) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.c.execute(f"UPDATE jobs SET {sets} WHERE id = ?", (*fields.values(), job_id))

    def job(self, job_id: str) -> Optional[dict]:
        return _job_row(self.c.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE id = ?",
                                       (job_id,)).fetchone())

    def job_by_request(self, request_id: str) -> Optional[dict]:
        return _job_row(self.c.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE request_id = ?",
                                       (request_id,)).fetchone())

    def count_active(self, owner: Optional[str] = None) -> int:
        if owner is None:
            return self.c.execute("SELECT COUNT(*) FROM jobs WHERE state IN (1, 2, 3)").fetchone()[0]
        return self.c.execute("SELECT COUNT(*) FROM jobs WHERE state IN (1, 2, 3) AND owner = ?",
                              (owner,)).fetchone()[0]

    def reserve_sequences(self, job_id: str, count: int) -> int:
        """Take `count` event sequence numbers of a job; return the first."""
        row = self.c.execute("UPDATE jobs SET next_seq = next_seq + ? WHERE id = ? RETURNING next_seq",
                             (count, job_id)).fetchone()
        return row[0] - count

    def add_events(self, job_id: str, seq_first: int, count: int, kind: int, payload: bytes) -> None:
        self.c.execute("INSERT INTO events (job_id, seq_first, seq_last, kind, payload) VALUES (?, ?, ?, ?, ?)",
                       (job_id, seq_first, seq_first + count - 1, kind, payload))

    def delete_job(self, job_id: str) -> None:
        self.c.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
        self.c.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def insert_dataset(self, row: dict) -> None:
        self.c.execute("INSERT OR IGNORE INTO datasets (id, name, size_bytes, arrays, created_at) "
                       "VALUES (?, ?, ?, ?, ?)",
                       (row["id"], row["name"], row["size_bytes"], json.dumps(row["arrays"]),
                        row["created_at"]))

    def add_dataset_owner(self, dataset_id: str, owner: str, name: str, when: float) -> bool:
        """Record that `owner` uploaded the dataset; False when it already had."""
        cur = self.c.execute("INSERT OR IGNORE INTO dataset_owners (dataset_id, owner, name, created_at) "
                             "VALUES (?, ?, ?, ?)", (dataset_id, owner, name, when))
        return cur.rowcount == 1

    def dataset_owners(self, dataset_id: str) -> Optional[set]:
        """The owners of a dataset (empty: stored before owners were recorded); None: no dataset."""
        if self.c.execute("SELECT 1 FROM datasets WHERE id = ?", (dataset_id,)).fetchone() is None:
            return None
        return {r[0] for r in self.c.execute("SELECT owner FROM dataset_owners WHERE dataset_id = ?",
                                             (dataset_id,))}

    def dataset_in_use(self, dataset_id: str) -> bool:
        """Whether a queued, running or cancelling job names the dataset (its id is in the spec)."""
        return self.c.execute("SELECT 1 FROM jobs WHERE state IN (1, 2, 3) AND instr(spec, ?) > 0 LIMIT 1",
                              (dataset_id.encode(),)).fetchone() is not None

    def remove_dataset(self, dataset_id: str, owner: str) -> bool:
        """Drop `owner`'s hold on a dataset; True when nobody holds it any more (its row is gone)."""
        self.c.execute("DELETE FROM dataset_owners WHERE dataset_id = ? AND owner = ?", (dataset_id, owner))
        if self.c.execute("SELECT 1 FROM dataset_owners WHERE dataset_id = ? LIMIT 1", (dataset_id,)).fetchone():
            return False
        self.c.execute("DELETE FROM datasets WHERE id = ?", (dataset_id,))
        return True

    def batch_by_request(self, request_id: str) -> Optional[dict]:
        row = self.c.execute("SELECT id, request_sha, job_ids FROM batches WHERE request_id = ?",
                             (request_id,)).fetchone()
        return None if row is None else {"id": row[0], "request_sha": row[1], "job_ids": json.loads(row[2])}

    def insert_batch(self, batch_id: str, request_id: Optional[str], request_sha: str,
                     job_ids: list[str]) -> None:
        self.c.execute("INSERT INTO batches (id, request_id, request_sha, job_ids, created_at) "
                       "VALUES (?, ?, ?, ?, ?)",
                       (batch_id, request_id, request_sha, json.dumps(job_ids), time.time()))

    def spec_data_in_use(self, sha: str) -> bool:
        return self.c.execute("SELECT 1 FROM jobs WHERE spec_data_sha = ? LIMIT 1", (sha,)).fetchone() is not None

    def result_in_use(self, sha: str) -> bool:
        return self.c.execute("SELECT 1 FROM jobs WHERE result_sha = ? LIMIT 1", (sha,)).fetchone() is not None

    def put_result(self, sha: str, data: bytes) -> None:
        """Store a result's bytes in the results table (content-addressed: a duplicate is kept once)."""
        self.c.execute("INSERT OR IGNORE INTO results (sha, data) VALUES (?, ?)", (sha, data))

    def delete_result(self, sha: str) -> None:
        self.c.execute("DELETE FROM results WHERE sha = ?", (sha,))


class Store:
    """SQLite + files under `data_dir`; safe to share between the server's threads."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.files = Files(self.data_dir)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.data_dir / "fusetrain.db", isolation_level=None,
                                     check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=10000")
        with self.tx() as tx:
            migrate(tx.c, str(self.data_dir))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def tx(self, durable: bool = True):
        """One write transaction (BEGIN IMMEDIATE ... COMMIT), serialised with every other use.
        SQLite's operational failures (locked, full, I/O) become Unavailable, rolled back.
        `durable=False` commits without an fsync (synchronous=NORMAL), for progress that recovery
        can do without; the next durable commit makes it durable too."""
        with self._lock:
            try:
                if not durable:
                    self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.execute("BEGIN IMMEDIATE")
                yield Tx(self._conn)
                self._conn.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:
                    try:
                        self._conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                if isinstance(exc, sqlite3.OperationalError):
                    raise storage_unavailable(exc) from None
                raise
            finally:
                if not durable:             # never leave the connection committing without fsync
                    self._conn.execute("PRAGMA synchronous=FULL")

    # ---------------------------------------------------------------------------------- reads

    def _query(self, sql: str, args=()) -> list:
        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.OperationalError as exc:
                raise storage_unavailable(exc) from None

    def job(self, job_id: str) -> Optional[dict]:
        rows = self._query(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE id = ?", (job_id,))
        return _job_row(rows[0]) if rows else None

    def jobs_by_ids(self, ids: list[str]) -> list[dict]:
        out = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            for row in self._query(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE id IN "
                                   f"({', '.join('?' * len(part))})", part):
                r = _job_row(row)
                out[r["id"]] = r
        return [out[i] for i in ids if i in out]

    def list_jobs(self, states: list[int], labels: dict, batch_id: str, before_seq: Optional[int],
                  limit: int, owner: Optional[str] = None) -> list[dict]:
        where, args = [], []
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            args += states
        for key, value in sorted(labels.items()):
            where.append("json_extract(labels, ?) = ?")
            args += [f'$."{key}"', value]
        if batch_id:
            where.append("batch_id = ?")
            args.append(batch_id)
        if before_seq is not None:
            where.append("seq < ?")
            args.append(before_seq)
        sql = f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        return [_job_row(r) for r in self._query(sql, (*args, limit))]

    def spec_data(self, row: dict) -> bytes:
        """The inline data tensors of a job's spec, stored apart (b"" when its row holds them)."""
        return self.files.read("specdata", row["spec_data_sha"]) if row.get("spec_data_sha") else b""

    def result(self, sha: str) -> bytes:
        """A result's serialized JobResult: from the results table, else its file."""
        rows = self._query("SELECT data FROM results WHERE sha = ?", (sha,))
        return rows[0][0] if rows else self.files.read("results", sha)

    def unfinished_jobs(self) -> list[dict]:
        return [_job_row(r) for r in self._query(
            f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE state IN (1, 2, 3) ORDER BY seq")]

    def events(self, job_id: str, after: int, limit: int) -> list[tuple[int, int, int, bytes]]:
        """(first sequence, last sequence, kind, payload) of at most `limit` event rows holding
        events after `after`, in order."""
        return self._query("SELECT seq_first, seq_last, kind, payload FROM events WHERE job_id = ? AND seq_last > ? "
                           "ORDER BY seq_last LIMIT ?", (job_id, after, limit))

    def count_by_state(self, owner: Optional[str] = None) -> dict[int, int]:
        """{JobState: number of jobs} (of one owner, when given)."""
        sql = "SELECT state, COUNT(*) FROM jobs" + (" WHERE owner = ?" if owner is not None else "")
        return dict(self._query(sql + " GROUP BY state", (owner,) if owner is not None else ()))

    def jobs_using(self, dataset_id: str, limit: int, owner: Optional[str] = None) -> list[tuple[str, str]]:
        """(id, name) of the newest jobs whose spec names a dataset (of one owner, when given)."""
        sql = "SELECT id, name FROM jobs WHERE instr(spec, ?) > 0" + (" AND owner = ?" if owner is not None else "")
        args = (dataset_id.encode(), *((owner,) if owner is not None else ()))
        return [tuple(r) for r in self._query(sql + " ORDER BY seq DESC LIMIT ?", (*args, limit))]

    def dataset(self, dataset_id: str, owner: Optional[str] = None) -> Optional[dict]:
        """A dataset's row; with `owner`, only when that owner uploaded it (under its own name),
        or when nobody is recorded as its owner (a dataset stored before owners were)."""
        rows = self._query("SELECT id, name, size_bytes, arrays, created_at FROM datasets WHERE id = ?",
                           (dataset_id,))
        if not rows:
            return None
        r = rows[0]
        out = {"id": r[0], "name": r[1], "size_bytes": r[2], "arrays": json.loads(r[3]), "created_at": r[4]}
        if owner is not None:
            owners = dict((o, (n, t)) for o, n, t in self._query(
                "SELECT owner, name, created_at FROM dataset_owners WHERE dataset_id = ?", (dataset_id,)))
            if owner in owners:
                out["name"], out["created_at"] = owners[owner]
            elif owners:
                return None
        return out


def _job_row(row) -> Optional[dict]:
    if row is None:
        return None
    out = dict(zip(JOB_COLUMNS, row))
    out["labels"] = json.loads(out["labels"])
    return out
