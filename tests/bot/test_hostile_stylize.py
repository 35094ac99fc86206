"""What a hostile member broke in /stylize, its buttons and its menu (issue 20, items 2, 3, 4, 6,
7 and 11), each through the real client and the emulator: the answer the member reads, the
pictures they get and their size, the journal row, the decode budget."""

from __future__ import annotations

import asyncio
import io
import re
import sqlite3

import numpy as np
import pytest
import pytest_asyncio
from PIL import Image

from bot.decoding import PixelBudget
from tests.bot.harness import World, button, png_bytes, running_bot
from tests.support import gradient_image, stripes_image

pytestmark = pytest.mark.asyncio(loop_scope="module")

DAILY_1 = "You have made 1 pictures today, this server's daily limit; try again after 00:00 UTC."
DAILY_2 = "You have made 2 pictures today, this server's daily limit; try again after 00:00 UTC."


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory):
    # Four places per member, so that only the daily limit stands in a burst's way; a bot cap
    # of 96 px, so that a server's lower cap shows.
    async with running_bot(
        tmp_path_factory.mktemp("nst-hostile"),
        nst_user_limit=4,
        nst_queue_limit=12,
        nst_member_rate=0,
        nst_max_size=96,
        nst_max_steps=8,
    ) as world:
        yield world


@pytest.fixture
async def styles(world: World):
    """Save styles by name for one test; all removed after it."""
    store, guild = world.bot.store, world.emu.guild.id
    art = png_bytes(stripes_image(24, 24))

    async def save(*names: str) -> None:
        for name in names:
            await store.add_style(guild, name, world.emu.member.id, art)

    yield save
    for style in await store.styles(guild):
        await store.remove_style(guild, style.name)


def picture(inter):
    """The message carrying the result, or None."""
    return next((m for m in inter.followups if m.files and m is not inter.original), None)


def lines(inter) -> list[str]:
    """The one-line answers only the member sees."""
    return [
        m.content
        for m in inter.messages
        if m.ephemeral and not m.deleted and m.content and not m.files
    ]


def answered(inter) -> bool:
    return picture(inter) is not None or bool(lines(inter))


def size_of(message) -> tuple[int, int]:
    return Image.open(io.BytesIO(message.files[0].data)).size


def journal_state(world: World, job_id: str) -> str:
    with sqlite3.connect(world.settings.nst_data_dir / "jobs.sqlite3") as db:
        return db.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()[0]


def job_id_of(inter) -> str:
    """The job id in a status message's buttons (nst:cancel:<id>)."""
    for version in reversed(inter.original.history):
        for row in version.components:
            for item in row.get("components", []):
                if item.get("custom_id", "").startswith("nst:"):
                    return item["custom_id"].rsplit(":", 1)[1]
    raise LookupError("no job button was ever shown")


async def settled(*inters, timeout: float = 90) -> None:
    for inter in inters:
        await inter.wait_for(answered, timeout=timeout)
    await asyncio.sleep(1.5)  # anything late would land now


# ---- item 2: the daily limit holds against a burst ------------------------------------------


async def test_a_burst_of_requests_gets_no_more_pictures_than_the_daily_limit(
    world: World, rules
) -> None:
    member = world.emu.make_member("burster")
    await rules(daily_limit=1)
    burst = await asyncio.gather(
        *(world.stylize(user=member, quality="fast", size=64) for _ in range(4))
    )
    await settled(*burst)
    assert sum(picture(inter) is not None for inter in burst) == 1
    assert sorted(line for inter in burst for line in lines(inter)) == [DAILY_1] * 3


async def test_a_request_and_a_variation_pressed_together_stay_within_the_limit(
    world: World, rules
) -> None:
    member = world.emu.make_member("presser")
    await rules(daily_limit=2)
    first = await world.stylize(user=member, quality="fast", size=64)
    await settled(first)
    made = picture(first)
    both = await asyncio.gather(
        world.stylize(user=member, quality="fast", size=64),
        world.emu.press_button(made, button(made, "Variation")["custom_id"], user=member),
    )
    await settled(*both)
    assert sum(picture(inter) is not None for inter in both) == 1
    assert [line for inter in both for line in lines(inter)] == [DAILY_2]


async def test_a_refused_request_gives_its_days_place_back(world: World, rules, styles) -> None:
    member = world.emu.make_member("unlucky")
    await rules(daily_limit=1)
    wrong = await world.emu.invoke_slash(
        "stylize", {"content": world.photo(), "style_name": "No such style"}, user=member
    )
    await settled(wrong)
    assert lines(wrong) == [
        "This server has no saved style called 'No such style'; /styles list shows the ones it has."
    ]
    right = await world.stylize(user=member, quality="fast", size=64)
    await settled(right)
    assert picture(right) is not None


# ---- item 3: the Stylize menu's style picker ------------------------------------------------


async def open_menu(world: World, photo: dict | None = None):
    emu = world.emu
    post = await emu.post_as(emu.member, "my cat", attachments=[photo or world.photo()])
    inter = await emu.invoke_message_command("Stylize", post)
    await inter.wait_for_original(lambda m: m.components, timeout=15)
    return inter.original


def select_of(menu) -> dict:
    return next(c for c in menu.iter_components() if c.get("type") == 3)


def offered(menu) -> list[str]:
    return [o["value"] for o in select_of(menu)["options"]]


async def test_a_refused_pick_is_answered_and_the_menu_still_works(world: World, styles) -> None:
    emu = world.emu
    await styles("Stripes", "Gone soon")
    menu = await open_menu(world)
    await world.bot.store.remove_style(emu.guild.id, "Gone soon")  # removed meanwhile
    refused = await emu.choose(menu, select_of(menu)["custom_id"], ["Gone soon"])
    await refused.wait_for(lambda rec: lines(rec), timeout=15)
    assert lines(refused) == [
        "This server has no saved style called 'Gone soon'; /styles list shows the ones it has."
    ]
    assert not any("Traceback" in line for line in world.logs.lines)
    pick = await emu.choose(menu, select_of(menu)["custom_id"], ["Stripes"])
    await settled(pick)
    assert picture(pick) is not None


async def test_a_pick_over_the_daily_limit_is_answered_in_one_line(
    world: World, styles, rules
) -> None:
    emu = world.emu
    member = emu.make_member("picker")
    await styles("Stripes")
    await rules(daily_limit=1)
    await settled(await world.stylize(user=member, quality="fast", size=64))
    post = await emu.post_as(member, "again", attachments=[world.photo()])
    await rules(daily_limit=2)
    inter = await emu.invoke_message_command("Stylize", post, user=member)
    menu = await inter.wait_for_original(lambda m: m.components, timeout=15)
    await rules(daily_limit=1)  # lowered while the menu is open
    refused = await emu.choose(menu, select_of(menu)["custom_id"], ["Stripes"], user=member)
    await refused.wait_for(lambda rec: lines(rec), timeout=15)
    assert lines(refused) == [DAILY_1]


async def test_every_saved_style_can_be_reached_from_the_menu(world: World, styles) -> None:
    emu = world.emu
    names = [f"Style {n:03}" for n in range(1, 61)]
    await styles(*names)
    menu = await open_menu(world)
    seen = offered(menu)
    assert len(seen) <= 25
    for _ in range(10):
        nexts = [b for b in menu.buttons() if b["label"] == "Next"]
        if not nexts or nexts[0].get("disabled"):
            break
        press = await emu.press_button(menu, nexts[0]["custom_id"])
        await press.wait_for_callback(timeout=15)
        seen += offered(menu)
        assert len(offered(menu)) <= 25
    assert sorted(seen) == names
    assert "Style 060" in offered(menu)
    pick = await emu.choose(menu, select_of(menu)["custom_id"], ["Style 060"])
    await settled(pick)
    embed = picture(pick).embeds[0]
    assert {f["name"]: f["value"] for f in embed["fields"]}["Style"] == "Style 060"
    back = await emu.press_button(menu, button(menu, "Previous")["custom_id"])
    await back.wait_for_callback(timeout=15)
    assert offered(menu) == names[25:50]


BAD_PICK = "That pick is not one of the styles this menu offers; pick one from it."


def failures(world: World, since: int = 0) -> list[str]:
    """Log lines of unexpected errors (a traceback in the operator's log)."""
    return [
        line
        for line in world.logs.lines[since:]
        if "command failed" in line or "Ignoring exception" in line or "Traceback" in line
    ]


def forged_values(values):
    def craft(payload: dict) -> None:
        payload["data"]["values"] = values

    return craft


async def test_a_forged_pick_is_answered_in_one_line_and_the_menu_still_works(
    world: World, styles
) -> None:
    emu = world.emu
    await styles("Stripes")
    menu = await open_menu(world)
    await styles("Not offered")  # saved after the menu was opened: not one of its options
    logged = len(world.logs.lines)
    select = select_of(menu)["custom_id"]
    for values in ([], ["Stripes", "Stripes"], ["Not offered"], [12345], None, "Stripes", {}):
        forged = await emu.choose(menu, select, ["Stripes"], craft=forged_values(values))
        await forged.wait_for(lambda rec: lines(rec), timeout=15)
        assert lines(forged) == [BAD_PICK], values
    assert failures(world, logged) == []
    pick = await emu.choose(menu, select, ["Stripes"])
    await settled(pick)
    assert picture(pick) is not None


async def test_a_replayed_page_turn_or_pick_is_done_once(world: World, styles) -> None:
    emu = world.emu
    names = [f"Style {n:03}" for n in range(1, 61)]
    await styles(*names)
    menu = await open_menu(world)
    logged = len(world.logs.lines)
    turn = await emu.press_button(menu, button(menu, "Next")["custom_id"])
    await turn.wait_for_callback(timeout=15)
    assert offered(menu) == names[25:50]
    pick = await emu.choose(menu, select_of(menu)["custom_id"], ["Style 030"])
    await settled(pick)
    await emu.replay(turn)  # the turn and the pick after it, delivered again
    # A later request behind the worker: a second job from the replayed pick would come first.
    await settled(await world.stylize(quality="fast", size=64))
    assert sum(1 for m in pick.followups if m.files and m is not pick.original) == 1
    assert failures(world, logged) == []
    back = await emu.press_button(menu, button(menu, "Previous")["custom_id"])
    await back.wait_for_callback(timeout=15)
    assert offered(menu) == names[:25]  # one page forward, one back: the replay turned nothing


# ---- item 4: a result over Discord's upload limit -------------------------------------------


async def test_a_still_over_the_upload_limit_is_fitted_and_says_how(world: World) -> None:
    emu = world.emu
    before = emu.upload_limit
    first = await world.stylize(quality="fast", size=64, seed=1)
    await settled(first)
    png = picture(first).file("stylized.png")
    try:
        emu.upload_limit = png.size * 2 // 3
        smaller = await world.stylize(quality="fast", size=64, seed=1)
        await settled(smaller, timeout=45)
        sent = picture(smaller)
        assert sent is not None, smaller.summary()
        assert sent.files[0].filename in ("stylized.webp", "stylized.jpeg")
        assert sent.files[0].size <= emu.upload_limit
        assert size_of(sent) == (64, 48)
        assert re.search(r"\(sent as (WebP|JPEG) to fit Discord's upload limit here", sent.content)

        emu.upload_limit = 700
        tiny = await world.stylize(quality="fast", size=64, seed=1)
        await settled(tiny, timeout=45)
        sent = picture(tiny)
        assert sent is not None, tiny.summary()
        assert sent.files[0].size <= 700
        width, height = size_of(sent)
        assert width < 64 and f"{width}×{height}" in sent.content
    finally:
        emu.upload_limit = before


async def test_a_result_discord_refuses_as_too_large_ends_with_one_line(world: World) -> None:
    emu = world.emu
    before = emu.upload_limit
    inter = await world.stylize(quality="fast", size=64)
    try:
        emu.upload_limit = 300  # less than the interaction said: Discord answers 413
        status = await inter.wait_for_original(lambda m: m.content.startswith("❌"), timeout=60)
    finally:
        emu.upload_limit = before
    assert status.content == (
        f"❌ <@{inter.user.id}>, your picture was painted but Discord refused it as too large "
        "for this channel; try a smaller size."
    )
    assert status.buttons() == []
    job = job_id_of(inter)
    await emu.wait_until(lambda: journal_state(world, job) == "undeliverable", timeout=10)
    assert not any("Traceback" in line for line in world.logs.lines)


async def test_a_restart_retries_a_delivery_a_bounded_number_of_times(world: World) -> None:
    emu = world.emu
    refused = emu.fail_next("POST /webhooks/*", status=429, times=None, retry_after=0.01)
    inter = await world.stylize(quality="fast", size=64)
    await inter.wait_for_original(lambda m: "painting" in m.content, timeout=30)
    job = job_id_of(inter)
    await emu.wait_until(
        lambda: refused.hits > 0 and journal_state(world, job) == "done", timeout=60
    )
    await asyncio.sleep(1)
    tries = [refused.hits]
    for _restart in range(4):
        await world.bot.reload_extension("bot.cogs.stylize")
        await asyncio.sleep(2)
        tries.append(refused.hits)
    assert journal_state(world, job) == "undeliverable", tries
    assert tries[-1] == tries[-2], f"still retrying: {tries}"
    status = inter.original
    assert status.content.startswith(f"❌ <@{inter.user.id}>, your picture was painted but")
    assert status.buttons() == []


# ---- item 6: what members typed is shown as text --------------------------------------------


async def test_a_style_name_is_shown_as_text_not_as_a_link(world: World, styles) -> None:
    await styles("[nitro](https://evil.example)")
    inter = await world.emu.invoke_slash(
        "stylize",
        {"content": world.photo(), "style_name": "[nitro](https://evil.example)", "size": 64},
    )
    await settled(inter)
    fields = {f["name"]: f["value"] for f in picture(inter).embeds[0]["fields"]}
    shown = fields["Style"]
    # Every bracket and parenthesis is escaped: Discord renders no masked link.
    assert re.sub(r"\\(.)", r"\1", shown) == "[nitro](https://evil.example)"
    assert not re.search(r"(?<!\\)(?:\\\\)*[\[\]()]", shown), shown


LINK_NAME = "[nitro](https://evil.example)"


def as_text(shown: str) -> bool:
    """Whether ``shown`` renders as LINK_NAME's characters: each bracket and parenthesis
    escaped, so that Discord makes no masked link of it."""
    return re.sub(r"\\(.)", r"\1", shown) == LINK_NAME and not re.search(
        r"(?<!\\)(?:\\\\)*[\[\]()]", shown
    )


async def test_styles_add_list_and_remove_show_a_name_as_text(world: World, styles) -> None:
    emu = world.emu
    art = png_bytes(stripes_image(24, 24))
    image = emu.add_attachment("art.png", art, "image/png", width=24, height=24)
    added = await emu.invoke_slash("styles add", {"name": LINK_NAME, "image": image})
    line = (await added.wait_for_original(lambda m: m.content, timeout=30)).content
    shown = re.fullmatch(r"Saved the style \*\*(.+)\*\* for this server .*", line)[1]
    assert as_text(shown), line

    listed = await emu.invoke_slash("styles list", {})
    sheet = await listed.wait_for_original(lambda m: m.embeds, timeout=30)
    entry = sheet.embeds[0]["description"].splitlines()[0]
    shown = re.fullmatch(r"1\. \*\*(.+)\*\* — <@\d+>", entry)[1]
    assert as_text(shown), entry

    removed = await emu.invoke_slash("styles remove", {"name": LINK_NAME})
    line = (await removed.wait_for_original(lambda m: m.content, timeout=30)).content
    assert as_text(re.fullmatch(r"Removed the style \*\*(.+)\*\*\.", line)[1]), line
    again = await emu.invoke_slash("styles remove", {"name": LINK_NAME})
    line = (await again.wait_for_original(lambda m: m.content, timeout=30)).content
    quoted = re.fullmatch(r"This server has no saved style called '(.+)'; .*", line)[1]
    assert as_text(quoted), line


async def test_the_one_escape_helper_neutralises_markdown_and_masked_links() -> None:
    from bot.markdown import literal

    for typed in ("[a](<https://x.y>)", r"\[a](b)", "**bold** _it_ `code` ~~s~~ ||spoiler||"):
        shown = literal(typed)
        assert re.sub(r"\\(.)", r"\1", shown) == typed
        assert not re.search(r"(?<!\\)(?:\\\\)*[\[\]()*_`~|]", shown), shown
    assert literal("# heading")[0] == "\\" and literal("> quote")[0] == "\\"


# ---- item 7: re-runs obey the rules as they stand --------------------------------------------


async def test_a_rerun_obeys_a_cap_lowered_after_the_first_picture(
    world: World, rules, styles
) -> None:
    emu = world.emu
    large = png_bytes(gradient_image(128, 96, seed=3))
    photo = emu.add_attachment("large.png", large, "image/png", width=128, height=96)
    first = await world.stylize(content=photo, quality="fast", size=96)
    await settled(first)
    made = picture(first)
    assert size_of(made) == (96, 72)
    await styles("Stripes")
    menu = await open_menu(world, photo)  # opened before the cap is lowered
    await rules(max_size=64)
    for label in ("Stronger", "Weaker", "Variation"):
        press = await emu.press_button(made, button(made, label)["custom_id"], user=emu.member)
        await settled(press)
        assert size_of(picture(press)) == (64, 48), label
    pick = await emu.choose(menu, select_of(menu)["custom_id"], ["Stripes"])
    await settled(pick)
    assert size_of(picture(pick)) == (64, 48)


async def test_a_rerun_obeys_the_servers_role(world: World, rules) -> None:
    emu = world.emu
    first = await world.stylize(quality="fast", size=64)
    await settled(first)
    made = picture(first)
    await rules(role_id=emu.guild.everyone.id + 1)  # a role nobody has
    press = await emu.press_button(made, button(made, "Stronger")["custom_id"], user=emu.member)
    await settled(press)
    assert lines(press) == [
        f"In this server only members with the <@&{emu.guild.everyone.id + 1}> role can use the "
        "bot."
    ]


# ---- item 11: every member image the bot decodes shares one budget --------------------------


@pytest.fixture
def small_budget(world: World):
    """Room for one 200×150 photo at a time (the bot's own budget is 40 megapixels)."""
    before = world.bot.decode_budget

    def fresh() -> PixelBudget:
        world.bot.decode_budget = PixelBudget(40_000)
        return world.bot.decode_budget

    yield fresh
    world.bot.decode_budget = before


async def test_stylize_the_menu_and_reruns_decode_in_the_shared_budget(
    world: World, styles, small_budget
) -> None:
    emu = world.emu
    member = emu.make_member("decoder")
    # Many pixels in few bytes: a flat 200×150 PNG of under a kilobyte.
    flat = png_bytes(np.full((150, 200, 3), 120, np.uint8))

    def photo() -> dict:
        return emu.add_attachment("flat.png", flat, "image/png", width=200, height=150)

    await styles("Stripes")
    post = await emu.post_as(member, "flat", attachments=[photo()])
    opened = await emu.invoke_message_command("Stylize", post, user=member)
    menu = await opened.wait_for_original(lambda m: m.components, timeout=15)
    budget = small_budget()
    burst = await asyncio.gather(
        *(world.stylize(user=member, content=photo(), quality="fast", size=64) for _ in range(3)),
        emu.choose(menu, select_of(menu)["custom_id"], ["Stripes"], user=member),
    )
    await settled(*burst)
    assert all(picture(inter) is not None for inter in burst), [i.summary() for i in burst]
    assert 30_000 <= budget.peak <= budget.capacity and budget.held == 0, budget.peak

    budget = small_budget()
    made = picture(burst[0])
    press = await emu.press_button(made, button(made, "Stronger")["custom_id"], user=member)
    await settled(press)
    assert picture(press) is not None
    assert 30_000 <= budget.peak <= budget.capacity and budget.held == 0, budget.peak
