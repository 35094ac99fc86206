"""What a hostile tester broke (issue 14) and the two visible bugs of issue 9, each through the
real client and the emulator: the member's answer, the picture, the journal row."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import time

import pytest
from PIL import Image

from tests.bot.harness import World, button, finished, png_bytes, result_png, running_bot
from tests.support import gradient_image

pytestmark = pytest.mark.asyncio(loop_scope="module")


def journal_state(world: World, job_id: str) -> str:
    with sqlite3.connect(world.settings.nst_data_dir / "jobs.sqlite3") as db:
        return db.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()[0]


def job_id_of(result) -> str:
    return result.embeds[0]["footer"]["text"].split()[1]


def ephemeral_lines(inter) -> list[str]:
    return [m.content for m in inter.messages if m.ephemeral]


async def test_a_journal_locked_by_another_program_delays_the_picture_but_never_loses_it(
    world: World,
) -> None:
    inter = await world.stylize(quality="best")
    await inter.wait_for_original(lambda m: "painting…" in m.content, timeout=60)

    def hold_the_lock(seconds: float) -> None:  # an operator's sqlite3 session, a backup tool
        db = sqlite3.connect(world.settings.nst_data_dir / "jobs.sqlite3", timeout=5)
        db.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        db.rollback()
        db.close()

    # Well past SQLite's default 5 s busy timeout (the job ends meanwhile), within the
    # journal's bounded wait.
    await asyncio.to_thread(hold_the_lock, 12.0)
    result = await finished(inter, timeout=60)
    assert result_png(result).size == (64, 48)
    await world.emu.wait_until(
        lambda: journal_state(world, job_id_of(result)) == "delivered", timeout=10, what="journal"
    )


@pytest.mark.parametrize(
    "option,value",
    [("strength", 11.0), ("size", 1), ("quality", "ultra"), ("seed", -1), ("strength", "lots")],
)
async def test_a_forged_option_is_refused_in_one_line_and_the_worker_stays_free(
    world: World, option, value
) -> None:
    emu = world.emu

    def forge(payload: dict) -> None:  # what a forged interaction carries, unchecked
        data = payload["data"]
        for sent in data["options"]:
            if sent["name"] == option:
                sent["value"] = value
        kind = next(o["type"] for o in emu.command("stylize")["options"] if o["name"] == option)
        data["options"].append({"name": option, "type": kind, "value": value})
        data["options"] = list({o["name"]: o for o in data["options"]}.values())

    forged = await emu.invoke_slash(
        "stylize", {"content": world.photo(), "style": world.painting()}, craft=forge
    )
    await forged.wait_for(lambda rec: ephemeral_lines(rec), timeout=15)
    line = ephemeral_lines(forged)[0]
    assert f"The {option} option can't be {value!r}; it must be" in line
    assert "\n" not in line and "Traceback" not in line
    good = await world.stylize(quality="fast")
    assert result_png(await finished(good)).size == (64, 48)


async def test_post_to_gallery_when_the_channel_is_gone_says_so(world: World) -> None:
    emu = world.emu
    doomed = next(c for c in emu.guild.text_channels if c.name == "style-lab")
    admin = emu.make_member(
        "admin2", permissions=__import__("discord").Permissions(manage_guild=True)
    )
    setting = await emu.invoke_slash("gallery set", {"channel": doomed}, user=admin)
    await setting.wait_for(lambda rec: rec.responded)
    result = await finished(await world.stylize(quality="fast"))
    emu.guild.channels.remove(doomed)  # deleted while the bot wasn't looking
    try:
        press = await emu.press_button(
            result, button(result, "Post to gallery")["custom_id"], user=emu.member
        )
        await press.wait_for(lambda rec: any("gallery" in m.content for m in rec.messages))
        answer = next(m for m in press.messages if "gallery" in m.content)
        assert answer.ephemeral and "gallery channel is gone" in answer.content
    finally:
        emu.guild.channels.append(doomed)
        clear = await emu.invoke_slash("gallery clear", {}, user=admin)
        await clear.wait_for(lambda rec: rec.responded)


async def test_a_token_that_expires_while_waiting_leaves_no_stale_status(world: World) -> None:
    emu = world.emu
    busy = await world.stylize(quality="best")  # keeps the only worker busy
    waiting = await world.stylize(quality="fast")
    await waiting.wait_for_original(lambda m: "queued" in m.content or "next" in m.content)
    waiting.expire()  # fifteen minutes on
    picture = await emu.wait_for_message(
        lambda m: m.files and f"<@{waiting.user.id}>" in m.content and m.via == "channel",
        timeout=90,
    )
    assert result_png(picture).size == (64, 48)
    await waiting.wait_for_original(lambda m: "Finished" in m.content, timeout=15)
    status = waiting.original
    assert "painting" not in status.content and "queued" not in status.content
    assert status.buttons() == []
    await finished(busy)


async def test_share_pressed_three_times_posts_once_and_links_to_it(world: World) -> None:
    emu = world.emu
    inter = await world.stylize(private=True, quality="fast")
    result = await finished(inter)
    share = button(result, "Share")["custom_id"]
    # Three quick presses: one public post, two short answers.
    presses = [await emu.press_button(result, share, user=inter.user) for _ in range(3)]
    await emu.wait_until(
        lambda: (
            sum(bool(ephemeral_lines(p)) for p in presses) == 2
            and any(m.files for p in presses for m in p.followups)
        ),
        timeout=30,
        what="one post and two answers",
    )
    posts = [m for p in presses for m in p.followups if m.files and not m.ephemeral]
    assert len(posts) == 1 and "Shared by" in posts[0].content
    # A later press links to the post.
    again = await emu.press_button(result, share, user=inter.user)
    await again.wait_for(lambda rec: ephemeral_lines(rec), timeout=15)
    assert ephemeral_lines(again)[0].startswith("You shared this picture already: https://")
    assert str(posts[0].id) in ephemeral_lines(again)[0]
    assert not any(m.files for m in again.followups)


async def test_cancel_pressed_while_the_picture_is_sent_says_it_is_too_late(world: World) -> None:
    emu = world.emu
    from bot.cogs.stylize.lifecycle import RequestState

    scheduler = world.bot.get_cog("Stylize").scheduler
    inter = await world.stylize(quality="fast")
    await inter.wait_for_original(lambda m: m.buttons())
    status = inter.original
    job_id = status.buttons()[0]["custom_id"].split(":")[2]
    emu.delay_next("POST /webhooks/*", 4.0)  # the picture's upload is slow
    await emu.wait_until(
        lambda: getattr(scheduler.jobs.get(job_id), "state", None) is RequestState.DONE,
        timeout=60,
        what="the picture painted",
    )
    press = await emu.press_button(status, f"nst:cancel:{job_id}", user=inter.user)
    await press.wait_for(lambda rec: ephemeral_lines(rec), timeout=15)
    assert ephemeral_lines(press) == ["Too late to cancel: the picture is finished and on its way."]
    assert result_png(await finished(inter)).size == (64, 48)


async def test_progress_keeps_its_preview_and_the_preview_is_never_larger_than_the_picture(
    tmp_path,
) -> None:
    # Previews every 6 s and status edits every 3 s: every other edit has no new preview. A
    # 160 px picture, so that the job outlasts several edits on a quick machine (at the
    # harness's 80 px it took 3.4 s on a quiet one: a single edit).
    async with running_bot(
        tmp_path,
        pool_options={"preview_interval": 6.0},
        nst_max_steps=150,
        nst_member_rate=0,
        nst_max_size=160,
    ) as world:
        photo = world.emu.add_attachment(
            "photo.png",
            png_bytes(gradient_image(160, 120, seed=2)),
            "image/png",
            width=160,
            height=120,
        )
        inter = await world.stylize(content=photo, quality="best", size=160)
        result = await finished(inter, timeout=120)
    picture = result_png(result)
    painting = [
        v for v in inter.original.history if "painting…" in v.content and "step" in v.content
    ]
    assert len(painting) >= 2, [v.content for v in inter.original.history]
    first_preview = next(i for i, v in enumerate(painting) if v.files)
    kept = [[f.filename for f in v.files] for v in painting[first_preview:]]
    assert kept == [["preview.png"]] * len(kept), [v.content for v in painting]
    for version in painting[first_preview:]:
        preview = Image.open(io.BytesIO(version.files[0].data))
        assert max(preview.size) <= max(picture.size), (preview.size, picture.size)


async def test_refused_requests_do_not_use_up_the_members_rate(tmp_path) -> None:
    async with running_bot(tmp_path, nst_member_rate=2) as world:
        emu = world.emu
        for _ in range(3):
            bad = emu.add_attachment("notes.txt", b"words", "text/plain")
            refused = await emu.invoke_slash("stylize", {"content": bad, "style": world.painting()})
            await refused.wait_for(lambda rec: ephemeral_lines(rec), timeout=15)
            assert "not an image" in ephemeral_lines(refused)[0]
        first, second = await world.stylize(quality="fast"), await world.stylize(quality="fast")
        for inter in (first, second):
            assert result_png(await finished(inter)).size == (64, 48)
        third = await world.stylize(quality="fast")
        await third.wait_for(lambda rec: ephemeral_lines(rec), timeout=15)
        assert ephemeral_lines(third)[0].startswith(
            "Slow down: you may start 2 pictures per minute"
        )
