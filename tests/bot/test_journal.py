"""The job journal when another program holds its lock, or when its file or a row is damaged;
and what servers keep beside it: saved styles, settings, pictures per day, a second style."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bot.cogs.stylize.request import Params, Request
from bot.errors import UserFacingError
from bot.store import (
    MAX_STYLES,
    BadStyleName,
    GuildSettings,
    JobRecord,
    JobStore,
    JournalError,
    JournalUnavailable,
    StyleExists,
    TooManyStyles,
)
from bot.store.database import SCHEMA

IDS = ("aaaaaaaa0001", "aaaaaaaa0002", "aaaaaaaa0003")
# The jobs table as nst-bot created it before status messages were journaled.
_JOBS_BEFORE_STATUS_MESSAGES = """
CREATE TABLE jobs (
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
CREATE INDEX jobs_state ON jobs(state);
"""
# The other tables as they are now.
_AFTER_JOBS = SCHEMA.split("ON jobs(state);", 1)[1]


def _record(job_id: str) -> JobRecord:
    return JobRecord(job_id, "queued", 1, 2, 3, 4, "token", time.time(), {"seed": 1}, 0, 0.0)


def _states(path: Path) -> dict[str, str]:
    with sqlite3.connect(path / "jobs.sqlite3") as db:
        return dict(db.execute("SELECT id, state FROM jobs"))


async def _hold_write_lock(path: Path, seconds: float) -> asyncio.subprocess.Process:
    """Another program (an operator's sqlite3 session, a backup tool) holds the journal's lock."""
    script = (
        "import sqlite3, sys, time\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
        "db.execute('COMMIT')\n"
    )
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        str(path / "jobs.sqlite3"),
        str(seconds),
        stdout=asyncio.subprocess.PIPE,
    )
    assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"locked\n"
    return holder


async def test_a_write_waits_while_another_program_holds_the_lock(tmp_path):
    store = JobStore(tmp_path)  # waits up to 30 s by default
    await store.add(_record(IDS[0]), b"content", b"style")
    # Longer than SQLite's default 5 s busy timeout, which is what the bot used to rely on.
    holder = await _hold_write_lock(tmp_path, 6.5)
    started = time.monotonic()
    await store.set_state(IDS[0], "running", attempt=True)
    waited = time.monotonic() - started
    await holder.wait()
    assert waited > 5.5
    assert _states(tmp_path) == {IDS[0]: "running"}
    store.close()


async def test_a_lock_held_past_the_wait_raises_journal_unavailable_in_one_line(tmp_path):
    store = JobStore(tmp_path, busy_wait=1.0)
    await store.add(_record(IDS[0]), b"content", b"style")
    holder = await _hold_write_lock(tmp_path, 4)
    started = time.monotonic()
    with pytest.raises(JournalUnavailable) as info:
        await store.save_result(IDS[0], b"png")
    waited = time.monotonic() - started
    message = str(info.value)
    assert 1.0 <= waited < 2.5
    assert "stayed locked by another program for 1 s" in message and "\n" not in message
    await holder.wait()
    await store.save_result(IDS[0], b"png")  # once the lock is gone the journal works again
    assert _states(tmp_path) == {IDS[0]: "done"}
    store.close()


async def test_an_unreadable_row_is_set_aside_and_the_others_recovered(tmp_path, caplog):
    store = JobStore(tmp_path)
    for job_id in IDS:
        await store.add(_record(job_id), b"content", b"style")
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        db.execute("UPDATE jobs SET params='{\"seed\": 1' WHERE id=?", (IDS[1],))
    with caplog.at_level(logging.WARNING, logger="bot.store"):
        pending = await store.pending()
    assert [r.id for r in pending] == [IDS[0], IDS[2]]
    assert _states(tmp_path)[IDS[1]] == "failed"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"job {IDS[1]}: its journal row cannot be read")
    assert "set aside as failed" in warnings[0]
    assert [r.id for r in await store.pending()] == [IDS[0], IDS[2]]  # and stays aside
    assert await store.load(IDS[1]) is None
    store.close()


def test_a_file_that_is_not_a_database_is_moved_aside_and_a_fresh_journal_started(tmp_path, caplog):
    garbage = b"these are not the bytes of a SQLite database\n" * 200
    (tmp_path / "jobs.sqlite3").write_bytes(garbage)
    store = JobStore(tmp_path)
    with caplog.at_level(logging.WARNING, logger="bot.store"):
        store.open()
    store.close()
    moved = list(tmp_path.glob("jobs.sqlite3.corrupt-*"))
    assert len(moved) == 1 and moved[0].read_bytes() == garbage
    [warning] = [r.getMessage() for r in caplog.records]
    assert f"moved it to {moved[0]}" in warning and "\n" not in warning
    assert _states(tmp_path) == {}


def test_a_jobs_table_of_another_schema_is_refused_in_one_line(tmp_path):
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        db.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, name TEXT, status TEXT)")
        db.execute("INSERT INTO jobs VALUES (1, 'backup', 'ok')")
    with pytest.raises(JournalError) as info:
        JobStore(tmp_path).open()
    message = str(info.value)
    assert "has a table 'jobs' that is not nst-bot's (columns: id, name, status)" in message
    assert "set NST_DATA_DIR to another folder" in message and "\n" not in message
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:  # left as it was
        assert db.execute("SELECT * FROM jobs").fetchall() == [(1, "backup", "ok")]


# ---- what servers keep in the same database ---------------------------------------------


async def test_a_second_style_is_journaled_and_loaded_back_and_one_style_jobs_have_none(tmp_path):
    store = JobStore(tmp_path)
    await store.add(_record(IDS[0]), b"content", b"style", b"style two")
    await store.add(_record(IDS[1]), b"content", b"style")
    store.close()
    reopened = JobStore(tmp_path)  # as after a restart
    blend = await reopened.load(IDS[0])
    assert (blend.content, blend.style, blend.style2) == (b"content", b"style", b"style two")
    assert (await reopened.load(IDS[1])).style2 is None
    reopened.close()


async def test_saved_styles_are_unique_per_server_whatever_their_case(tmp_path):
    store = JobStore(tmp_path)
    saved = await store.add_style(1, "  Starry   Night ", 7, b"png bytes")
    assert saved.name == "Starry Night"
    assert saved.sha256 == hashlib.sha256(b"png bytes").hexdigest()
    with pytest.raises(StyleExists) as info:
        await store.add_style(1, "STARRY night", 8, b"other")
    assert "already has a style called 'STARRY night'" in str(info.value)
    await store.add_style(2, "starry night", 8, b"other")  # another server's names are its own
    await store.add_style(1, "Été", 7, b"a")
    with pytest.raises(StyleExists):  # case folded beyond ASCII, unlike SQLite's NOCASE
        await store.add_style(1, "éTÉ", 7, b"a")
    await store.add_style(1, "bauhaus", 7, b"b")
    await store.add_style(1, "Ant", 7, b"c")
    names = ["Ant", "bauhaus", "Starry Night", "Été"]  # case ignored, then code points
    assert [s.name for s in await store.styles(1)] == names
    assert await store.style_names(1) == names
    found = await store.style(1, "starry NIGHT")
    assert (found.name, found.user_id, found.image) == ("Starry Night", 7, b"png bytes")
    assert await store.style(1, "nope") is None
    assert await store.remove_style(1, "STARRY NIGHT") is True
    assert await store.remove_style(1, "starry night") is False
    assert await store.style(1, "Starry Night") is None
    assert (await store.style(2, "Starry Night")).user_id == 8
    store.close()


@pytest.mark.parametrize("name", ["", "   ", "x" * 33])
async def test_a_style_name_outside_1_to_32_characters_is_refused_in_one_line(tmp_path, name):
    store = JobStore(tmp_path)
    with pytest.raises(BadStyleName) as info:
        await store.add_style(1, name, 7, b"png")
    assert str(info.value).startswith("A style name must be 1 to 32 characters")
    assert isinstance(info.value, UserFacingError) and "\n" not in str(info.value)
    assert await store.styles(1) == []
    store.close()


async def test_the_101st_style_of_a_server_is_refused(tmp_path):
    store = JobStore(tmp_path)
    for n in range(MAX_STYLES):
        await store.add_style(1, f"style {n}", 7, b"png")
    with pytest.raises(TooManyStyles) as info:
        await store.add_style(1, "one more", 7, b"png")
    assert "already has 100 saved styles" in str(info.value) and "\n" not in str(info.value)
    assert len(await store.styles(1)) == 100
    await store.remove_style(1, "style 0")
    await store.add_style(1, "one more", 7, b"png")  # room again
    store.close()


async def test_server_settings_start_empty_and_change_only_what_is_named(tmp_path):
    store = JobStore(tmp_path)
    assert await store.guild_settings(1) == GuildSettings()
    await store.update_guild_settings(1, max_size=256, daily_limit=5)
    changed = await store.update_guild_settings(1, default_quality="fast", role_id=99)
    assert changed == GuildSettings(256, "fast", 5, 99, frozenset())
    await store.update_guild_settings(1, role_id=None)
    assert await store.add_channel(1, 10) and await store.add_channel(1, 11)
    assert not await store.add_channel(1, 10)
    assert await store.remove_channel(1, 11) and not await store.remove_channel(1, 11)
    store.close()
    reopened = JobStore(tmp_path)
    assert await reopened.guild_settings(1) == GuildSettings(256, "fast", 5, None, frozenset({10}))
    assert await reopened.guild_settings(2) == GuildSettings()
    with pytest.raises(TypeError, match="unknown server settings: colour"):
        await reopened.update_guild_settings(1, colour="red")
    reopened.close()


async def test_pictures_today_counts_accepted_jobs_since_midnight_utc_even_once_pruned(tmp_path):
    store = JobStore(tmp_path)
    for job_id in IDS:  # _record: user 1 in guild 3
        await store.add(_record(job_id), b"content", b"style")
    await store.set_state(IDS[1], "cancelled")
    other = JobRecord("bbbbbbbb0001", "queued", 2, 2, 3, 4, None, time.time(), {}, 0, 0.0)
    await store.add(other, b"content", b"style")
    assert await store.pictures_today(3, 1) == 3
    assert await store.pictures_today(3, 2) == 1
    assert await store.pictures_today(4, 1) == 0
    for job_id in IDS:
        await store.set_state(job_id, "delivered")
    assert await store.prune(-1) == 3  # short retention removes today's rows…
    assert await store.pictures_today(3, 1) == 3  # …but not what they count
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:  # yesterday's count no longer applies
        db.execute("UPDATE daily_use SET day='2000-01-01'")
    assert await store.pictures_today(3, 1) == 0
    await store.prune(3600)
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM daily_use").fetchone()[0] == 0
    store.close()


def test_a_journal_from_before_saved_styles_gains_the_new_tables_and_keeps_its_jobs(tmp_path):
    galleries = _AFTER_JOBS.split("CREATE TABLE IF NOT EXISTS styles")[0]
    old_schema = _JOBS_BEFORE_STATUS_MESSAGES + galleries
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        db.executescript(old_schema)
        db.execute(
            "INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (IDS[0], "queued", 1, 2, 3, 4, None, 0.0, "{}", 0, 0.0, 0.0),
        )
    store = JobStore(tmp_path)
    store.open()
    store.close()
    assert _states(tmp_path) == {IDS[0]: "queued"}
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert {"styles", "guild_settings", "guild_channels", "daily_use"} <= tables


def test_a_styles_table_of_another_schema_is_refused_in_one_line(tmp_path):
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        db.execute("CREATE TABLE styles (id INTEGER PRIMARY KEY, css TEXT)")
    with pytest.raises(JournalError) as info:
        JobStore(tmp_path).open()
    assert "has a table 'styles' that is not nst-bot's (columns: id, css)" in str(info.value)


async def test_a_status_message_id_is_journaled_and_a_recovered_request_has_it(tmp_path):
    store = JobStore(tmp_path)
    await store.add(_record(IDS[0]), b"content", b"style")
    await store.add(_record(IDS[1]), b"content", b"style")  # private, or not edited yet
    await store.set_status_message(IDS[0], 1234567890123456789)
    store.close()
    reopened = JobStore(tmp_path)  # as after a restart
    pending = {record.id: record for record in await reopened.pending()}
    assert pending[IDS[0]].status_message_id == 1234567890123456789
    assert pending[IDS[1]].status_message_id is None
    stored = await reopened.load(IDS[0])
    pixels = np.zeros((4, 4, 3), np.float32)
    request = Request.from_record(stored.record, pixels, pixels)
    assert request.status_message_id == 1234567890123456789 and request.resumed
    assert request.interaction is None
    reopened.close()


async def test_a_rerun_is_journaled_with_its_press_and_a_row_from_before_recovers_without(
    tmp_path,
):
    store = JobStore(tmp_path)
    pixels = np.zeros((4, 4, 3), np.float32)
    rerun = Request(
        None,
        Params(),
        pixels,
        pixels,
        user_id=1,
        channel_id=2,
        guild_id=3,
        application_id=4,
        token="token",
        created=time.time(),
        claimed_by=(IDS[2], "stronger"),  # the Stronger of job IDS[2]'s result made it
        id=IDS[0],
    )
    await store.add(rerun.to_record(), b"content", b"style")
    await store.add(_record(IDS[1]), b"content", b"style")  # journaled before presses were
    store.close()
    reopened = JobStore(tmp_path)  # as after a restart
    recovered = {
        record.id: Request.from_record(record, pixels, pixels)
        for record in await reopened.pending()
    }
    assert recovered[IDS[0]].claimed_by == (IDS[2], "stronger")
    assert recovered[IDS[0]].params == Params()
    assert recovered[IDS[1]].claimed_by is None
    reopened.close()


async def test_a_journal_from_before_status_messages_gains_the_column_and_keeps_its_jobs(tmp_path):
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        db.executescript(_JOBS_BEFORE_STATUS_MESSAGES + _AFTER_JOBS)
        db.execute(
            "INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (IDS[0], "running", 1, 2, 3, 4, None, 0.0, '{"seed": 7}', 1, 0.0, 0.0),
        )
    store = JobStore(tmp_path)
    [record] = await store.pending()
    assert (record.id, record.state, record.params, record.attempts) == (
        IDS[0],
        "running",
        {"seed": 7},
        1,
    )
    assert record.status_message_id is None
    await store.add(_record(IDS[1]), b"content", b"style")  # new jobs are written as before
    await store.set_status_message(IDS[1], 42)
    store.close()
    reopened = JobStore(tmp_path)  # the second open finds the column and adds nothing
    assert [r.status_message_id for r in await reopened.pending()] == [None, 42]
    reopened.close()
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(jobs)")]
    assert columns[-1] == "status_message_id" and columns.count("status_message_id") == 1


def test_a_jobs_table_missing_an_older_column_is_still_refused(tmp_path):
    without_params = _JOBS_BEFORE_STATUS_MESSAGES.replace("    params TEXT NOT NULL,\n", "")
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        db.executescript(without_params)
    with pytest.raises(JournalError) as info:
        JobStore(tmp_path).open()
    assert "has a table 'jobs' that is not nst-bot's" in str(info.value)
