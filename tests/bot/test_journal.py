"""The job journal when another program holds its lock, or when its file or a row is damaged."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from bot.store import JobRecord, JobStore, JournalError, JournalUnavailable

IDS = ("aaaaaaaa0001", "aaaaaaaa0002", "aaaaaaaa0003")


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
