"""A smaller version of bench/load.py: a burst of members, every job ends exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bot.burst import run_load
from tests.bot.emulator import DiscordEmulator
from tests.bot.harness import TOKEN, free_port, ready_bot

pytestmark = pytest.mark.asyncio


async def test_a_burst_of_members_each_get_one_answer_per_request_fairly(tmp_path) -> None:
    port = free_port()
    async with (
        DiscordEmulator(token=TOKEN) as emu,
        ready_bot(
            emu,
            tmp_path / "data",
            "bot.log",
            NST_MAX_STEPS="3",
            NST_USER_LIMIT="2",
            NST_QUEUE_LIMIT="100",
            NST_MEMBER_RATE="0",
            NST_GUILD_RATE="0",
            NST_HTTP_PORT=str(port),
        ) as bot,
    ):
        report = await run_load(emu, bot.pid, f"http://127.0.0.1:{port}", 8, 3, timeout=300)
        # The bot's own process never loads TensorFlow: the engine runs in the workers, and a
        # TensorFlow-sized heap made the garbage collector stall the event loop for 0.3 s.
        maps = Path(f"/proc/{bot.pid}/maps").read_text()
        assert "tensorflow" not in maps
    print("\n".join(report.lines()))
    assert report.lost == 0 and report.duplicated == 0
    # Two per member fit under the cap; each third is refused with the cap message.
    assert report.outcomes == {"result": 16, "refused": 8}
    assert report.round_robin
    # Generous bounds for a loaded CI machine: the figures are reported by bench/load.py. A
    # loop that blocks on work (a decode, a step) stalls for seconds; a starved 2-core machine
    # was once seen at 0.41 s with nothing blocking (23 ms alone), so 1 s tells the two apart.
    assert report.max_lag < 1.0
    assert 0 < report.peak_rss_mb < 3000
