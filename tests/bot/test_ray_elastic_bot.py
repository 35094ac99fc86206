"""nst-bot, as a process, with elastic Ray actors on a one-host Ray head that listens on loopback
only: no actor while no job waits, one started for a job (the member is told), ended once idle,
and never more than the maximum for a burst.

NST_RAY_MIN_WORKERS=0, NST_RAY_MAX_WORKERS=2, NST_RAY_IDLE_S=10. The actors are counted twice:
on /metrics, and as the head's processes that Ray titles ``ray::EngineActor``.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import aiohttp
import pytest

from nst_engine.ray.loopback import ENV, LoopbackHead

# Before anything imports Ray: every Ray process, this driver included, on 127.0.0.1 only.
os.environ.update(ENV)

from tests.bot.emulator import DiscordEmulator  # noqa: E402
from tests.bot.harness import (  # noqa: E402
    TOKEN,
    add_painting,
    add_photo,
    finished,
    free_port,
    ready_bot,
    result_png,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def head():
    with LoopbackHead(cpus=2) as head:
        yield head
    assert head.pids() == []


def actors(head: LoopbackHead) -> int:
    """The head's processes that are an engine actor now."""
    count = 0
    for pid in head.pids():
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        count += title.startswith(b"ray::EngineActor")
    return count


async def scrape(http: str) -> tuple[int, dict[str, float]]:
    """/healthz's status, and the workers' gauges on /metrics."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{http}/healthz") as answer:
            status = answer.status
        async with session.get(f"{http}/metrics") as answer:
            text = await answer.text()
    gauges = {
        name: float(value)
        for name, value in re.findall(r"^nst_workers_(\w+) ([\d.e+]+)$", text, re.MULTILINE)
    }
    return status, gauges


async def until(condition, timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await condition():
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"not within {timeout:g} s: {what}") from None


async def test_actors_follow_the_queue_from_zero_to_two_and_back(head, tmp_path) -> None:
    port = free_port()
    http = f"http://127.0.0.1:{port}"
    async with (
        DiscordEmulator(token=TOKEN) as emu,
        ready_bot(
            emu,
            tmp_path / "data",
            "bot.log",
            NST_BACKEND="ray",
            NST_RAY_ADDRESS=head.address,
            NST_RAY_CPUS_PER_WORKER="1",
            NST_RAY_MIN_WORKERS="0",
            NST_RAY_MAX_WORKERS="2",
            NST_RAY_IDLE_S="10",
            NST_USER_LIMIT="3",
            NST_MEMBER_RATE="0",
            NST_HTTP_PORT=str(port),
        ),
    ):

        async def stylize():
            params = {"content": add_photo(emu), "style": add_painting(emu), "quality": "fast"}
            return await emu.invoke_slash("stylize", params)

        # Healthy with no actor: the cluster scales.
        status, gauges = await scrape(http)
        assert status == 200 and actors(head) == 0
        assert gauges == {"alive": 0, "starting": 0, "wanted": 0}

        # A job starts one actor, and the member hears of it, then gets the picture.
        inter = await stylize()
        await inter.wait_for_original(lambda m: "starting a worker…" in m.content, timeout=60)
        result = await finished(inter, timeout=240)
        assert result_png(result).size == (64, 48)
        assert actors(head) == 1
        status, gauges = await scrape(http)
        assert status == 200 and gauges["alive"] == 1

        # Idle for 10 s: it ends. The bot stays healthy.
        async def no_actor() -> bool:
            return actors(head) == 0 and (await scrape(http))[1]["alive"] == 0

        await until(no_actor, 15 + 15, "the idle actor ended")
        assert (await scrape(http))[0] == 200

        # Three jobs at once: two actors, never more; the members are told how long a start
        # takes, from the one measured above.
        most = 0

        async def count() -> None:
            nonlocal most
            while True:
                _, gauges = await scrape(http)
                most = max(most, actors(head), int(gauges["alive"] + gauges["starting"]))
                await asyncio.sleep(0.1)

        counter = asyncio.create_task(count())
        burst = [await stylize() for _ in range(3)]
        results = await asyncio.gather(*(finished(i, timeout=300) for i in burst))
        counter.cancel()
        assert [result_png(r).size for r in results] == [(64, 48)] * 3
        assert most == 2
        texts = [v.content for i in burst for v in i.original.history]
        assert any(re.search(r"starting a worker… \(about \d+ s\)", t) for t in texts), texts
        for i in burst:
            assert len([m for m in i.followups if m.files]) == 1
