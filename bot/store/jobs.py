"""Jobs in the journal: each accepted job's row, its inputs and its result."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from bot.store.database import JOB_ID, PENDING_STATES, utc_day

log = logging.getLogger(__name__)


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
    # The public status message ("queued…", "painting…") once Discord has told us its id, so
    # that a restart can still edit it through the channel; None until then, and for private
    # jobs (an ephemeral message can't be edited that way).
    status_message_id: int | None = None


@dataclass(frozen=True)
class StoredJob:
    record: JobRecord
    content: bytes
    style: bytes
    result: bytes | None
    # The second artwork of a two-style blend; None for one style.
    style2: bytes | None = None


class JobsMixin:
    """Jobs: their rows, inputs and results (mixed into `JobStore`)."""

    async def add(
        self,
        record: JobRecord,
        content: bytes,
        style: bytes,
        style2: bytes | None = None,
        *,
        counted: bool = False,
    ) -> None:
        """Journal an accepted job with its inputs (files first, then the row), and count it
        towards its member's pictures of the day, unless ``counted`` already (`hold_picture`)."""
        await self._run(self._add, record, content, style, style2, counted)

    def _add(
        self,
        record: JobRecord,
        content: bytes,
        style: bytes,
        style2: bytes | None,
        counted: bool = False,
    ) -> None:
        folder = self._dir(record.id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "content.bin").write_bytes(content)
        (folder / "style.bin").write_bytes(style)
        if style2 is not None:
            (folder / "style2.bin").write_bytes(style2)
        now = time.time()
        with self._conn() as db:
            if record.guild_id is not None and not counted:
                # Counted with the row, in one transaction; a count kept apart from the jobs
                # table survives `prune`, which may remove today's rows (NST_KEEP_HOURS < 24).
                db.execute(
                    "INSERT INTO daily_use VALUES (?,?,?,1) ON CONFLICT(guild_id, user_id, day) "
                    "DO UPDATE SET pictures=pictures+1",
                    (record.guild_id, record.user_id, utc_day(now)),
                )
            db.execute(
                "INSERT INTO jobs (id, state, user_id, channel_id, guild_id, application_id, "
                "interaction_token, interaction_created, params, attempts, created, updated, "
                "status_message_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
                    record.status_message_id,
                ),
            )

    async def hold_picture(self, guild_id: int, user_id: int, limit: int) -> str | None:
        """Count a picture towards the member's day the moment a request arrives, if they are
        under ``limit``: the check and the count are one statement, so no burst slips past it.
        The UTC day it was counted on, or None at the limit. `add(..., counted=True)` then
        doesn't count the job again; `give_back_picture` undoes it for a refused request."""

        def hold() -> str | None:
            day = utc_day(time.time())
            with self._conn() as db:
                cursor = db.execute(
                    "INSERT INTO daily_use VALUES (?,?,?,1) ON CONFLICT(guild_id, user_id, day) "
                    "DO UPDATE SET pictures=pictures+1 WHERE pictures < ?",
                    (guild_id, user_id, day, limit),
                )
            return day if cursor.rowcount > 0 else None

        return await self._run(hold)

    async def give_back_picture(self, guild_id: int, user_id: int, day: str) -> None:
        """Undo a `hold_picture`: the request was refused before it became a job."""

        def give_back() -> None:
            with self._conn() as db:
                db.execute(
                    "UPDATE daily_use SET pictures=pictures-1 "
                    "WHERE guild_id=? AND user_id=? AND day=? AND pictures > 0",
                    (guild_id, user_id, day),
                )

        await self._run(give_back)

    async def set_state(self, job_id: str, state: str, *, attempt: bool = False) -> None:
        def update() -> None:
            with self._conn() as db:
                db.execute(
                    "UPDATE jobs SET state=?, updated=?, attempts=attempts+? WHERE id=?",
                    (state, time.time(), int(attempt), job_id),
                )

        await self._run(update)

    async def set_status_message(self, job_id: str, message_id: int) -> None:
        """Remember the job's public status message, once Discord has told us its id."""

        def update() -> None:
            with self._conn() as db:
                db.execute("UPDATE jobs SET status_message_id=? WHERE id=?", (message_id, job_id))

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
        """Keep the picture and mark the job done (computed, not yet delivered). Its attempts
        start again at 0: from now on they count tries to deliver it (`delivery_tried`)."""

        def save() -> None:
            (self._dir(job_id) / "result.png").write_bytes(png)
            with self._conn() as db:
                db.execute(
                    "UPDATE jobs SET state='done', attempts=0, updated=? WHERE id=?",
                    (time.time(), job_id),
                )

        await self._run(save)

    async def delivery_tried(self, job_id: str) -> int:
        """Count one more try to deliver a done job; the tries so far, this one included."""

        def update() -> int:
            with self._conn() as db:
                db.execute(
                    "UPDATE jobs SET attempts=attempts+1, updated=? WHERE id=?",
                    (time.time(), job_id),
                )
                row = db.execute("SELECT attempts FROM jobs WHERE id=?", (job_id,)).fetchone()
            return row[0] if row else 1

        return await self._run(update)

    async def load(self, job_id: str) -> StoredJob | None:
        return await self._run(self._load, job_id)

    def _load(self, job_id: str) -> StoredJob | None:
        if not JOB_ID.match(job_id):
            return None
        row = self._conn().execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            return None
        try:
            record = _record(row)
        except ValueError as err:
            log.warning("job %s: its journal row cannot be read (%s)", job_id, err)
            return None
        folder = self._dir(job_id)
        try:
            result = folder / "result.png"
            style2 = folder / "style2.bin"
            return StoredJob(
                record=record,
                content=(folder / "content.bin").read_bytes(),
                style=(folder / "style.bin").read_bytes(),
                result=result.read_bytes() if result.exists() else None,
                style2=style2.read_bytes() if style2.exists() else None,
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
            records = []
            for row in rows.fetchall():
                try:
                    records.append(_record(row))
                except ValueError as err:
                    self._set_aside_row(row["id"], err)
            return records

        return await self._run(query)

    def _set_aside_row(self, job_id: str, err: ValueError) -> None:
        """One unreadable row must not keep the others from running: mark it failed."""
        with self._conn() as db:
            db.execute(
                "UPDATE jobs SET state='failed', updated=? WHERE id=?", (time.time(), job_id)
            )
        log.warning(
            "job %s: its journal row cannot be read (%s); set aside as failed, the other "
            "jobs are recovered",
            job_id,
            err,
        )

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
                db.execute("DELETE FROM daily_use WHERE day < ?", (utc_day(time.time()),))
            for job_id in ids:
                shutil.rmtree(self._dir(job_id), ignore_errors=True)
            return len(ids)

        return await self._run(remove)


def _record(row: sqlite3.Row) -> JobRecord:
    """The row as a record; ValueError if its parameters are not a JSON object."""
    try:
        params = json.loads(row["params"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"its parameters are not valid JSON: {err}") from None
    if not isinstance(params, dict):
        raise ValueError(f"its parameters are {type(params).__name__}, not an object")
    return JobRecord(
        id=row["id"],
        state=row["state"],
        user_id=row["user_id"],
        channel_id=row["channel_id"],
        guild_id=row["guild_id"],
        application_id=row["application_id"],
        interaction_token=row["interaction_token"],
        interaction_created=row["interaction_created"],
        params=params,
        attempts=row["attempts"],
        created=row["created"],
        status_message_id=row["status_message_id"],
    )
