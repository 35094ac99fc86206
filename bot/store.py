"""The job journal: every accepted job, its inputs and its result, in NST_DATA_DIR.

A SQLite database (WAL mode) holds one row per job with its state, requester, channel and
interaction token; the images sit beside it, one folder per job. A job is written here before
the member is told it is queued, so a restart can run it again and deliver it. Rows and files
older than the retention time are removed by `prune`. All file and database work runs in a thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_JOB_ID = re.compile(r"^[0-9a-f]{8,32}$")
# States: queued → running → done (result saved) → delivered; or failed / cancelled.
PENDING_STATES = ("queued", "running", "done")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    channel_id INTEGER,
    guild_id INTEGER,
    application_id INTEGER,
    interaction_token TEXT,
    interaction_created REAL NOT NULL,
    params TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS galleries (guild_id INTEGER PRIMARY KEY, channel_id INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class JobRecord:
    """One journal row."""

    id: str
    state: str
    user_id: int
    channel_id: int | None
    guild_id: int | None
    application_id: int | None
    # Valid for 15 minutes from interaction_created; never logged.
    interaction_token: str | None
    interaction_created: float
    params: dict[str, Any]
    attempts: int
    created: float


@dataclass(frozen=True)
class StoredJob:
    record: JobRecord
    content: bytes
    style: bytes
    result: bytes | None


class JobStore:
    """The journal and the files of recent jobs under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.root.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.root / "jobs.sqlite3", check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            db.row_factory = sqlite3.Row
            self._db = db
        return self._db

    async def _run(self, fn, *args):
        def locked():
            with self._lock:
                return fn(*args)

        return await asyncio.to_thread(locked)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _dir(self, job_id: str) -> Path:
        if not _JOB_ID.match(job_id):
            raise ValueError(f"bad job id {job_id!r}")
        return self.root / "jobs" / job_id

    # ---- jobs ---------------------------------------------------------------------------

    async def add(self, record: JobRecord, content: bytes, style: bytes) -> None:
        """Journal an accepted job with its inputs (files first, then the row)."""
        await self._run(self._add, record, content, style)

    def _add(self, record: JobRecord, content: bytes, style: bytes) -> None:
        folder = self._dir(record.id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "content.bin").write_bytes(content)
        (folder / "style.bin").write_bytes(style)
        now = time.time()
        with self._conn() as db:
            db.execute(
                "INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.id,
                    record.state,
                    record.user_id,
                    record.channel_id,
                    record.guild_id,
                    record.application_id,
                    record.interaction_token,
                    record.interaction_created,
                    json.dumps(record.params),
                    record.attempts,
                    now,
                    now,
                ),
            )

    async def set_state(self, job_id: str, state: str, *, attempt: bool = False) -> None:
        def update() -> None:
            with self._conn() as db:
                db.execute(
                    "UPDATE jobs SET state=?, updated=?, attempts=attempts+? WHERE id=?",
                    (state, time.time(), int(attempt), job_id),
                )

        await self._run(update)

    async def requeue(self, job_id: str) -> None:
        """Back to queued after a clean shutdown cut it off (that run does not count)."""

        def update() -> None:
            with self._conn() as db:
                db.execute(
                    "UPDATE jobs SET state='queued', attempts=MAX(attempts-1, 0), updated=? "
                    "WHERE id=? AND state='running'",
                    (time.time(), job_id),
                )

        await self._run(update)

    async def save_result(self, job_id: str, png: bytes) -> None:
        """Keep the picture and mark the job done (computed, not yet delivered)."""

        def save() -> None:
            (self._dir(job_id) / "result.png").write_bytes(png)
            with self._conn() as db:
                db.execute(
                    "UPDATE jobs SET state='done', updated=? WHERE id=?", (time.time(), job_id)
                )

        await self._run(save)

    async def load(self, job_id: str) -> StoredJob | None:
        return await self._run(self._load, job_id)

    def _load(self, job_id: str) -> StoredJob | None:
        if not _JOB_ID.match(job_id):
            return None
        row = self._conn().execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            return None
        folder = self._dir(job_id)
        try:
            result = folder / "result.png"
            return StoredJob(
                record=_record(row),
                content=(folder / "content.bin").read_bytes(),
                style=(folder / "style.bin").read_bytes(),
                result=result.read_bytes() if result.exists() else None,
            )
        except OSError:
            return None

    async def pending(self) -> list[JobRecord]:
        """Jobs a stopped process had accepted but not delivered, oldest first."""

        def query() -> list[JobRecord]:
            marks = ",".join("?" * len(PENDING_STATES))
            rows = self._conn().execute(
                f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY created", PENDING_STATES
            )
            return [_record(row) for row in rows]

        return await self._run(query)

    async def prune(self, older_than: float) -> int:
        """Remove finished jobs last touched more than ``older_than`` seconds ago."""

        def remove() -> int:
            cutoff = time.time() - older_than
            marks = ",".join("?" * len(PENDING_STATES))
            with self._conn() as db:
                ids = [
                    row[0]
                    for row in db.execute(
                        f"SELECT id FROM jobs WHERE updated < ? AND state NOT IN ({marks})",
                        (cutoff, *PENDING_STATES),
                    )
                ]
                db.executemany("DELETE FROM jobs WHERE id=?", [(i,) for i in ids])
            for job_id in ids:
                shutil.rmtree(self._dir(job_id), ignore_errors=True)
            return len(ids)

        return await self._run(remove)

    # ---- per-server settings ------------------------------------------------------------

    async def gallery_channel(self, guild_id: int) -> int | None:
        def query() -> int | None:
            row = (
                self._conn()
                .execute("SELECT channel_id FROM galleries WHERE guild_id=?", (guild_id,))
                .fetchone()
            )
            return row[0] if row else None

        return await self._run(query)

    async def set_gallery_channel(self, guild_id: int, channel_id: int | None) -> None:
        def update() -> None:
            with self._conn() as db:
                if channel_id is None:
                    db.execute("DELETE FROM galleries WHERE guild_id=?", (guild_id,))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO galleries VALUES (?, ?)", (guild_id, channel_id)
                    )

        await self._run(update)


def _record(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        state=row["state"],
        user_id=row["user_id"],
        channel_id=row["channel_id"],
        guild_id=row["guild_id"],
        application_id=row["application_id"],
        interaction_token=row["interaction_token"],
        interaction_created=row["interaction_created"],
        params=json.loads(row["params"]),
        attempts=row["attempts"],
        created=row["created"],
    )
