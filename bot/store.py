"""The job journal: every accepted job, its inputs and its result, in NST_DATA_DIR.

A SQLite database (WAL mode) holds one row per job with its state, requester, channel and
interaction token; the images sit beside it, one folder per job. A job is written here before
the member is told it is queued, so a restart can run it again and deliver it. Rows and files
older than the retention time are removed by `prune`. All file and database work runs in a thread.

The same database keeps what each server chose: its saved styles (`add_style`, `style`,
`styles`, `remove_style`), its settings and channel allow-list (`guild_settings`,
`update_guild_settings`, `add_channel`, `remove_channel`), and each member's pictures per UTC
day (`pictures_today`). Tables are only ever added, so an older journal keeps working.

Another program may hold the database's write lock for a while (an operator's ``sqlite3``
session, a backup tool): every operation waits for it, up to ``busy_wait`` seconds, and then
raises `JournalUnavailable`. A journal that cannot be used at all (a data folder that cannot be
written, a table of another schema) raises `JournalError` from `open`, in one line for the
operator; a file that is not a database is moved aside, and a row that cannot be read is set
aside as failed, each with one warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from bot.errors import UserFacingError

log = logging.getLogger(__name__)

_JOB_ID = re.compile(r"^[0-9a-f]{8,32}$")
# States: queued → running → done (result saved) → delivered; or failed / cancelled.
PENDING_STATES = ("queued", "running", "done")

_T = TypeVar("_T")
JOURNAL = "jobs.sqlite3"
# How long SQLite itself waits for a lock before our retry loop looks at the clock again.
_LOCK_POLL = 0.25

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
CREATE TABLE IF NOT EXISTS styles (
    guild_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    created REAL NOT NULL,
    sha256 TEXT NOT NULL,
    image BLOB NOT NULL,
    PRIMARY KEY (guild_id, key)
);
CREATE TABLE IF NOT EXISTS guild_settings (
    guild_id INTEGER PRIMARY KEY,
    max_size INTEGER,
    default_quality TEXT,
    daily_limit INTEGER,
    role_id INTEGER
);
CREATE TABLE IF NOT EXISTS guild_channels (
    guild_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
);
CREATE TABLE IF NOT EXISTS daily_use (
    guild_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    day TEXT NOT NULL,
    pictures INTEGER NOT NULL,
    PRIMARY KEY (guild_id, user_id, day)
);
"""
# Our tables, each checked against what an existing file holds before anything is written.
_TABLES = ("jobs", "galleries", "styles", "guild_settings", "guild_channels", "daily_use")

# Saved styles: names are 1-32 characters (spaces collapsed), unique per server whatever
# their case, at most MAX_STYLES per server.
STYLE_NAME_LENGTH = 32
MAX_STYLES = 100
# What `update_guild_settings` may change; None clears a setting.
GUILD_SETTINGS = ("max_size", "default_quality", "daily_limit", "role_id")


class JournalError(Exception):
    """The journal cannot be used; the message is one line saying why and what to do."""


class JournalUnavailable(JournalError):
    """Another program held the journal's lock for longer than the store may wait."""


class BadStyleName(UserFacingError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"A style name must be 1 to {STYLE_NAME_LENGTH} characters, not {len(name)}."
        )


class StyleExists(UserFacingError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"This server already has a style called {name!r}; names are unique whatever "
            "their case, so pick another or remove that one with /styles remove."
        )


class TooManyStyles(UserFacingError):
    def __init__(self) -> None:
        super().__init__(
            f"This server already has {MAX_STYLES} saved styles, the most allowed; "
            "remove one with /styles remove first."
        )


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
    # The second artwork of a two-style blend; None for one style.
    style2: bytes | None = None


@dataclass(frozen=True)
class SavedStyle:
    """An artwork a server saved under a name."""

    guild_id: int
    # As the member typed it (spaces collapsed); looked up whatever its case.
    name: str
    # The member who saved it (who may remove it, besides Manage Server).
    user_id: int
    # Unix time it was saved.
    created: float
    # PNG, at most 512 px on its longest side (the cog re-encodes what members upload).
    image: bytes
    # Hex SHA-256 of ``image``.
    sha256: str


@dataclass(frozen=True)
class GuildSettings:
    """What a server chose; None means the bot-wide default (the environment's caps still
    apply above whatever a server sets)."""

    # Longest side of results in pixels.
    max_size: int | None = None
    # Quality preset when a member doesn't choose one: fast, balanced or best.
    default_quality: str | None = None
    # Pictures per member per UTC day; None: no limit.
    daily_limit: int | None = None
    # A role a member must have to use the bot; None: everyone.
    role_id: int | None = None
    # Channels the bot may be used in; empty: everywhere.
    channels: frozenset[int] = field(default_factory=frozenset)


class JobStore:
    """The journal and the files of recent jobs under ``root``.

    Every operation waits up to ``busy_wait`` seconds while another program holds the
    database's lock, then raises `JournalUnavailable`.
    """

    def __init__(self, root: Path, *, busy_wait: float = 30.0) -> None:
        self.root = root
        self.busy_wait = busy_wait
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    @property
    def path(self) -> Path:
        return self.root / JOURNAL

    def open(self) -> None:
        """Create or open the journal now, so that a data folder that cannot be used stops
        start-up at once with one line (`JournalError`) rather than at the first job."""
        with self._lock:
            self._retrying(self._conn)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._connect()
        return self._db

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.root.exists() and not self.root.is_dir():
                raise NotADirectoryError(0, "it is a file, not a folder")
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise JournalError(
                f"NST_DATA_DIR={self.root} cannot be used: {_reason(err)}; set it to a folder "
                "the bot may create and write"
            ) from None
        try:
            return self._connect_to_database()
        except sqlite3.DatabaseError as err:
            if _busy(err):
                raise
            if not _not_a_database(err):
                raise JournalError(
                    f"the job journal {self.path} cannot be opened: {err}; check that "
                    f"NST_DATA_DIR={self.root} is a folder the bot may write"
                ) from None
            moved = self._set_aside(err)
        try:
            return self._connect_to_database()
        except sqlite3.DatabaseError as err:
            raise JournalError(
                f"the job journal {self.path} cannot be created after moving the old one to "
                f"{moved}: {err}"
            ) from None

    def _connect_to_database(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=_LOCK_POLL, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._check_schema(db)
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        db.row_factory = sqlite3.Row
        return db

    def _check_schema(self, db: sqlite3.Connection) -> None:
        """Refuse a file whose tables have our names but not our columns (another program's,
        or an older bot's), before anything is written to it."""
        with contextlib.closing(sqlite3.connect(":memory:")) as ours:
            ours.executescript(_SCHEMA)
            expected = {table: _columns(ours, table) for table in _TABLES}
        for table, wanted in expected.items():
            columns = _columns(db, table)
            if columns and columns != wanted:
                raise JournalError(
                    f"{self.path} has a table {table!r} that is not nst-bot's (columns: "
                    f"{', '.join(columns)}); set NST_DATA_DIR to another folder, or move that "
                    "file away if it is not needed"
                )

    def _set_aside(self, err: sqlite3.DatabaseError) -> Path:
        """Move a file that is not a database out of the way, under a name that says so."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        moved = self.path.with_name(f"{JOURNAL}.corrupt-{stamp}")
        n = 1
        while moved.exists():
            n += 1
            moved = self.path.with_name(f"{JOURNAL}.corrupt-{stamp}-{n}")
        try:
            for suffix in ("-wal", "-shm"):  # SQLite's companions belong to the old file
                companion = self.path.with_name(JOURNAL + suffix)
                if companion.exists():
                    companion.rename(moved.with_name(moved.name + suffix))
            self.path.rename(moved)
        except OSError as move_err:
            raise JournalError(
                f"the job journal {self.path} is not a usable database ({err}) and could not be "
                f"moved aside ({_reason(move_err)}); move it away and start again"
            ) from None
        log.warning(
            "the job journal %s is not a usable database (%s): moved it to %s and started an "
            "empty journal; the jobs in it will not be run or delivered",
            self.path,
            err,
            moved,
        )
        return moved

    def _retrying(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)``, again while another program holds the lock, up to ``busy_wait`` s.

        SQLite's own busy timeout does most of the waiting; the loop also covers the cases it
        does not wait on (a write transaction that would have to upgrade a stale read).
        """
        deadline = time.monotonic() + self.busy_wait
        pause = 0.01
        while True:
            try:
                return fn(*args)
            except sqlite3.OperationalError as err:
                left = deadline - time.monotonic()
                if not _busy(err):
                    raise
                if left <= 0:
                    raise JournalUnavailable(
                        f"the job journal {self.path} stayed locked by another program for "
                        f"{self.busy_wait:g} s ({err})"
                    ) from None
                time.sleep(min(pause, left))
                pause = min(pause * 2, _LOCK_POLL)

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        def locked() -> _T:
            with self._lock:
                return self._retrying(fn, *args)

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

    async def add(
        self, record: JobRecord, content: bytes, style: bytes, style2: bytes | None = None
    ) -> None:
        """Journal an accepted job with its inputs (files first, then the row), and count it
        towards its member's pictures of the day."""
        await self._run(self._add, record, content, style, style2)

    def _add(self, record: JobRecord, content: bytes, style: bytes, style2: bytes | None) -> None:
        folder = self._dir(record.id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "content.bin").write_bytes(content)
        (folder / "style.bin").write_bytes(style)
        if style2 is not None:
            (folder / "style2.bin").write_bytes(style2)
        now = time.time()
        with self._conn() as db:
            if record.guild_id is not None:
                # Counted with the row, in one transaction; a count kept apart from the jobs
                # table survives `prune`, which may remove today's rows (NST_KEEP_HOURS < 24).
                db.execute(
                    "INSERT INTO daily_use VALUES (?,?,?,1) ON CONFLICT(guild_id, user_id, day) "
                    "DO UPDATE SET pictures=pictures+1",
                    (record.guild_id, record.user_id, _utc_day(now)),
                )
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
                db.execute("DELETE FROM daily_use WHERE day < ?", (_utc_day(time.time()),))
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

    async def guild_settings(self, guild_id: int) -> GuildSettings:
        """The server's settings; every field None (and no channels) if it chose none."""

        def query() -> GuildSettings:
            db = self._conn()
            row = db.execute(
                "SELECT * FROM guild_settings WHERE guild_id=?", (guild_id,)
            ).fetchone()
            channels = frozenset(
                r[0]
                for r in db.execute(
                    "SELECT channel_id FROM guild_channels WHERE guild_id=?", (guild_id,)
                )
            )
            chosen = {name: row[name] for name in GUILD_SETTINGS} if row else {}
            return GuildSettings(**chosen, channels=channels)

        return await self._run(query)

    async def update_guild_settings(self, guild_id: int, **changes: Any) -> GuildSettings:
        """Set the named settings (a value of None clears one); the others stay as they were.
        Raises TypeError for a name not in GUILD_SETTINGS."""
        unknown = sorted(set(changes) - set(GUILD_SETTINGS))
        if unknown:
            raise TypeError(f"unknown server settings: {', '.join(unknown)}")
        if changes:
            names = list(changes)
            updates = ", ".join(f"{name}=excluded.{name}" for name in names)

            def update() -> None:
                with self._conn() as db:
                    db.execute(
                        f"INSERT INTO guild_settings (guild_id, {', '.join(names)}) "
                        f"VALUES (?{', ?' * len(names)}) "
                        f"ON CONFLICT(guild_id) DO UPDATE SET {updates}",
                        (guild_id, *changes.values()),
                    )

            await self._run(update)
        return await self.guild_settings(guild_id)

    async def add_channel(self, guild_id: int, channel_id: int) -> bool:
        """Allow the bot in a channel; False if it was allowed already."""

        def update() -> bool:
            with self._conn() as db:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO guild_channels VALUES (?, ?)", (guild_id, channel_id)
                )
                return cursor.rowcount > 0

        return await self._run(update)

    async def remove_channel(self, guild_id: int, channel_id: int) -> bool:
        """Take a channel off the allow-list; False if it was not on it."""

        def update() -> bool:
            with self._conn() as db:
                cursor = db.execute(
                    "DELETE FROM guild_channels WHERE guild_id=? AND channel_id=?",
                    (guild_id, channel_id),
                )
                return cursor.rowcount > 0

        return await self._run(update)

    async def pictures_today(self, guild_id: int, user_id: int) -> int:
        """Jobs the member had accepted in this server since 00:00 UTC, whatever became of
        them (cancelled and failed ones count too)."""

        def query() -> int:
            row = (
                self._conn()
                .execute(
                    "SELECT pictures FROM daily_use WHERE guild_id=? AND user_id=? AND day=?",
                    (guild_id, user_id, _utc_day(time.time())),
                )
                .fetchone()
            )
            return row[0] if row else 0

        return await self._run(query)

    # ---- saved styles -------------------------------------------------------------------

    async def add_style(self, guild_id: int, name: str, user_id: int, image: bytes) -> SavedStyle:
        """Save ``image`` (PNG, already bounded in size) under ``name``. Raises BadStyleName,
        StyleExists or TooManyStyles, each one line a member may see."""
        name = style_name(name)
        saved = SavedStyle(
            guild_id=guild_id,
            name=name,
            user_id=user_id,
            created=time.time(),
            image=image,
            sha256=hashlib.sha256(image).hexdigest(),
        )

        def insert() -> None:
            with self._conn() as db:
                count = db.execute(
                    "SELECT COUNT(*) FROM styles WHERE guild_id=?", (guild_id,)
                ).fetchone()[0]
                if db.execute(
                    "SELECT 1 FROM styles WHERE guild_id=? AND key=?", (guild_id, _key(name))
                ).fetchone():
                    raise StyleExists(name)
                if count >= MAX_STYLES:
                    raise TooManyStyles()
                db.execute(
                    "INSERT INTO styles VALUES (?,?,?,?,?,?,?)",
                    (guild_id, _key(name), name, user_id, saved.created, saved.sha256, image),
                )

        await self._run(insert)
        return saved

    async def style(self, guild_id: int, name: str) -> SavedStyle | None:
        """The server's style of that name, whatever its case; None if there is none."""

        def query() -> SavedStyle | None:
            row = (
                self._conn()
                .execute(
                    "SELECT * FROM styles WHERE guild_id=? AND key=?",
                    (guild_id, _key(_collapse(name))),
                )
                .fetchone()
            )
            return _saved_style(row) if row else None

        return await self._run(query)

    async def styles(self, guild_id: int) -> list[SavedStyle]:
        """All the server's styles with their images, ordered by name (case ignored)."""

        def query() -> list[SavedStyle]:
            rows = self._conn().execute(
                "SELECT * FROM styles WHERE guild_id=? ORDER BY key", (guild_id,)
            )
            return [_saved_style(row) for row in rows.fetchall()]

        return await self._run(query)

    async def style_names(self, guild_id: int) -> list[str]:
        """The server's style names, ordered as `styles` orders them, without reading the
        images (for autocomplete)."""

        def query() -> list[str]:
            rows = self._conn().execute(
                "SELECT name FROM styles WHERE guild_id=? ORDER BY key", (guild_id,)
            )
            return [row[0] for row in rows.fetchall()]

        return await self._run(query)

    async def remove_style(self, guild_id: int, name: str) -> bool:
        """Forget the server's style of that name; False if there was none."""

        def delete() -> bool:
            with self._conn() as db:
                cursor = db.execute(
                    "DELETE FROM styles WHERE guild_id=? AND key=?",
                    (guild_id, _key(_collapse(name))),
                )
                return cursor.rowcount > 0

        return await self._run(delete)


def style_name(name: str) -> str:
    """``name`` with runs of spaces collapsed; BadStyleName unless it is 1-32 characters."""
    collapsed = _collapse(name)
    if not 1 <= len(collapsed) <= STYLE_NAME_LENGTH:
        raise BadStyleName(collapsed)
    return collapsed


def _collapse(name: str) -> str:
    return " ".join(name.split())


def _key(name: str) -> str:
    """What makes two names the same name: case folded (Unicode-aware, unlike SQLite's NOCASE)."""
    return name.casefold()


def _saved_style(row: sqlite3.Row) -> SavedStyle:
    return SavedStyle(
        guild_id=row["guild_id"],
        name=row["name"],
        user_id=row["user_id"],
        created=row["created"],
        image=bytes(row["image"]),
        sha256=row["sha256"],
    )


def _utc_day(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")


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
    )


def _busy(err: sqlite3.DatabaseError) -> bool:
    """Another connection holds a lock we need: worth waiting for."""
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(err) or "busy" in str(err)


def _not_a_database(err: sqlite3.DatabaseError) -> bool:
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT)
    return "not a database" in str(err) or "malformed" in str(err)


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def _reason(err: OSError) -> str:
    return err.strerror or str(err)
