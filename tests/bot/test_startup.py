"""``nst-bot`` started as an operator starts it, with the mistakes operators make: each ends in one
``error:`` line and exit status 2, or a warning and a start that carries on; Discord out of
reach is tried again, one line per attempt, until it answers or the bot is stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.bot.emulator import DiscordEmulator
from tests.bot.harness import TOKEN, free_port

UNREACHABLE = "cannot reach Discord at"


@asynccontextmanager
async def nst_bot(data_dir: Path, api_base: str, **extra: str) -> AsyncIterator[_Bot]:
    """``python -m bot`` in its own process group, its stderr read line by line."""
    env = {
        **os.environ,
        "DISCORD_TOKEN": TOKEN,
        "DISCORD_API_BASE": api_base,
        "NST_HTTP_PORT": "0",
        "NST_DATA_DIR": str(data_dir),
        **extra,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        env=env,
        start_new_session=True,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield _Bot(process)
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


class _Bot:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    async def wait_for(self, wanted: Callable[[list[str]], bool], timeout: float = 60) -> None:
        """Read stderr until ``wanted(lines so far)``."""

        async def read() -> None:
            while not wanted(self.lines):
                line = await self.process.stderr.readline()
                if not line:
                    raise AssertionError("nst-bot ended:\n" + "\n".join(self.lines))
                self.lines.append(line.decode().rstrip("\n"))

        await asyncio.wait_for(read(), timeout)

    async def exit_status(self, timeout: float = 60) -> int:
        rest = await asyncio.wait_for(self.process.stderr.read(), timeout)
        self.lines += rest.decode().splitlines()
        return await self.process.wait()

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


async def _one_line_error(data_dir: Path, **extra: str) -> str:
    """The ``error:`` line that ends nst-bot's stderr, with exit status 2 and no traceback.

    Discord is there (the emulator), so that nothing but the mistake can stop the bot."""
    async with (
        DiscordEmulator(token=TOKEN) as emu,
        nst_bot(
            data_dir,
            emu.api_base,
            NST_WEIGHTS="random",
            NST_DEV_GUILD=str(emu.guild.id),
            **extra,
        ) as bot,
    ):
        assert await bot.exit_status() == 2, bot.text
    *before, line = bot.lines
    assert line.startswith("error: ") and "Traceback" not in bot.text, bot.text
    assert all("NST_WEIGHTS=random: results are NOT real" in x for x in before), bot.text
    return line


async def test_a_data_dir_under_a_regular_file_stops_nst_bot_with_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("not a folder")
    line = await _one_line_error(tmp_path / "notes.txt" / "nst-data")
    assert line == (
        f"error: NST_DATA_DIR={tmp_path}/notes.txt/nst-data cannot be used: Not a directory; "
        "set it to a folder the bot may create and write"
    )


async def test_a_data_dir_that_is_a_file_or_in_proc_stops_nst_bot_with_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("not a folder")
    line = await _one_line_error(tmp_path / "notes.txt")
    assert line.startswith(f"error: NST_DATA_DIR={tmp_path}/notes.txt cannot be used: it is a file")
    line = await _one_line_error(Path("/proc/nst-data"))
    assert line.startswith("error: NST_DATA_DIR=/proc/nst-data cannot be used: ")
    line = await _one_line_error(Path("/proc/self"))
    assert line.startswith("error: the job journal /proc/self/jobs.sqlite3 cannot be opened: ")


async def test_an_http_port_in_use_stops_nst_bot_with_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = await _one_line_error(tmp_path / "data", NST_HTTP_PORT=str(port))
    assert line == (
        f"error: NST_HTTP_PORT={port} cannot be used: it is already in use (another nst-bot?); "
        "choose another port, or 0 to turn the health and metrics server off"
    )


async def test_a_journal_of_another_schema_stops_nst_bot_with_one_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with sqlite3.connect(data / "jobs.sqlite3") as db:
        db.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, payload TEXT)")
    line = await _one_line_error(data)
    assert line.startswith(
        f"error: {data}/jobs.sqlite3 has a table 'jobs' that is not nst-bot's (columns: id, "
        "payload); set NST_DATA_DIR to another folder"
    )


async def test_a_corrupt_journal_is_moved_aside_and_nst_bot_starts_with_a_fresh_one(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    garbage = b"\x00\x13 this file was overwritten by something else \xff" * 300
    (data / "jobs.sqlite3").write_bytes(garbage)
    async with DiscordEmulator(token=TOKEN) as emu:
        extra = {"NST_WEIGHTS": "random", "NST_DEV_GUILD": str(emu.guild.id)}
        async with nst_bot(data, emu.api_base, **extra) as bot:
            await emu.wait_ready(timeout=120)
            await bot.wait_for(lambda lines: any("connected as" in line for line in lines))
            bot.process.send_signal(signal.SIGTERM)
            assert await bot.exit_status() == 0, bot.text
    [moved] = data.glob("jobs.sqlite3.corrupt-*")
    assert moved.read_bytes() == garbage
    [warning] = [line for line in bot.lines if "not a usable database" in line]
    assert " WARNING " in warning and f"moved it to {moved} and started an empty journal" in warning
    with sqlite3.connect(data / "jobs.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM jobs").fetchone() == (0,)
    assert "Traceback" not in bot.text


@asynccontextmanager
async def _forwarding(port: int, to_port: int) -> AsyncIterator[None]:
    """Loopback ``port`` forwarded to ``to_port``: Discord coming back where nst-bot looks."""
    writers: set[asyncio.StreamWriter] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", to_port)
        writers.update((writer, up_writer))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def test_nst_bot_tries_again_until_discord_answers_and_stops_on_sigterm(tmp_path):
    emu = DiscordEmulator(token=TOKEN)
    port = free_port()  # nothing listens there yet: Discord is out of reach
    async with nst_bot(
        tmp_path / "data",
        f"http://127.0.0.1:{port}/api/v10",
        NST_WEIGHTS="random",
        NST_DEV_GUILD=str(emu.guild.id),
    ) as bot:
        await bot.wait_for(lambda lines: sum(UNREACHABLE in line for line in lines) >= 2)
        attempts = [line for line in bot.lines if UNREACHABLE in line]
        assert f"{UNREACHABLE} http://127.0.0.1:{port}/api/v10 (attempt 1: " in attempts[0]
        assert attempts[0].endswith("; trying again in 1 s")
        assert "(attempt 2: " in attempts[1] and attempts[1].endswith("; trying again in 2 s")
        async with emu, _forwarding(port, emu.port):
            await emu.wait_ready(timeout=120)
            await bot.wait_for(lambda lines: any("reached Discord after" in x for x in lines))
            bot.process.send_signal(signal.SIGTERM)
            assert await bot.exit_status() == 0, bot.text
    assert emu.identify_count == 1
    assert "Traceback" not in bot.text and TOKEN not in bot.text
    assert bot.count("voice will NOT be supported") == 0  # discord.py's notice, not for us
    assert "Unclosed" not in bot.text  # no session left behind by the failed attempts


async def test_a_sigterm_while_discord_is_out_of_reach_ends_nst_bot_at_once(tmp_path):
    async with nst_bot(tmp_path / "data", f"http://127.0.0.1:{free_port()}/api/v10") as bot:
        await bot.wait_for(lambda lines: any(UNREACHABLE in line for line in lines))
        bot.process.send_signal(signal.SIGTERM)
        assert await bot.exit_status(timeout=10) == 0, bot.text
    assert bot.lines[-1].endswith("bot: stopped before Discord could be reached")
    assert "Traceback" not in bot.text


@pytest.mark.parametrize("how", ["setup_logging", "set_library_levels"])
def test_discord_pys_voice_notices_are_not_logged(how):
    import subprocess

    script = (
        "import logging, discord, bot.logs\n"
        f"bot.logs.setup_logging() if {how == 'setup_logging'} else (\n"
        "    logging.basicConfig(), bot.logs.set_library_levels(logging.INFO))\n"
        "discord.Client(intents=discord.Intents.none())\n"
        "logging.getLogger('discord.client').warning('other warnings still show')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "other warnings still show" in done.stderr
    assert "voice" not in done.stderr
