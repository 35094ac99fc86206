"""``python -m bot`` leaves no engine worker behind however it stops, and a signal to its whole
process group is the bot's to handle, not its workers'."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time

import pytest

from tests.bot.emulator import DiscordEmulator
from tests.bot.harness import TOKEN, add_painting, add_photo, bot_process, ready_bot
from tests.nst_engine.test_orphans import children, kill_all, wait_gone

pytestmark = pytest.mark.asyncio


def journal_states(data_dir) -> list[str]:
    with sqlite3.connect(data_dir / "jobs.sqlite3") as db:
        return [row[0] for row in db.execute("SELECT state FROM jobs")]


async def painting(emu: DiscordEmulator):
    """A member's /stylize, once the bot says it is painting; the interaction."""
    params = {"content": add_photo(emu), "style": add_painting(emu), "quality": "best"}
    inter = await emu.invoke_slash("stylize", params)
    await inter.wait_for_original(lambda m: "painting" in m.content, timeout=60)
    return inter


def engine_processes(bot_pid: int) -> dict[int, bytes]:
    """The bot's engine workers and multiprocessing's resource tracker, with command lines."""
    found = children(bot_pid)
    assert any(b"spawn_main" in command for command in found.values()), found
    return found


async def test_a_bot_killed_with_sigkill_leaves_no_worker_and_delivers_once(tmp_path) -> None:
    data = tmp_path / "data"
    async with DiscordEmulator(token=TOKEN) as emu:
        async with ready_bot(emu, data, "first.log") as first:
            inter = await painting(emu)
            helpers = engine_processes(first.pid)
            first.kill()  # the bot alone, as the out-of-memory killer does; not its group
            await first.wait()
            left = await wait_gone(helpers, timeout=5)
            kill_all(left)
            assert left == [], f"still running after the bot died: {left}"
        assert journal_states(data) == ["running"]

        async with bot_process(emu, data, "second.log"):
            await inter.wait_for(lambda rec: any(m.files for m in rec.followups), timeout=60)
            await asyncio.sleep(2)
            assert len([m for m in inter.followups if m.files]) == 1
            assert journal_states(data) == ["delivered"]
            # The dead workers' pid files were cleared at start, nothing to end.
            assert not {f"worker-{pid}.pid" for pid in helpers} & {
                p.name for p in (data / "workers").iterdir()
            }
    assert "left over by an earlier bot" not in (tmp_path / "second.log").read_text()


async def test_a_bot_stopped_while_its_worker_is_stuck_exits_in_time_leaving_none(
    tmp_path,
) -> None:
    data, grace = tmp_path / "data", 2
    async with DiscordEmulator(token=TOKEN) as emu:
        async with ready_bot(emu, data, "first.log", NST_SHUTDOWN_GRACE=str(grace)) as bot:
            await painting(emu)
            helpers = engine_processes(bot.pid)
            # The bot's own record of its workers: one pid file each.
            workers = [int(p.stem.removeprefix("worker-")) for p in (data / "workers").iterdir()]
            assert workers and set(workers) <= set(helpers)
            try:
                for pid in workers:
                    os.kill(pid, signal.SIGSTOP)  # stuck in one endless step
                asked = time.monotonic()
                bot.send_signal(signal.SIGTERM)
                # The grace, then the pool's own 10 s for the job to stop before it kills.
                assert await asyncio.wait_for(bot.wait(), grace + 40) == 0
                assert time.monotonic() - asked < grace + 25
                left = await wait_gone(helpers, timeout=5)
                assert left == [], f"still running after the bot stopped: {left}"
            finally:
                kill_all(helpers)
        # Cut off, the job waits in the journal for the next start: not a crash, not retried.
        assert journal_states(data) == ["queued"]
    log = (tmp_path / "first.log").read_text()
    assert "Traceback" not in log and "retrying" not in log, log


async def test_sigterm_to_the_whole_process_group_lets_the_running_job_finish(tmp_path) -> None:
    data = tmp_path / "data"
    async with DiscordEmulator(token=TOKEN) as emu:
        async with ready_bot(emu, data, "first.log", NST_SHUTDOWN_GRACE="120") as bot:
            inter = await painting(emu)
            helpers = engine_processes(bot.pid)
            os.killpg(bot.pid, signal.SIGTERM)  # systemd's KillMode=control-group; kill -- -PGID
            assert await asyncio.wait_for(bot.wait(), 150) == 0
            assert await wait_gone(helpers, timeout=5) == []
        assert len([m for m in inter.followups if m.files]) == 1
        assert journal_states(data) == ["delivered"]
    log = (tmp_path / "first.log").read_text()
    for trouble in ("stopped unexpectedly", "could not send", "Traceback"):
        assert trouble not in log, log
