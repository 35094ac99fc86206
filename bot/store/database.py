"""The journal's database: one SQLite file (WAL) in NST_DATA_DIR, its schema checked on
open, every call retried while another program holds its lock, all of it run in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from bot.store import names

log = logging.getLogger(__name__)

# A job id as the journal takes it (it also names the job's folder).
JOB_ID = re.compile(r"^[0-9a-f]{8,32}$")
# States: queued → running → done (result saved) → delivered; or failed / cancelled.
PENDING_STATES = ("queued", "running", "done")

_T = TypeVar("_T")
JOURNAL = "jobs.sqlite3"
# How long SQLite itself waits for a lock before our retry loop looks at the clock again.
_LOCK_POLL = 0.25

SCHEMA = """
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
    updated REAL NOT NULL,
    status_message_id INTEGER
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
# Nullable columns added to a table after its first release, in the order they were added (each
# is last in SCHEMA's table): an older journal lacks the last few and gains them on open.
_ADDED_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "jobs": (("status_message_id", "INTEGER"),),
}

# Saved styles: names are 1-32 characters (see `bot.store.names`), unique per server by their
# key, at most MAX_STYLES per server.
MAX_STYLES = 100
# What `update_guild_settings` may change; None clears a setting.
GUILD_SETTINGS = ("max_size", "default_quality", "daily_limit", "role_id")


class JournalError(Exception):
    """The journal cannot be used; the message is one line saying why and what to do."""


class JournalUnavailable(JournalError):
    """Another program held the journal's lock for longer than the store may wait."""


class Database:
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
            missing = self._check_schema(db)
            for table, column, kind in missing:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            db.executescript(SCHEMA)
            _migrate_style_names(db)
        except BaseException:
            db.close()
            raise
        db.row_factory = sqlite3.Row
        return db

    def _check_schema(self, db: sqlite3.Connection) -> list[tuple[str, str, str]]:
        """Refuse a file whose tables have our names but not our columns (another program's),
        before anything is written to it; the columns an older bot's tables lack, to add."""
        with contextlib.closing(sqlite3.connect(":memory:")) as ours:
            ours.executescript(SCHEMA)
            expected = {table: _columns(ours, table) for table in _TABLES}
        missing = []
        for table, wanted in expected.items():
            columns = _columns(db, table)
            added = _ADDED_COLUMNS.get(table, ())
            lacking = len(wanted) - len(columns)
            if columns and 0 < lacking <= len(added) and columns == wanted[:-lacking]:
                missing += [(table, *column) for column in added[-lacking:]]
            elif columns and columns != wanted:
                raise JournalError(
                    f"{self.path} has a table {table!r} that is not nst-bot's (columns: "
                    f"{', '.join(columns)}); set NST_DATA_DIR to another folder, or move that "
                    "file away if it is not needed"
                )
        return missing

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
        if not JOB_ID.match(job_id):
            raise ValueError(f"bad job id {job_id!r}")
        return self.root / "jobs" / job_id


def _migrate_style_names(db: sqlite3.Connection) -> None:
    """Saved styles' names and keys as `bot.store.names` makes them now (an older bot only
    collapsed spaces and folded case). Of names that are now the same, the first saved is kept
    and the others are removed; a name with nothing visible left is renamed after its image."""
    rows = db.execute(
        "SELECT rowid, guild_id, key, name, sha256 FROM styles ORDER BY guild_id, created, rowid"
    ).fetchall()
    kept: dict[tuple[int, str], str] = {}
    removed, renamed = [], []
    for rowid, guild_id, key, name, sha256 in rows:
        new_name = names.migrated(name) or f"unnamed {sha256[:8]}"
        new_key = names.style_key(new_name)
        if (guild_id, new_key) in kept:
            removed.append((rowid, guild_id, name, kept[guild_id, new_key]))
            continue
        kept[guild_id, new_key] = new_name
        if (new_key, new_name) != (key, name):
            renamed.append((rowid, guild_id, name, new_name, new_key))
    if not removed and not renamed:
        return
    with db:
        db.executemany("DELETE FROM styles WHERE rowid=?", [(r[0],) for r in removed])
        # Through a key no name can have, so that no two rows hold one key in between.
        db.executemany(
            "UPDATE styles SET key=? WHERE rowid=?", [(f"\0{r[0]}", r[0]) for r in renamed]
        )
        db.executemany(
            "UPDATE styles SET key=?, name=? WHERE rowid=?", [(r[4], r[3], r[0]) for r in renamed]
        )
    for _rowid, guild_id, name, new_name, _key in renamed:
        if new_name != name:
            log.warning("guild %s: saved style %r is now called %r", guild_id, name, new_name)
    for _rowid, guild_id, name, first in removed:
        log.warning(
            "guild %s: removed saved style %r: its name is now the same as %r, saved before it",
            guild_id,
            name,
            first,
        )
    log.info(
        "style names brought up to date: %d renamed or re-keyed, %d removed as duplicates",
        len(renamed),
        len(removed),
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


def utc_day(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
