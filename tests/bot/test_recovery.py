"""``python -m bot`` as operators run it: killed, stopped, restarted, and watched by /healthz."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3

import aiohttp
import pytest

from bot.cogs.stylize.delivery import PROGRESS_EDIT_SECONDS
from nst_engine.continuation import STRENGTH_STEP
from tests.bot.emulator import DiscordEmulator
from tests.bot.harness import (
    TOKEN,
    add_painting,
    add_photo,
    bot_process,
    button,
    finished,
    free_port,
    ready_bot,
)
from tests.bot.test_animation_bot import panning_clip

pytestmark = pytest.mark.asyncio


def journal_states(data_dir) -> list[str]:
    with sqlite3.connect(data_dir / "jobs.sqlite3") as db:
        return [row[0] for row in db.execute("SELECT state FROM jobs")]


def pictures(emu: DiscordEmulator) -> tuple[dict, dict]:
    return add_photo(emu), add_painting(emu)


async def test_a_job_survives_sigkill_and_is_delivered_once(tmp_path) -> None:
    async with DiscordEmulator(token=TOKEN) as emu:
        photo, art = pictures(emu)
        async with ready_bot(emu, tmp_path / "data", "first.log") as first:
            inter = await emu.invoke_slash(
                "stylize", {"content": photo, "style": art, "quality": "best"}
            )
            await inter.wait_for_original(lambda m: "painting" in m.content, timeout=60)
            os.killpg(first.pid, signal.SIGKILL)  # the whole host dies, workers included
            await first.wait()
        assert journal_states(tmp_path / "data") == ["running"]

        async with bot_process(emu, tmp_path / "data", "second.log"):
            await inter.wait_for(lambda rec: any(m.files for m in rec.followups), timeout=40)
            await asyncio.sleep(2)
            delivered = [m for m in inter.followups if m.files]
            assert len(delivered) == 1
            assert f"<@{inter.user.id}>" in delivered[0].content
            assert journal_states(tmp_path / "data") == ["delivered"]


async def killed_while_painting(emu: DiscordEmulator, data, log_name: str):
    """A member's public /stylize, the bot SIGKILLed once its status shows a percentage;
    the interaction, and how many versions its status message had by then."""
    photo, art = pictures(emu)
    async with ready_bot(emu, data, log_name) as bot:
        inter = await emu.invoke_slash(
            "stylize", {"content": photo, "style": art, "quality": "best"}
        )
        status = await inter.wait_for_original(
            lambda m: re.search(r"painting… [1-9]\d*% \(step", m.content), timeout=60
        )
        os.killpg(bot.pid, signal.SIGKILL)
        await bot.wait()
    assert [b["label"] for b in status.buttons()] == ["Cancel"]
    return inter, len(status.history)


def pictures_posted(emu: DiscordEmulator) -> list:
    return [
        m
        for m in emu.messages.values()
        if not m.deleted and any(f.filename.startswith("stylized.") for f in m.files)
    ]


async def test_a_recovered_jobs_status_says_it_is_painted_again_then_finished(tmp_path) -> None:
    async with DiscordEmulator(token=TOKEN) as emu:
        data = tmp_path / "data"
        inter, seen = await killed_while_painting(emu, data, "first.log")
        status = inter.original

        async with bot_process(emu, data, "second.log"):
            await inter.wait_for_original(lambda m: "Finished" in m.content, timeout=60)
            await asyncio.sleep(2)  # anything late would land now

        assert status.content == "✅ Finished: the picture is below."
        assert status.buttons() == [] and status.files == ()
        assert len(pictures_posted(emu)) == 1
        assert f"<@{inter.user.id}>" in pictures_posted(emu)[0].content
        # Between the restart and the end, the status never showed the old "painting… N%".
        after = status.history[seen:-1]
        texts = [v.content for v in after]
        assert texts and all("again" in t for t in texts), texts
        assert all(v.components for v in after), "a recovered job can still be cancelled"
        # Progress edits go through the channel's rate limit: the throttle still applies.
        progress = [v.at for v in after if "% (step" in v.content]
        gaps = [b - a for a, b in zip(progress, progress[1:])]
        assert all(gap > PROGRESS_EDIT_SECONDS - 0.5 for gap in gaps), gaps


async def test_cancel_on_a_recovered_jobs_status_cancels_it(tmp_path) -> None:
    async with DiscordEmulator(token=TOKEN) as emu:
        data = tmp_path / "data"
        inter, _seen = await killed_while_painting(emu, data, "first.log")
        status = inter.original

        async with ready_bot(emu, data, "second.log"):
            await inter.wait_for_original(lambda m: "again" in m.content, timeout=60)
            press = await emu.press_button(
                status, button(status, "Cancel")["custom_id"], user=inter.user
            )
            await press.wait_for_callback(timeout=10)
            await inter.wait_for_original(lambda m: "Cancelled" in m.content, timeout=60)
            await emu.wait_until(lambda: journal_states(data) == ["cancelled"], timeout=10)
            await asyncio.sleep(2)

        assert status.content.startswith("✖️ Cancelled"), status.content
        assert status.buttons() == []
        assert pictures_posted(emu) == []


async def test_sigterm_refuses_new_jobs_journals_the_running_one_and_exits_cleanly(
    tmp_path,
) -> None:
    async with DiscordEmulator(token=TOKEN) as emu:
        photo, art = pictures(emu)
        data = tmp_path / "data"
        async with ready_bot(emu, data, "first.log", NST_SHUTDOWN_GRACE="3") as first:
            inter = await emu.invoke_slash(
                "stylize", {"content": photo, "style": art, "quality": "best"}
            )
            await inter.wait_for_original(lambda m: "painting" in m.content, timeout=60)
            first.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)  # signals arrive asynchronously
            late = await emu.invoke_slash("stylize", {"content": photo, "style": art})
            await late.wait_for(lambda rec: rec.responded, timeout=10)
            assert late.ephemeral and "restarting" in late.original.content
            assert await asyncio.wait_for(first.wait(), 60) == 0
        # Cut off by the 3 s grace, the job is back in the queue, not counted as a crash.
        assert journal_states(data) == ["queued"]
        assert not any(m.files for m in inter.followups)

        async with bot_process(emu, data, "second.log"):
            await inter.wait_for(lambda rec: any(m.files for m in rec.followups), timeout=120)
            await emu.wait_until(lambda: journal_states(data) == ["delivered"], timeout=10)


async def test_buttons_on_a_result_keep_working_after_a_restart(tmp_path) -> None:
    async with DiscordEmulator(token=TOKEN) as emu:
        photo, art = pictures(emu)
        data = tmp_path / "data"
        async with ready_bot(emu, data, "first.log", NST_MAX_STEPS="20") as first:
            inter = await emu.invoke_slash("stylize", {"content": photo, "style": art})
            await inter.wait_for(lambda rec: any(m.files for m in rec.followups), timeout=120)
            result = next(m for m in inter.followups if m.files)
            first.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(first.wait(), 60) == 0

        async with ready_bot(emu, data, "second.log", NST_MAX_STEPS="20"):
            weaker = next(b for b in result.buttons() if b["label"] == "Weaker")
            press = await emu.press_button(result, weaker["custom_id"], user=inter.user)
            await press.wait_for(lambda rec: any(m.files for m in rec.followups), timeout=120)
            again = next(m for m in press.followups if m.files)
            fields = {f["name"]: f["value"] for f in again.embeds[0]["fields"]}
            assert fields["Strength"] == f"{5.0 - STRENGTH_STEP:g}"


async def test_a_result_whose_upload_hangs_after_a_restart_does_not_hold_up_the_bot(
    tmp_path,
) -> None:
    """A picture painted before a SIGKILL but not posted is delivered after the restart; while
    Discord holds that upload, the bot still comes online and paints a new member's picture."""
    async with DiscordEmulator(token=TOKEN) as emu:
        photo, art = pictures(emu)
        data = tmp_path / "data"
        async with ready_bot(emu, data, "first.log", NST_MAX_STEPS="20") as first:
            held = emu.hang_next("POST /webhooks/*")
            old = await emu.invoke_slash("stylize", {"content": photo, "style": art})
            await emu.wait_until(lambda: held.hits == 1, timeout=120, what="the held upload")
            os.killpg(first.pid, signal.SIGKILL)
            await first.wait()
        assert journal_states(data) == ["done"]

        held_again = emu.hang_next("POST /webhooks/*")
        async with ready_bot(emu, data, "second.log", NST_MAX_STEPS="20"):
            await emu.wait_until(lambda: held_again.hits == 1, timeout=60, what="the re-upload")
            new = await emu.invoke_slash("stylize", {"content": photo, "style": art})
            assert (await finished(new, 120)).files
            assert not any(m.files for m in old.followups)

            held_again.release()
            delivered = await finished(old, 60)
            assert f"<@{old.user.id}>" in delivered.content
            await emu.wait_until(
                lambda: sorted(journal_states(data)) == ["delivered", "delivered"],
                timeout=30,
                what="both journaled as delivered",
            )


async def test_a_second_press_after_a_restart_is_refused_while_the_first_is_on_its_way(
    tmp_path,
) -> None:
    """Stronger pressed, the bot killed while that job waits behind an animation; after the
    restart a second Stronger on the same result is told it is on its way, and one picture
    comes."""
    data = tmp_path / "data"
    env = {"NST_WORKERS": "1", "NST_MAX_STEPS": "30"}
    async with DiscordEmulator(token=TOKEN) as emu:
        member, busy = emu.make_member("presser"), emu.make_member("busy")
        photo, art = pictures(emu)
        async with ready_bot(emu, data, "first.log", **env) as first:
            inter = await emu.invoke_slash("stylize", {"content": photo, "style": art}, user=member)
            result = await finished(inter, 120)
            clip = emu.add_attachment("clip.gif", panning_clip(12), "image/gif")
            hold = await emu.invoke_slash(
                "stylize",
                {"content": clip, "style": add_painting(emu), "quality": "best"},
                user=busy,
            )
            await hold.wait_for_original(lambda m: "painting" in m.content, timeout=60)
            stronger = button(result, "Stronger")["custom_id"]
            press = await emu.press_button(result, stronger, user=member)
            await press.wait_for_original(lambda m: "queue" in m.content, timeout=30)
            os.killpg(first.pid, signal.SIGKILL)
            await first.wait()

        async with ready_bot(emu, data, "second.log", **env):
            again = await emu.press_button(result, stronger, user=member)
            await again.wait_for(lambda rec: rec.responded, timeout=30)
            assert again.ephemeral
            assert [m.content for m in again.messages] == [
                "This picture's Stronger is already queued or painting; it will be posted here."
            ]
            await finished(press, 240)
            await asyncio.sleep(2)  # a second picture would land now
        assert not any(m.files for m in again.followups)
        mine = [m for m in pictures_posted(emu) if f"<@{member.id}>" in m.content]
        assert len(mine) == 2  # the result and one Stronger
        assert len(journal_states(data)) == 3  # with the animation: no second Stronger job


async def test_healthz_says_503_until_the_gateway_is_up_and_the_engine_warm(tmp_path) -> None:
    port = free_port()
    seen: list[tuple[int, str]] = []
    async with (
        DiscordEmulator(token=TOKEN) as emu,
        bot_process(emu, tmp_path / "data", "bot.log", NST_HTTP_PORT=str(port)),
        aiohttp.ClientSession() as session,
    ):
        deadline = asyncio.get_running_loop().time() + 120
        while not seen or seen[-1][0] != 200:
            assert asyncio.get_running_loop().time() < deadline, seen[-3:]
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    seen.append((response.status, await response.text()))
            except aiohttp.ClientConnectionError:
                pass  # not listening yet
            await asyncio.sleep(0.1)
    statuses = [status for status, _ in seen]
    # Answering from the start, 503 while starting, then 200 for good once ready.
    assert statuses[0] == 503 and set(statuses) == {503, 200}, statuses
    assert "engine cold" in seen[0][1] or "gateway down" in seen[0][1]
    assert seen[-1][1].strip() == "gateway up, engine warm"


async def test_a_video_job_survives_sigkill_and_comes_back_as_mp4_with_sound(tmp_path) -> None:
    from nst_engine.clips.sandbox import probe_video
    from tests.nst_engine.video_corpus import good_video

    async with DiscordEmulator(token=TOKEN) as emu:
        video = good_video(frames=6, rate=3)
        clip = emu.add_attachment("clip.mp4", video, "video/mp4", width=32, height=32)
        async with ready_bot(emu, tmp_path / "data", "first.log") as first:
            inter = await emu.invoke_slash(
                "stylize", {"content": clip, "style": add_painting(emu), "quality": "best"}
            )
            await inter.wait_for_original(lambda m: "painting frame" in m.content, timeout=60)
            os.killpg(first.pid, signal.SIGKILL)
            await first.wait()
        assert journal_states(tmp_path / "data") == ["running"]

        async with bot_process(emu, tmp_path / "data", "second.log"):
            await inter.wait_for(lambda rec: any(m.files for m in rec.followups), timeout=240)
            (delivered,) = [m for m in inter.followups if m.files]
            sent = next(f for f in delivered.files if f.filename == "stylized.mp4")
            made = probe_video(sent.data, "mp4")
            assert (made.frames, made.rate, made.audio) == (6, 3, "aac")
