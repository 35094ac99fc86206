"""Stronger and Weaker go on from the last result (`bot.cogs.stylize.continuing`), through the
emulator: fewer steps, and parameters that name the parent; Variation is a fresh run."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

import pytest

from bot.store import JobStore
from nst_engine.continuation import STRENGTH_STEP, STRONGER, WEAKER, parameters_hash
from nst_engine.images import read_parameters
from nst_engine.options import QUALITY_PRESETS
from tests.bot.emulator import DiscordEmulator
from tests.bot.harness import (
    TOKEN,
    World,
    add_painting,
    add_photo,
    bot_process,
    button,
    finished,
    ready_bot,
)
from tests.bot.test_animation_bot import panning_clip

pytestmark = pytest.mark.asyncio(loop_scope="module")


def made(message) -> dict:
    """The parameters a result message's PNG carries."""
    parameters = read_parameters(message.file("stylized.png").data)
    assert parameters is not None
    return parameters


def job_of(message) -> str:
    """The job id a result's buttons carry (``nst:ACTION:JOB``)."""
    return button(message, "Stronger")["custom_id"].rsplit(":", 1)[-1]


async def test_stronger_and_weaker_go_on_from_the_picture_and_variation_starts_again(
    world: World,
) -> None:
    emu, cap = world.emu, world.settings.nst_max_steps
    first = await finished(await world.stylize(strength=6))
    parent = made(first)
    # The preset's steps under the operator's cap (NST_MAX_STEPS is 30 here, balanced has 45).
    fresh = min(QUALITY_PRESETS["balanced"].steps, cap)
    assert parent["steps"] == fresh and "parent" not in parent
    link = {"job": job_of(first), "parameters": parameters_hash(parent)}
    for label, strength, schedule in (
        ("Stronger", 6.0 + STRENGTH_STEP, STRONGER["balanced"]),
        ("Weaker", 6.0 - STRENGTH_STEP, WEAKER["balanced"]),
    ):
        press = await emu.press_button(first, button(first, label)["custom_id"], user=emu.member)
        again = made(await finished(press))
        steps = schedule.steps
        assert again["strength"] == strength, label
        assert again["steps"] == min(steps, cap) < parent["steps"], label
        assert again["parent"] == link, label
    press = await emu.press_button(first, button(first, "Variation")["custom_id"], user=emu.member)
    varied = made(await finished(press))
    assert varied["steps"] == fresh and "parent" not in varied
    assert varied["seed"] != parent["seed"]


async def test_a_restart_goes_on_from_the_journaled_parent_or_afresh_once_it_is_pruned(
    tmp_path,
) -> None:
    """Two Stronger presses queued behind an animation when the bot is killed; one parent is
    pruned before the restart. Each press still gets one picture: the first going on from its
    parent, the second a fresh run."""
    data = tmp_path / "data"
    cap = 30
    env = {"NST_WORKERS": "1", "NST_MAX_STEPS": str(cap)}
    async with DiscordEmulator(token=TOKEN) as emu:
        kept, pruned, busy = (emu.make_member(name) for name in ("kept", "pruned", "busy"))
        async with ready_bot(emu, data, "first.log", **env) as first:
            firsts = [await finished(await stylize(emu, member), 120) for member in (kept, pruned)]
            clip = emu.add_attachment("clip.gif", panning_clip(12), "image/gif")
            hold = await stylize(emu, busy, content=clip, quality="best")
            await hold.wait_for_original(lambda m: "painting" in m.content, timeout=60)
            presses = [
                await emu.press_button(m, button(m, "Stronger")["custom_id"], user=member)
                for m, member in zip(firsts, (kept, pruned))
            ]
            for press in presses:
                await press.wait_for_original(lambda m: "queue" in m.content, timeout=30)
            os.killpg(first.pid, signal.SIGKILL)
            await first.wait()
        assert not any(m.files for press in presses for m in press.followups)
        await prune(data, job_of(firsts[1]))

        async with bot_process(emu, data, "second.log", **env):
            again = [made(await finished(press, 240)) for press in presses]
        schedule = STRONGER["balanced"]
        assert again[0]["steps"] == min(schedule.steps, cap)
        assert again[0]["parent"] == {
            "job": job_of(firsts[0]),
            "parameters": parameters_hash(made(firsts[0])),
        }
        assert again[1]["steps"] == min(QUALITY_PRESETS["balanced"].steps, cap)
        assert "parent" not in again[1]
        assert [p["strength"] for p in again] == [5.0 + STRENGTH_STEP] * 2
        assert all(len([m for m in press.followups if m.files]) == 1 for press in presses)
        log = (tmp_path / "second.log").read_text()
        assert log.count(f"the picture of job {job_of(firsts[1])} is gone") == 1


async def stylize(emu: DiscordEmulator, member, **options: object):
    """``member``'s /stylize of the harness's photo and artwork, with ``options``."""
    return await emu.invoke_slash(
        "stylize", {"content": add_photo(emu), "style": add_painting(emu), **options}, user=member
    )


async def prune(data: Path, job_id: str) -> None:
    """The journal's own prune of one finished job, as if it were older than NST_KEEP_HOURS."""
    with sqlite3.connect(data / "jobs.sqlite3") as db:
        db.execute("UPDATE jobs SET updated=0 WHERE id=?", (job_id,))
    store = JobStore(data)
    try:
        assert await store.prune(3600) == 1
    finally:
        store.close()
