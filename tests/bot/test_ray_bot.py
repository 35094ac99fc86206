"""The emulator's /stylize flow with NST_BACKEND=ray: the real discord.py client, our bot, and
its engine as one CPU actor on a real one-host Ray that listens on loopback only.

A representative part of tests/bot/test_stylize.py: a picture delivered with progress, Cancel,
and an actor killed with SIGKILL mid-job (retried once, exactly one picture, /healthz 503 while
no actor is alive). Start-up errors: a cluster that cannot be reached. Each runs twice: the bot
joining the cluster as a driver (NST_RAY_ADDRESS=HOST:PORT), and through the head's Ray Client
server (NST_RAY_ADDRESS=ray://HOST:PORT).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from nst_engine.ray.loopback import ENV, LoopbackHead

# Before anything imports Ray: every Ray process, this driver included, on 127.0.0.1 only.
os.environ.update(ENV)

import ray  # noqa: E402

from nst_engine.processes import descendants, start_time  # noqa: E402
from nst_engine.ray.backend import RayBackend  # noqa: E402
from tests.bot.emulator import DiscordEmulator  # noqa: E402
from tests.bot.harness import (  # noqa: E402
    TOKEN,
    World,
    add_painting,
    add_photo,
    bot_process,
    finished,
    ready_bot,
    result_png,
    running_bot,
)
from tests.support import listening_sockets  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="module")


def running_ray_bot(data_dir: Path, head: LoopbackHead, **settings: object):
    """`tests.bot.harness.running_bot` with the engine nst-bot builds for NST_BACKEND=ray: a
    `RayBackend` on ``head``."""
    return running_bot(
        data_dir,
        nst_backend="ray",
        nst_ray_address=head.client_address if head.client else head.address,
        nst_ray_cpus_per_worker=1,
        **settings,
    )


@pytest.fixture(scope="module", params=["driver", "client"])
def head(request):
    with LoopbackHead(cpus=2, client=request.param == "client") as head:
        yield head
    assert head.pids() == []


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(head, tmp_path_factory) -> AsyncIterator[World]:
    async with running_ray_bot(
        tmp_path_factory.mktemp("nst-data"),
        head,
        nst_user_limit=2,
        nst_queue_limit=6,
        nst_member_rate=0,
    ) as world:
        assert isinstance(world.bot.pool, RayBackend)
        assert ray.util.client.ray.is_connected() == head.client  # Ray Client, or a driver
        yield world


async def healthz(world: World) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(f"{world.http}/healthz") as answer:
        return answer.status, await answer.text()


async def test_stylize_on_ray_shows_progress_and_posts_the_picture(world: World) -> None:
    assert await healthz(world) == (200, "gateway up, engine warm\n")
    inter = await world.stylize(quality="fast")
    result = await finished(inter, timeout=120)
    assert result_png(result).size == (64, 48)
    assert f"<@{inter.user.id}>" in result.content
    texts = [v.content for v in inter.original.history]
    assert any("painting" in t for t in texts), texts
    assert [m for m in inter.followups if m.files] == [result]


async def test_cancel_on_ray_stops_the_running_job_and_says_so(world: World) -> None:
    inter = await world.stylize(quality="best")
    status = await inter.wait_for_original(lambda m: "painting" in m.content, timeout=60)
    cancel = next(b for b in status.buttons() if b["label"] == "Cancel")
    press = await world.emu.press_button(status, cancel["custom_id"], user=inter.user)
    await press.wait_for_callback()
    await inter.wait_for_original(lambda m: "Cancelled after" in m.content, timeout=30)
    assert not any(m.files for m in inter.followups if m is not inter.original)


async def test_a_sigkilled_actor_mid_job_still_delivers_exactly_one_picture(world: World) -> None:
    backend = world.bot.pool
    inter = await world.stylize(quality="best")
    await inter.wait_for(
        lambda rec: (
            rec.original is not None
            and any("painting… 0%" in v.content for v in rec.original.history)
        ),
        timeout=60,
    )
    while not (backend.running and backend.worker_pids()):
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    os.kill(backend.worker_pids()[0], signal.SIGKILL)

    statuses = []
    while (status := (await healthz(world))[0]) == 200 and len(statuses) < 100:
        statuses.append(status)
        await asyncio.sleep(0.1)
    assert status == 503  # no actor alive while Ray restarts it
    result = await finished(inter, timeout=180)  # the retry on the restarted actor
    assert result_png(result).size == (64, 48)
    await asyncio.sleep(2)
    assert len([m for m in inter.followups if m.files]) == 1
    assert any("retrying once" in line for line in world.logs.lines)
    assert (await healthz(world))[0] == 200


@pytest.mark.parametrize("scheme", ["", "ray://"])
async def test_an_unreachable_cluster_stops_nst_bot_with_one_line(tmp_path, scheme) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"{scheme}127.0.0.1:{s.getsockname()[1]}"  # nothing listens there
    async with (
        DiscordEmulator(token=TOKEN) as emu,
        bot_process(
            emu, tmp_path / "data", "bot.log", NST_BACKEND="ray", NST_RAY_ADDRESS=address
        ) as process,
    ):
        assert await asyncio.wait_for(process.wait(), 120) == 2
    lines = (tmp_path / "bot.log").read_text().splitlines()
    assert lines[-1] == (
        f"error: the Ray cluster at {address} cannot be reached (Connection refused); "
        f"check NST_RAY_ADDRESS={address}"
    )


async def test_a_bot_that_starts_its_own_ray_uses_loopback_and_leaves_nothing_when_killed(
    tmp_path,
) -> None:
    """NST_RAY_ADDRESS unset: nst-bot starts a one-host Ray itself. It paints on loopback
    only, and once the bot is killed with SIGKILL (alone, as the out-of-memory killer does)
    nothing of that Ray is left: Ray ends most of it, the guard the rest."""
    async with (
        DiscordEmulator(token=TOKEN) as emu,
        ready_bot(
            emu, tmp_path / "data", "bot.log", NST_BACKEND="ray", NST_RAY_CPUS_PER_WORKER="1"
        ) as bot,
    ):
        params = {"content": add_photo(emu), "style": add_painting(emu), "quality": "fast"}
        result = await finished(await emu.invoke_slash("stylize", params), timeout=180)
        assert result_png(result).size == (64, 48)
        tree = [pid for pid in descendants([bot.pid]) if pid != bot.pid]
        assert any("nst_engine.ray.guard" in command_line(pid) for pid in tree)
        sockets = listening_sockets([bot.pid, *tree])
        assert sockets and {address for _, address in sockets} <= {"127.0.0.1", "::1"}, sockets

        started = {pid: (start_time(pid), command_line(pid)) for pid in tree}
        bot.kill()
        await bot.wait()
        deadline = asyncio.get_running_loop().time() + 30
        while left := [
            command for pid, (at, command) in started.items() if at and start_time(pid) == at
        ]:
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
        assert left == [], "still running 30 s after the bot died"


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]
