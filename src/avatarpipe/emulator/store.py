"""The emulator's state in SQLite (WAL): jobs, operations, avatars, CNV resources and counters.

One :class:`Store` is shared by the HTTP handlers and the worker threads; every call takes its
lock, so each call is atomic. Times are Unix seconds (floats) from the emulator's clock.
Rows hold JSON documents where the shape is the API's own (CNV resources, job requests).

The job request kept here includes ``destinationContainerUrl`` with its SAS: like the real
service, the emulated resource needs it to upload the results, also after a restart. The file is
created readable by its owner only, and the row goes with the job (DELETE or TTL).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["REQUEST_TIMES_KEPT", "AvatarModel", "CvResource", "Job", "Operation", "Store"]

REQUEST_TIMES_KEPT = 4096
"""Arrival times kept for ``GET /emulator/stats`` (``request_times``), newest first out last."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, internal_id TEXT NOT NULL, seq INTEGER NOT NULL, status TEXT NOT NULL,
    created REAL NOT NULL, last_action REAL NOT NULL, started REAL, finish_at REAL,
    request TEXT NOT NULL, result TEXT NOT NULL DEFAULT '{}', op_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS operations (
    id TEXT PRIMARY KEY, api TEXT NOT NULL, kind TEXT NOT NULL, target TEXT NOT NULL,
    status TEXT NOT NULL, created REAL NOT NULL, request_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS avatars (
    name TEXT PRIMARY KEY, created REAL NOT NULL, deploy_status TEXT,
    deploy_requested REAL, phases TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS cv (
    kind TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,
    phases TEXT NOT NULL DEFAULT '[]', PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS stats (
    route TEXT NOT NULL, status TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (route, status)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS job_puts (job_id TEXT PRIMARY KEY, count INTEGER NOT NULL);
"""


@dataclass
class Job:
    """One batch synthesis job as stored.

    Attributes:
        id: The client's job id.
        internal_id: The service's GUID for this job (``internalId``, summary ``jobID``).
        seq: Creation order.
        status: ``NotStarted``, ``Running``, ``Succeeded`` or ``Failed``.
        created: Creation time.
        last_action: When the current status was entered.
        started: When it entered ``Running``.
        finish_at: When the modelled render time is over (set once rendering is done).
        request: The validated create request (camelCase, with inputs and destination).
        result: Progress and results: ``inputs`` (per-input results), ``error``, ``billing``.
        op_id: The id of its operation.
    """

    id: str
    internal_id: str
    seq: int
    status: str
    created: float
    last_action: float
    started: float | None
    finish_at: float | None
    request: dict[str, Any]
    result: dict[str, Any]
    op_id: str


@dataclass
class Operation:
    """A long-running operation (``Operation-Location`` target).

    Attributes:
        id: Operation id.
        api: ``avatar`` or ``customvoice``.
        kind: ``job``, ``model``, ``endpoint``, ``suspend`` or ``resume``.
        target: Id of the job, model or endpoint.
        status: Last known status.
        created: Creation time.
        request_hash: Hash of the request that made it (Operation-Id reuse check).
    """

    id: str
    api: str
    kind: str
    target: str
    status: str
    created: float
    request_hash: str


@dataclass
class AvatarModel:
    """A custom avatar model and its deployment (emulator admin surface).

    Attributes:
        name: Model name (``talkingAvatarCharacter``).
        created: Creation time.
        deploy_status: ``None`` (not deployed), ``NotStarted``, ``Running``, ``Succeeded``.
        deploy_requested: When the deployment was asked for.
        phases: Pending ``[time, status]`` transitions.
    """

    name: str
    created: float
    deploy_status: str | None
    deploy_requested: float | None
    phases: list[list[Any]] = field(default_factory=list)


@dataclass
class CvResource:
    """A custom voice project, model or endpoint in API shape.

    Attributes:
        kind: ``projects``, ``models`` or ``endpoints``.
        id: Its id.
        seq: Creation order.
        body: The API object (camelCase), status included.
        phases: Pending ``[time, status]`` transitions.
    """

    kind: str
    id: str
    seq: int
    body: dict[str, Any]
    phases: list[list[Any]] = field(default_factory=list)


class Store:
    """Thread-safe access to the emulator's SQLite database."""

    def __init__(self, path: Path) -> None:
        """Open (and create) the database at ``path``.

        Args:
            path: The database file.

        Raises:
            sqlite3.Error: The file cannot be opened.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._arrivals: deque[tuple[float, str, str]] = deque(maxlen=REQUEST_TIMES_KEPT)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock and run the block in one transaction.

        Yields:
            The connection.

        Raises:
            Exception: Whatever the block raised (the transaction is rolled back).
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ------------------------------------------------------------ meta

    def meta(self, key: str, default_factory: Any) -> str:
        """Return a stored value, creating it with ``default_factory()`` the first time."""
        with self.transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            if row is not None:
                return str(row["value"])
            value = str(default_factory())
            db.execute("INSERT INTO meta VALUES (?, ?)", (key, value))
            return value

    # ------------------------------------------------------------ jobs

    @staticmethod
    def _job(row: sqlite3.Row) -> Job:
        return Job(
            id=row["id"],
            internal_id=row["internal_id"],
            seq=row["seq"],
            status=row["status"],
            created=row["created"],
            last_action=row["last_action"],
            started=row["started"],
            finish_at=row["finish_at"],
            request=json.loads(row["request"]),
            result=json.loads(row["result"]),
            op_id=row["op_id"],
        )

    def insert_job(self, job: Job, op: Operation) -> bool:
        """Insert a new job and its operation; return ``False`` if the id is taken."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM jobs WHERE id=?", (job.id,)).fetchone():
                return False
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            job.seq = int(seq)
            db.execute(
                "INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    job.id,
                    job.internal_id,
                    job.seq,
                    job.status,
                    job.created,
                    job.last_action,
                    job.started,
                    job.finish_at,
                    json.dumps(job.request),
                    json.dumps(job.result),
                    job.op_id,
                ),
            )
            self._put_op(db, op)
            db.execute(
                "INSERT INTO job_puts VALUES (?, 1) "
                "ON CONFLICT(job_id) DO UPDATE SET count = count + 1",
                (job.id,),
            )
            self._bump(db, "jobs_created", 1)
            return True

    def get_job(self, job_id: str) -> Job | None:
        """Return the job with this id, if any."""
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return self._job(row) if row else None

    def list_jobs(self, skip: int, top: int) -> tuple[list[Job], int]:
        """Return one page of jobs, newest first, and the total count."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs ORDER BY seq DESC LIMIT ? OFFSET ?", (top, skip)
            ).fetchall()
            total = self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        return [self._job(r) for r in rows], int(total)

    def jobs_with_status(self, *statuses: str) -> list[Job]:
        """Return the jobs in any of ``statuses``, oldest first."""
        marks = ",".join("?" * len(statuses))
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY seq", statuses
            ).fetchall()
        return [self._job(r) for r in rows]

    def count_jobs(self, status: str) -> int:
        """Return how many jobs are in ``status``."""
        with self._lock:
            return int(
                self._db.execute("SELECT COUNT(*) FROM jobs WHERE status=?", (status,)).fetchone()[
                    0
                ]
            )

    def update_job(self, job: Job, *, expect_status: str | None = None) -> bool:
        """Write back a job's mutable fields; return ``False`` if it is gone or moved on."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT status, internal_id FROM jobs WHERE id=?", (job.id,)
            ).fetchone()
            if row is None or row["internal_id"] != job.internal_id:
                return False
            if expect_status is not None and row["status"] != expect_status:
                return False
            db.execute(
                "UPDATE jobs SET status=?, last_action=?, started=?, finish_at=?, result=? "
                "WHERE id=?",
                (
                    job.status,
                    job.last_action,
                    job.started,
                    job.finish_at,
                    json.dumps(job.result),
                    job.id,
                ),
            )
            if job.status in ("Succeeded", "Failed", "Running", "NotStarted"):
                db.execute("UPDATE operations SET status=? WHERE id=?", (job.status, job.op_id))
            return True

    def delete_job(self, job_id: str) -> Job | None:
        """Delete a job; return what was deleted."""
        with self.transaction() as db:
            row = db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM jobs WHERE id=?", (job_id,))
            return self._job(row)

    # ------------------------------------------------------------ operations

    @staticmethod
    def _put_op(db: sqlite3.Connection, op: Operation) -> None:
        db.execute(
            "INSERT OR REPLACE INTO operations VALUES (?,?,?,?,?,?,?)",
            (op.id, op.api, op.kind, op.target, op.status, op.created, op.request_hash),
        )

    def put_operation(self, op: Operation) -> None:
        """Insert or replace an operation."""
        with self.transaction() as db:
            self._put_op(db, op)

    def get_operation(self, api: str, op_id: str) -> Operation | None:
        """Return an operation of ``api`` by id."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM operations WHERE id=? AND api=?", (op_id, api)
            ).fetchone()
        return Operation(**dict(row)) if row else None

    def set_operation_status(self, op_id: str, status: str) -> None:
        """Record an operation's status."""
        with self.transaction() as db:
            db.execute("UPDATE operations SET status=? WHERE id=?", (status, op_id))

    def operations_for(self, api: str, target: str) -> list[Operation]:
        """Return the operations of one target."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM operations WHERE api=? AND target=?", (api, target)
            ).fetchall()
        return [Operation(**dict(r)) for r in rows]

    # ------------------------------------------------------------ avatars

    @staticmethod
    def _avatar(row: sqlite3.Row) -> AvatarModel:
        return AvatarModel(
            name=row["name"],
            created=row["created"],
            deploy_status=row["deploy_status"],
            deploy_requested=row["deploy_requested"],
            phases=json.loads(row["phases"]),
        )

    def get_avatar(self, name: str) -> AvatarModel | None:
        """Return a custom avatar model by name."""
        with self._lock:
            row = self._db.execute("SELECT * FROM avatars WHERE name=?", (name,)).fetchone()
        return self._avatar(row) if row else None

    def list_avatars(self) -> list[AvatarModel]:
        """Return all custom avatar models by name."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM avatars ORDER BY name").fetchall()
        return [self._avatar(r) for r in rows]

    def put_avatar(self, avatar: AvatarModel) -> None:
        """Insert or replace a custom avatar model."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO avatars VALUES (?,?,?,?,?)",
                (
                    avatar.name,
                    avatar.created,
                    avatar.deploy_status,
                    avatar.deploy_requested,
                    json.dumps(avatar.phases),
                ),
            )

    def deploy_avatar(self, name: str, cap: int, phases: list[list[Any]], now: float) -> str:
        """Start a deployment unless the cap is reached.

        Returns:
            ``started``, ``exists`` (already deployed or deploying), ``missing`` or ``cap``.
        """
        with self.transaction() as db:
            row = db.execute("SELECT * FROM avatars WHERE name=?", (name,)).fetchone()
            if row is None:
                return "missing"
            if row["deploy_status"] not in (None, "Failed"):
                return "exists"
            used = db.execute(
                "SELECT COUNT(*) FROM avatars WHERE deploy_status IS NOT NULL "
                "AND deploy_status != 'Failed'"
            ).fetchone()[0]
            if used >= cap:
                return "cap"
            db.execute(
                "UPDATE avatars SET deploy_status='NotStarted', deploy_requested=?, phases=? "
                "WHERE name=?",
                (now, json.dumps(phases), name),
            )
            return "started"

    def delete_avatar(self, name: str) -> bool:
        """Delete a custom avatar model (and its deployment)."""
        with self.transaction() as db:
            return db.execute("DELETE FROM avatars WHERE name=?", (name,)).rowcount > 0

    # ------------------------------------------------------------ custom voice

    @staticmethod
    def _cv(row: sqlite3.Row) -> CvResource:
        return CvResource(
            kind=row["kind"],
            id=row["id"],
            seq=row["seq"],
            body=json.loads(row["body"]),
            phases=json.loads(row["phases"]),
        )

    def get_cv(self, kind: str, res_id: str) -> CvResource | None:
        """Return one CNV resource."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM cv WHERE kind=? AND id=?", (kind, res_id)
            ).fetchone()
        return self._cv(row) if row else None

    def list_cv(self, kind: str) -> list[CvResource]:
        """Return all CNV resources of a kind, in creation order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM cv WHERE kind=? ORDER BY seq", (kind,)
            ).fetchall()
        return [self._cv(r) for r in rows]

    def insert_cv(self, res: CvResource, op: Operation | None = None) -> bool:
        """Insert a CNV resource (and its operation); ``False`` if the id is taken."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM cv WHERE kind=? AND id=?", (res.kind, res.id)).fetchone():
                return False
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM cv").fetchone()[0]
            res.seq = int(seq)
            db.execute(
                "INSERT INTO cv VALUES (?,?,?,?,?)",
                (res.kind, res.id, res.seq, json.dumps(res.body), json.dumps(res.phases)),
            )
            if op is not None:
                self._put_op(db, op)
            return True

    def update_cv(self, res: CvResource, op: Operation | None = None) -> None:
        """Write back a CNV resource (and record an operation)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE cv SET body=?, phases=? WHERE kind=? AND id=?",
                (json.dumps(res.body), json.dumps(res.phases), res.kind, res.id),
            )
            if op is not None:
                self._put_op(db, op)

    def delete_cv(self, kind: str, res_id: str) -> bool:
        """Delete a CNV resource."""
        with self.transaction() as db:
            return db.execute("DELETE FROM cv WHERE kind=? AND id=?", (kind, res_id)).rowcount > 0

    # ------------------------------------------------------------ stats

    @staticmethod
    def _bump(db: sqlite3.Connection, name: str, by: int) -> None:
        db.execute(
            "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?",
            (name, by, by),
        )

    def count_request(self, route: str, status: str) -> None:
        """Count one answered (or dropped) request of a route template."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO stats VALUES (?, ?, 1) "
                "ON CONFLICT(route, status) DO UPDATE SET count = count + 1",
                (route, status),
            )

    def note_arrival(self, at: float, route: str, status: str) -> None:
        """Keep the arrival time of one Azure API request (the newest ``REQUEST_TIMES_KEPT``).

        Args:
            at: When it arrived (wall clock, epoch seconds).
            route: ``"METHOD /template"``.
            status: The status answered (``dropped`` for a reset connection).
        """
        with self._lock:
            self._arrivals.append((at, route, status))

    def bump(self, name: str, by: int = 1) -> None:
        """Add to a named counter."""
        with self.transaction() as db:
            self._bump(db, name, by)

    def stats(self) -> dict[str, Any]:
        """Return all counters."""
        with self._lock:
            by_route: dict[str, dict[str, int]] = {}
            for row in self._db.execute("SELECT * FROM stats ORDER BY route, status"):
                by_route.setdefault(row["route"], {})[row["status"]] = row["count"]
            counters = {r["name"]: r["value"] for r in self._db.execute("SELECT * FROM counters")}
            puts = {r["job_id"]: r["count"] for r in self._db.execute("SELECT * FROM job_puts")}
            statuses = {
                r["status"]: r["n"]
                for r in self._db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
            }
            arrivals = sorted(self._arrivals)
        return {
            "request_times": [[at, route, status] for at, route, status in arrivals],
            "requests_by_route": by_route,
            "counters": counters,
            "puts_by_job_id": puts,
            "jobs_by_status": statuses,
        }
