"""A smaller version of bench/load.py: a burst of members, every job ends exactly once."""

from __future__ import annotations

import pytest

from bench.load import run_load
from tests.bot.harness import running_bot

pytestmark = pytest.mark.asyncio


async def test_a_burst_of_members_each_get_one_answer_per_request_fairly(tmp_path) -> None:
    async with running_bot(
        tmp_path,
        nst_max_steps=3,
        nst_user_limit=2,
        nst_queue_limit=100,
        nst_member_rate=0,
        nst_guild_rate=0,
    ) as world:
        report = await run_load(world, members=8, per_member=3, timeout=300)
    print("\n".join(report.lines()))
    assert report.lost == 0 and report.duplicated == 0
    # Two per member fit under the cap; each third is refused with the cap message.
    assert report.outcomes == {"result": 16, "refused": 8}
    assert report.round_robin
    # A generous bound: the figure itself is reported by bench/load.py.
    assert report.max_lag < 0.5
