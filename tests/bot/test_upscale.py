"""The Upscale button (`bot.cogs.stylize.buttons`), through the emulator: the picture at twice
its size as a continuation of it, under NST_MAX_UPSCALE_SIZE and the server's max_size as they
stand when it is pressed, and fitted to the upload limit like any result."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import pytest_asyncio

from bot.cogs.stylize.continuing import journaled_parent
from bot.settings import Settings, SettingsError
from nst_engine.continuation import UPSCALE, parameters_hash
from tests.bot.harness import World, button, finished, running_bot
from tests.bot.test_continuing import job_of, made
from tests.bot.test_hostile_admin import failures, journaled, one_line
from tests.bot.test_hostile_stylize import size_of

pytestmark = pytest.mark.asyncio(loop_scope="module")

# The harness's 80×60 photo is painted at 64×48, upscaled to 128×96 (the cap). (64: a
# NST_MAX_SIZE under the command's smallest size refuses every /stylize.)
SIZE, CAP = 64, 128


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory) -> AsyncIterator[World]:
    async with running_bot(
        tmp_path_factory.mktemp("nst-data"),
        nst_max_size=SIZE,
        nst_max_upscale_size=CAP,
        nst_user_limit=2,
        nst_member_rate=0,
    ) as world:
        yield world


def labels(message) -> list[str]:
    return [b["label"] for b in message.buttons()]


async def test_nst_max_upscale_size_defaults_to_1024_and_a_bad_value_is_one_line() -> None:
    assert Settings.from_env({"DISCORD_TOKEN": "t"}).nst_max_upscale_size == 1024
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"DISCORD_TOKEN": "t", "NST_MAX_UPSCALE_SIZE": "huge"})
    assert str(info.value) == (
        "NST_MAX_UPSCALE_SIZE must be a whole number from 64 to 4096, not 'huge'"
    )


async def test_upscale_doubles_the_picture_as_its_continuation_and_at_the_cap_is_not_offered(
    world: World,
) -> None:
    emu, logged = world.emu, len(failures(world))
    first = await finished(await world.stylize(strength=6))
    assert size_of(first) == (64, 48) and "Upscale" in labels(first)
    jobs = journaled(world)
    custom_id = button(first, "Upscale")["custom_id"]
    # Pressed twice quickly, and the first press delivered again by the gateway: one job; the
    # second press is told the picture is on its way (tests/bot/test_buttons.py, every button).
    presses = [await emu.press_button(first, custom_id) for _ in range(2)]
    await emu.replay(presses[0])
    await emu.wait_until(lambda: any(p.ephemeral for p in presses), timeout=30, what="a refusal")
    (taken,) = [press for press in presses if not press.ephemeral]
    bigger = await finished(taken)
    assert journaled(world) - jobs == 1
    assert len([m for m in taken.followups if m.files]) == 1

    parent, upscaled = made(first), made(bigger)
    assert size_of(bigger) == (128, 96)
    assert upscaled["size"] == CAP and upscaled["strength"] == 6.0
    schedule = UPSCALE["balanced"]
    assert upscaled["steps"] == min(schedule.steps, world.settings.nst_max_steps)
    assert upscaled["parent"] == {"job": job_of(first), "parameters": parameters_hash(parent)}
    # At the cap: nothing more to offer.
    assert "Upscale" not in labels(bigger) and "Stronger" in labels(bigger)
    assert failures(world)[logged:] == []
    # The journal keeps it as an upscale: a restart before it was painted would plan one.
    stored = await world.bot.store.load(job_of(bigger))
    assert stored.record.params["parent"] == job_of(first)
    again = await journaled_parent(world.bot.store, replace(stored.record, state="queued"))
    assert again is not None and again.upscale and again.was() == (6.0, SIZE)


async def test_a_server_cap_lowered_since_is_answered_in_one_line_and_makes_no_job(
    world: World, rules
) -> None:
    first = await finished(await world.stylize(quality="fast"))
    jobs = journaled(world)
    await rules(max_size=SIZE)
    press = await world.emu.press_button(first, button(first, "Upscale")["custom_id"])
    line = await one_line(press)
    assert line == "This picture is at the largest size an upscale may have here (64 px) already."
    assert press.original.ephemeral
    assert journaled(world) == jobs


async def test_an_upscale_over_the_upload_limit_is_fitted(world: World) -> None:
    emu = world.emu
    first = await finished(await world.stylize(quality="fast", seed=3))
    upscale = button(first, "Upscale")["custom_id"]
    png = (await finished(await emu.press_button(first, upscale))).file("stylized.png")
    before = emu.upload_limit
    try:
        emu.upload_limit = png.size * 2 // 3
        sent = await finished(await emu.press_button(first, upscale))
    finally:
        emu.upload_limit = before
    assert sent.files[0].filename in ("stylized.webp", "stylized.jpeg")
    assert sent.files[0].size <= png.size * 2 // 3
    assert size_of(sent) == (128, 96)
    assert re.search(r"\(sent as (WebP|JPEG) to fit Discord's upload limit here", sent.content)
