"""/stylize end to end: the real discord.py client, our bot and engine pool, the emulator."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from bot.store import JournalUnavailable
from nst_engine.continuation import STRENGTH_STEP
from tests.bot.harness import RESULT_BUTTONS, World, finished, result_png

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_stylize_defers_shows_progress_and_posts_the_picture(world: World) -> None:
    inter = await world.stylize(quality="fast")
    callback = await inter.wait_for_callback(timeout=3)
    assert callback.type == 5 and callback.after < 3  # deferred within Discord's 3 seconds
    result = await finished(inter)
    image = result_png(result)
    assert image.format == "PNG" and image.size == (64, 48)  # 80×60 capped at NST_MAX_SIZE 64
    assert f"<@{inter.user.id}>" in result.content
    embed = result.embeds[0]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Strength"] == "5" and fields["Quality"] == "fast" and fields["Size"] == "64×48"
    assert "NOT a real style transfer" in embed["footer"]["text"]
    labels = [b["label"] for b in result.buttons()]
    assert labels == ["Stronger", "Weaker", "Variation", "Upscale", "Edit", "Delete"]
    # The status message went through queued/painting states before it was cleared away.
    texts = [v.content for v in inter.original.history]
    assert any("painting" in t or "next" in t for t in texts), texts
    assert not result.ephemeral


async def test_stronger_makes_a_second_picture_without_uploading_again(world: World) -> None:
    emu = world.emu
    inter = await world.stylize(strength=6)
    first = await finished(inter)
    press = await emu.press_button(first, first.buttons()[0]["custom_id"], user=inter.user)
    second = await finished(press)
    fields = {f["name"]: f["value"] for f in second.embeds[0]["fields"]}
    assert fields["Strength"] == f"{6.0 + STRENGTH_STEP:g}"
    assert result_png(second).size == (64, 48)
    assert second.file("stylized.png").data != first.file("stylized.png").data


async def test_cancel_stops_a_running_job_and_says_so(world: World) -> None:
    emu = world.emu
    inter = await world.stylize(quality="best")
    status = await inter.wait_for_original(lambda m: "painting" in m.content, timeout=30)
    cancel = next(b for b in status.buttons() if b["label"] == "Cancel")
    stranger = emu.make_member("stranger")
    refused = await emu.press_button(status, cancel["custom_id"], user=stranger)
    await refused.wait_for(lambda rec: rec.responded)
    assert "Only the member who asked" in refused.original.content or any(
        "Only the member who asked" in m.content for m in refused.messages
    )
    press = await emu.press_button(status, cancel["custom_id"], user=inter.user)
    await press.wait_for_callback()
    await inter.wait_for_original(lambda m: "Cancelled after" in m.content, timeout=30)
    assert not any(m.files for m in inter.followups if m is not inter.original)


async def test_a_status_message_the_journal_cannot_keep_does_not_stop_the_job(
    world: World, monkeypatch
) -> None:
    async def locked(job_id: str, message_id: int) -> None:
        raise JournalUnavailable("the job journal stayed locked by another program for 30 s")

    monkeypatch.setattr(world.bot.store, "set_status_message", locked)
    inter = await world.stylize(quality="fast")
    result = await finished(inter)
    assert result_png(result).size == (64, 48)
    # No apology or error beside the picture; the status went on and was cleared as usual.
    await world.emu.wait_until(lambda: inter.original.deleted, timeout=10)
    assert [m.content for m in inter.messages if m is not result and not m.deleted] == []
    assert any("painting" in v.content for v in inter.original.history)
    lines = [line for line in world.logs.lines if "status message" in line]
    assert len(lines) == 1 and "could not journal the status message: " in lines[0], lines
    assert "stayed locked" in lines[0] and "Traceback" not in "\n".join(world.logs.lines)


@pytest.mark.parametrize(
    "filename, data, content_type, message",
    [
        ("notes.txt", b"just some words", "text/plain", "it is text/plain, not an image"),
        ("fake.png", b"just some words, not a png", "image/png", "its contents are not an image"),
        ("liar.png", b"\xff\xd8\xff\xe0" + b"\0" * 64, "image/png", "but its contents are jpeg"),
        ("empty.png", b"", "image/png", "its contents are not an image"),
    ],
)
async def test_a_bad_attachment_gets_an_ephemeral_error_and_nothing_is_queued(
    world: World, filename, data, content_type, message
) -> None:
    emu = world.emu
    before = await world.bot.store.pending()
    bad = emu.add_attachment(filename, data, content_type)
    inter = await emu.invoke_slash("stylize", {"content": bad, "style": world.painting()})
    await inter.wait_for(
        lambda rec: any(message in m.content and m.ephemeral for m in rec.messages), timeout=15
    )
    shown = next(m for m in inter.messages if message in m.content)
    assert shown.content.count("\n") == 0 and "Traceback" not in shown.content
    await asyncio.sleep(0.2)
    assert await world.bot.store.pending() == before


async def test_an_oversized_image_is_refused_with_the_limit(world: World) -> None:
    emu = world.emu
    huge = emu.add_attachment(
        "huge.png", b"\x89PNG\r\n\x1a\n", "image/png", width=30000, height=30000
    )
    inter = await emu.invoke_slash("stylize", {"content": huge, "style": world.painting()})
    await inter.wait_for(lambda rec: rec.responded)
    assert inter.ephemeral
    assert "30000×30000; the limit is 40 megapixels" in inter.original.content


async def test_a_member_over_their_cap_is_told_at_once(world: World) -> None:
    emu = world.emu
    member = emu.make_member("busy")
    inters = []
    for _ in range(3):
        inters.append(
            await emu.invoke_slash(
                "stylize",
                {"content": world.photo(), "style": world.painting(), "quality": "best"},
                user=member,
            )
        )
    third = inters[2]
    await third.wait_for(lambda rec: rec.responded, timeout=10)
    assert third.ephemeral and "the limit is 2" in third.original.content
    for inter in inters[:2]:
        await inter.wait_for_original(timeout=15)  # accepted: queued or painting
    queue = await emu.invoke_slash("queue", {}, user=member)
    await queue.wait_for(lambda rec: rec.responded)
    assert queue.ephemeral and queue.original.content.count("• ") == 2
    for inter in inters[:2]:
        await finished(inter, timeout=90)


async def test_of_a_burst_over_the_cap_the_latest_request_is_refused(
    world: World, monkeypatch
) -> None:
    """The checks before a job is queued wait on the journal, and those waits end in any
    order: the member's place is held as each request arrives, so the third is the one
    refused even when the first two's checks are the slowest."""
    emu, store = world.emu, world.bot.store
    member = emu.make_member("hasty")
    real, calls = store.guild_settings, []

    async def guild_settings(guild_id):
        calls.append(guild_id)
        if len(calls) <= 2:
            await asyncio.sleep(0.5)  # the first two requests' reads come back last
        return await real(guild_id)

    monkeypatch.setattr(store, "guild_settings", guild_settings)
    params = {"quality": "fast"}
    inters = [
        await emu.invoke_slash(
            "stylize",
            {"content": world.photo(), "style": world.painting(), **params},
            user=member,
        )
        for _ in range(3)
    ]
    await inters[2].wait_for(lambda rec: rec.responded, timeout=10)
    assert inters[2].ephemeral and "the limit is 2" in inters[2].original.content
    for inter in inters[:2]:
        assert (await finished(inter, timeout=90)).files


async def test_a_dropped_gateway_is_resumed_and_the_job_still_finishes(world: World) -> None:
    emu = world.emu
    resumes = emu.resume_count
    inter = await world.stylize()
    await inter.wait_for_callback()
    emu.drop_gateway()
    await emu.wait_until(lambda: emu.resume_count > resumes, timeout=30, what="RESUME")
    await finished(inter)
    after = await emu.invoke_slash("queue", {})
    await after.wait_for(lambda rec: rec.responded, timeout=10)


async def test_waiting_members_see_their_place_move_up_without_a_flood_of_edits(
    world: World,
) -> None:
    emu = world.emu
    asks = []
    for i in range(5):
        asks.append(
            await emu.invoke_slash(
                "stylize",
                {"content": world.photo(), "style": world.painting(), "quality": "best"},
                user=emu.make_member(f"waiting{i}"),
            )
        )
    for ask in asks:
        await finished(ask, timeout=120)

    def positions_shown(ask) -> list[tuple[float, int]]:
        return [
            (v.at, int(v.content.split("position ")[1].split()[0]))
            for v in ask.original.history
            if "queued at position" in v.content
        ]

    # Requests are checked concurrently, so take the one that was queued furthest back.
    last = max(asks, key=lambda ask: max((p for _, p in positions_shown(ask)), default=0))
    shown = positions_shown(last)
    places = [place for _, place in shown]
    assert places[0] >= 3 and len(places) >= 2, places
    assert places == sorted(places, reverse=True) and len(set(places)) == len(places), places
    # At most one position edit every 3 seconds per message.
    gaps = [b[0] - a[0] for a, b in zip(shown[1:], shown[2:])]
    assert all(gap > 2.9 for gap in gaps), gaps
    # Started after waiting: the last status before the picture said it was painting.
    painting = [v for v in last.original.history if "painting…" in v.content]
    assert painting and painting[0].at > shown[-1][0]


async def test_healthz_and_metrics_answer(world: World) -> None:
    inter = await world.stylize(quality="fast")
    await finished(inter)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{world.http}/healthz") as response:
            assert response.status == 200
            assert "gateway up, engine warm" in await response.text()
        async with session.get(f"{world.http}/metrics") as response:
            text = await response.text()
    assert response.status == 200
    assert "nst_jobs_finished_total" in text and "nst_run_seconds_bucket" in text
    finished_line = next(
        line for line in text.splitlines() if line.startswith("nst_jobs_finished_total")
    )
    assert float(finished_line.split()[1]) >= 1


async def test_metrics_show_how_long_the_event_loop_was_blocked(world: World) -> None:
    def value(text: str, name: str) -> float:
        line = next(line for line in text.splitlines() if line.startswith(name + " "))
        return float(line.split()[1])

    def ticks_over_quarter_second(text: str) -> float:
        within = value(text, 'nst_event_loop_lag_seconds_bucket{le="0.25"}')
        return value(text, "nst_event_loop_lag_seconds_count") - within

    url = f"{world.http}/metrics"
    async with aiohttp.ClientSession() as session:
        await asyncio.sleep(0.2)  # a few ticks of the monitor
        async with session.get(url) as response:
            before = await response.text()
        time.sleep(0.3)  # something blocks the bot's loop
        await asyncio.sleep(0.1)
        async with session.get(url) as response:
            after = await response.text()
    assert value(before, "nst_event_loop_lag_seconds_count") > 0
    assert ticks_over_quarter_second(after) == ticks_over_quarter_second(before) + 1
    assert value(after, "nst_event_loop_lag_max_seconds") >= 0.25


async def test_a_killed_worker_is_retried_once_then_the_member_is_told(world: World) -> None:
    import os
    import signal

    pool = world.bot.pool

    async def kill_when_painting(inter, painting_edits: int) -> None:
        await inter.wait_for(
            lambda rec: (
                rec.original is not None
                and sum("painting… 0%" in v.content for v in rec.original.history) >= painting_edits
            ),
            timeout=60,
        )
        while not (pool.running and pool.worker_pids()):  # the fresh worker took the job
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        os.kill(pool.worker_pids()[0], signal.SIGKILL)

    once = await world.stylize(quality="best")
    await kill_when_painting(once, 1)
    result = await finished(once, timeout=120)  # the retry on a fresh worker delivers
    assert result_png(result).size == (64, 48)

    twice = await world.stylize(quality="best")
    await kill_when_painting(twice, 1)
    await kill_when_painting(twice, 2)
    await twice.wait_for_original(lambda m: "didn't work" in m.content, timeout=120)
    assert "stopped unexpectedly" in twice.original.content
    assert "twice; if the picture is large, try a smaller size" in twice.original.content
    assert not any(m.files for m in twice.followups if m is not twice.original)


@pytest.mark.parametrize("fault", ["fails", "hangs"])
async def test_a_cdn_download_that_fails_or_hangs_is_retried_then_explained(
    world: World, fault: str
) -> None:
    emu = world.emu

    def inject(times: int) -> None:
        if fault == "fails":
            emu.fail_next("GET /cdn/*", status=503, times=times)
        else:  # past the fixture's NST_DOWNLOAD_TIMEOUT of 2 s
            emu.delay_next("GET /cdn/*", 3.0, times=times)

    inject(1)  # the retry delivers
    await finished(await world.stylize())

    inject(3)  # every attempt fails: one clear line
    inter = await world.stylize()
    await inter.wait_for(
        lambda rec: any("did not deliver it" in m.content for m in rec.messages), timeout=30
    )
    shown = next(m for m in inter.messages if "did not deliver it" in m.content)
    assert shown.ephemeral and shown.content.count("\n") == 0
    assert inter.callback.after < 3  # deferred at once, however slow the CDN


async def test_a_vanished_webhook_falls_back_to_the_channel_and_an_unreachable_member_is_let_go(
    world: World,
) -> None:
    emu = world.emu
    emu.fail_next("POST /webhooks/*", status=404)
    inter = await world.stylize(quality="fast")
    mention = f"<@{inter.user.id}>"
    message = await emu.wait_for_message(
        lambda m: mention in m.content and bool(m.files), timeout=60
    )
    assert result_png(message).size == (64, 48)
    assert [b["label"] for b in message.buttons()] == RESULT_BUTTONS

    # Nor may the bot post in the channel: the job ends with one warning, no traceback.
    emu.fail_next("POST /webhooks/*", status=404)
    emu.fail_next("POST /channels/*/messages", status=403)
    inter = await world.stylize(quality="fast")
    await emu.wait_until(
        lambda: any("could not be delivered (403" in line for line in world.logs.lines),
        timeout=60,
        what="the delivery failure in the log",
    )
    assert not any("job crashed" in line or "Traceback" in line for line in world.logs.lines)
    assert not any(m.files for m in inter.followups)
    # The next member's picture arrives as usual.
    await finished(await world.stylize(quality="fast"))


async def test_logs_carry_job_ids_but_never_the_token_or_attachment_urls(world: World) -> None:
    import re

    text = "\n".join(world.logs.lines)
    assert re.search(r"job [0-9a-f]{12} done", text)  # the pool names each job it finishes
    assert world.settings.discord_token not in text
    assert "/cdn/" not in text


async def test_an_attachment_url_off_discords_cdn_is_never_fetched(world: World) -> None:
    emu = world.emu
    elsewhere = dict(world.photo(), url="http://127.0.0.2:9/private.png")
    elsewhere["proxy_url"] = elsewhere["url"]
    inter = await emu.invoke_slash("stylize", {"content": elsewhere, "style": world.painting()})
    await inter.wait_for(
        lambda rec: any("not hosted on Discord's CDN" in m.content for m in rec.messages),
        timeout=15,
    )
    assert next(m for m in inter.messages if "CDN" in m.content).ephemeral


async def test_rest_429_and_500_on_the_answers_are_retried_and_the_picture_arrives(
    world: World,
) -> None:
    emu = world.emu
    limited = emu.fail_next("PATCH /webhooks/*", status=429, times=2)
    broken = emu.fail_next("POST /webhooks/*", status=500, times=1)
    inter = await world.stylize()
    result = await finished(inter, timeout=60)
    assert result_png(result).size == (64, 48)
    assert limited.hits == 2 and broken.hits == 1


async def test_setup_can_run_again_after_a_login_retry(world: World) -> None:
    # nst-bot retries a login that failed part-way; discord.py then runs setup_hook again.
    session = world.bot.http_session
    await world.bot.setup_hook()
    assert sorted(world.bot.extensions) == ["bot.cogs.server", "bot.cogs.stylize"]
    assert world.bot.http_session is session
    assert result_png(await finished(await world.stylize(quality="fast"))).size == (64, 48)
