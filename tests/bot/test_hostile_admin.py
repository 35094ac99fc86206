"""What a hostile member broke in issue 20 (items 1, 5, 8, 9 and 10), each through the real
client and the emulator: the line the member sees, the setting that did or did not change, the
styles a server keeps, the number of pictures."""

from __future__ import annotations

import sqlite3
import unicodedata
from collections.abc import Callable
from typing import Any

import discord
import pytest
import pytest_asyncio

from tests.bot.harness import World, finished, png_bytes, result_png
from tests.support import gradient_image

pytestmark = pytest.mark.asyncio(loop_scope="module")

NEEDS_MANAGE = "Only members with the Manage Server permission can choose this server's gallery."
SERVER_ONLY = "This command can be used only in a server."


@pytest_asyncio.fixture(scope="module", loop_scope="module", autouse=True)
async def _commands_synced(world: World) -> None:
    await world.emu.wait_for_commands("styles", "settings", "gallery", guild=world.emu.guild)


@pytest.fixture(scope="module")
def admin(world: World):
    return world.emu.make_member(
        "hostile-admin", permissions=discord.Permissions(manage_guild=True)
    )


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def _server_reset(world: World):
    yield
    store, guild_id = world.bot.store, world.emu.guild.id
    await store.set_gallery_channel(guild_id, None)
    for name in await store.style_names(guild_id):
        await store.remove_style(guild_id, name)


def artwork(world: World, name: str = "art.png") -> dict:
    data = png_bytes(gradient_image(16, 12, seed=5))
    return world.emu.add_attachment(name, data, "image/png", width=16, height=12)


async def one_line(inter) -> str:
    """The member's first answer, which must be one line that Discord accepts."""
    line = (await inter.wait_for_original(lambda m: m.content, timeout=30)).content
    assert "\n" not in line and len(line) <= 2000, line
    assert "Something went wrong" not in line and "Traceback" not in line, line
    return line


def failures(world: World) -> list[str]:
    """Log lines of unexpected errors (a traceback in the operator's log)."""
    return [
        line
        for line in world.logs.lines
        if "command failed" in line or "Ignoring exception" in line or "Traceback" in line
    ]


def journaled(world: World) -> int:
    with sqlite3.connect(world.settings.nst_data_dir / "jobs.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]


def leaf(payload: dict[str, Any]) -> list[dict[str, Any]]:
    options = payload["data"]["options"]
    while options and options[0]["type"] in (1, 2):
        options = options[0].setdefault("options", [])
    return options


def forge(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set option ``name`` to ``value`` as sent, whatever its declared type."""

    def craft(payload: dict[str, Any]) -> None:
        for option in leaf(payload):
            if option["name"] == name:
                option["value"] = value

    return craft


def in_a_dm(payload: dict[str, Any]) -> None:
    """What a DM interaction carries: a user and a DM channel, no server or member."""
    user = payload.pop("member")["user"]
    for key in ("guild", "guild_id", "app_permissions"):
        payload.pop(key, None)
    payload["user"] = user
    payload["channel"] = {"id": payload["channel_id"], "type": 1, "recipients": [user]}
    payload["context"] = 1
    payload["authorizing_integration_owners"] = {"1": user["id"]}


# ---- item 1: admin commands check Manage Server when they run ---------------------------------


async def test_gallery_set_and_clear_are_refused_to_a_member_without_manage_server(
    world: World, admin
) -> None:
    emu = world.emu
    lab, general = emu.guild.channel("style-lab"), emu.guild.channel("general")
    bob = emu.users["bob"]
    # A server's admins may let anyone see the command; the bot checks again when it runs.
    refused = await emu.invoke_slash("gallery set", {"channel": lab}, user=bob)
    assert await one_line(refused) == NEEDS_MANAGE
    assert await world.bot.store.gallery_channel(emu.guild.id) is None

    allowed = await emu.invoke_slash("gallery set", {"channel": general}, user=admin)
    assert await one_line(allowed) == f"Pictures can now be posted to <#{general.id}>."
    cleared = await emu.invoke_slash("gallery clear", {}, user=bob)
    assert await one_line(cleared) == NEEDS_MANAGE
    assert await world.bot.store.gallery_channel(emu.guild.id) == general.id
    view = await emu.invoke_slash("settings view", {}, user=admin)
    await view.wait_for_original(lambda m: "Gallery" in m.content, timeout=30)
    assert f"• Gallery: <#{general.id}> (/gallery set)" in view.original.content


# ---- item 5: style names are normalised and must be visible -----------------------------------


@pytest.mark.parametrize(
    "first,second",
    [
        ("gravel", "gravel\u200b"),  # a zero-width space after it
        (unicodedata.normalize("NFC", "Café"), unicodedata.normalize("NFD", "Café")),
        ("gravel", "ｇｒａｖｅｌ"),  # fullwidth letters: NFKC makes them plain
    ],
)
async def test_look_alike_style_names_are_one_name_or_refused(world: World, first, second) -> None:
    emu = world.emu
    saved = await emu.invoke_slash("styles add", {"name": first, "image": artwork(world)})
    assert (await one_line(saved)).startswith("Saved the style **")
    image = artwork(world)
    impostor = await emu.invoke_slash(
        "styles add", {"name": second, "image": image}, user=emu.users["bob"]
    )
    line = await one_line(impostor)
    assert line.startswith(("This server already has a style called", "A style name can't")), line
    assert emu.downloads[int(image["id"])] == 0
    names = await world.bot.store.style_names(emu.guild.id)
    assert len(names) == 1, names
    offered = await emu.autocomplete("stylize", "style_name", "")
    assert [c["name"] for c in offered] == names


@pytest.mark.parametrize("name", ["\u200b\u200b\u200b", "\u2800", "\u3164x\u3164", "a\u202eb"])
async def test_a_style_name_with_invisible_characters_is_refused(world: World, name) -> None:
    image = artwork(world)
    inter = await world.emu.invoke_slash("styles add", {"name": name, "image": image})
    line = await one_line(inter)
    assert line.startswith("A style name can't "), line
    assert world.emu.downloads[int(image["id"])] == 0
    assert await world.bot.store.style_names(world.emu.guild.id) == []


# ---- item 8: values Discord would never send ---------------------------------------------------


async def test_a_setting_outside_its_choices_is_refused_in_one_line(world: World, admin) -> None:
    emu = world.emu
    before = await world.bot.store.guild_settings(emu.guild.id)
    logged = len(failures(world))
    inter = await emu.invoke_slash(
        "settings reset", {"setting": "all"}, user=admin, craft=forge("setting", "jobs")
    )
    assert await one_line(inter) == (
        "The setting option can't be 'jobs'; it must be one of max_size, default_quality, "
        "daily_limit, role, channels, all."
    )
    assert await world.bot.store.guild_settings(emu.guild.id) == before
    assert failures(world)[logged:] == []


@pytest.mark.parametrize(
    "value,shown", [(12345, "12345"), (["a", "b"], "a list"), (None, "empty"), ({}, "an object")]
)
async def test_a_style_name_that_is_not_text_is_refused_in_one_line(
    world: World, value, shown
) -> None:
    emu = world.emu
    logged = len(failures(world))
    image = artwork(world)
    inter = await emu.invoke_slash(
        "styles add", {"name": "fine", "image": image}, craft=forge("name", value)
    )
    assert await one_line(inter) == f"The name option can't be {shown}; it must be text."
    assert emu.downloads[int(image["id"])] == 0
    removal = await emu.invoke_slash("styles remove", {"name": "x"}, craft=forge("name", value))
    assert await one_line(removal) == f"The name option can't be {shown}; it must be text."
    picture = await emu.invoke_slash(
        "stylize",
        {"content": world.photo(), "style_name": "fine"},
        craft=forge("style_name", value),
    )
    assert await one_line(picture) == f"The style_name option can't be {shown}; it must be text."
    assert failures(world)[logged:] == []


async def test_an_attachment_missing_from_resolved_is_refused_in_one_line(world: World) -> None:
    emu = world.emu
    logged = len(failures(world))

    def unresolved(payload: dict[str, Any]) -> None:
        payload["data"]["resolved"]["attachments"].clear()

    inter = await emu.invoke_slash(
        "styles add", {"name": "ghost", "image": artwork(world)}, craft=unresolved
    )
    line = await one_line(inter)
    assert line.startswith("The image option can't be ") and "an attachment" in line, line
    assert await world.bot.store.style_names(emu.guild.id) == []
    assert failures(world)[logged:] == []


async def test_a_channel_of_another_server_or_unknown_is_refused_in_one_line(
    world: World, admin
) -> None:
    emu = world.emu
    logged = len(failures(world))
    elsewhere = emu.add_guild("elsewhere")
    # The bot is in that server too, so its channels are in the bot's cache.
    await emu.dispatch("GUILD_CREATE", emu.guild_create_payload(elsewhere))
    theirs = elsewhere.channel("general")
    for command in ("gallery set", "settings channels add"):
        inter = await emu.invoke_slash(command, {"channel": theirs}, user=admin)
        assert await one_line(inter) == (
            f"The channel option can't be <#{theirs.id}>; it must be a channel of this server."
        )

    def unknown(payload: dict[str, Any]) -> None:
        resolved = payload["data"]["resolved"]["channels"]
        entry = resolved.pop(next(iter(resolved)))
        entry["id"] = "123456789012345678"
        resolved[entry["id"]] = entry
        leaf(payload)[0]["value"] = entry["id"]

    inter = await emu.invoke_slash(
        "gallery set", {"channel": emu.guild.channel("general")}, user=admin, craft=unknown
    )
    assert await one_line(inter) == (
        "The channel option can't be <#123456789012345678>; it must be a channel of this server."
    )
    assert await world.bot.store.gallery_channel(emu.guild.id) is None
    assert (await world.bot.store.guild_settings(emu.guild.id)).channels == frozenset()
    assert failures(world)[logged:] == []


async def test_a_3000_character_name_gets_a_short_answer(world: World) -> None:
    emu = world.emu
    name = "x" * 3000
    inter = await emu.invoke_slash("styles remove", {"name": "x"}, craft=forge("name", name))
    assert await one_line(inter) == "The name option must be 1 to 100 characters, not 3000."
    picture = await emu.invoke_slash(
        "stylize", {"content": world.photo(), "style_name": "x"}, craft=forge("style_name", name)
    )
    assert await one_line(picture) == "The style_name option must be 1 to 32 characters, not 3000."


async def test_an_unknown_option_is_refused_in_one_line(world: World, admin) -> None:
    def extra(payload: dict[str, Any]) -> None:
        leaf(payload).append({"name": "jobs", "type": 3, "value": "all"})

    inter = await world.emu.invoke_slash("settings view", {}, user=admin, craft=extra)
    assert await one_line(inter) == "This command has no option called 'jobs'."


# ---- item 9: server-only commands -------------------------------------------------------------


async def test_server_only_commands_are_declared_so_and_answer_one_line_in_a_dm(
    world: World, admin
) -> None:
    emu = world.emu
    for name in ("styles", "gallery", "settings"):
        assert emu.command(name).get("contexts") == [0], name
    logged = len(failures(world))
    image = artwork(world)
    add = await emu.invoke_slash("styles add", {"name": "dm", "image": image}, craft=in_a_dm)
    assert await one_line(add) == SERVER_ONLY
    assert emu.downloads[int(image["id"])] == 0
    lab = emu.guild.channel("style-lab")
    gallery = await emu.invoke_slash("gallery set", {"channel": lab}, user=admin, craft=in_a_dm)
    assert await one_line(gallery) == SERVER_ONLY
    assert await world.bot.store.gallery_channel(emu.guild.id) is None
    assert failures(world)[logged:] == []


# ---- item 10: an interaction delivered twice is handled once ----------------------------------


async def test_a_replayed_stylize_and_a_replayed_press_each_make_one_picture(world: World) -> None:
    emu = world.emu

    def pictures() -> int:
        return sum(1 for m in emu.channel.log if any(f.filename == "stylized.png" for f in m.files))

    before, jobs_before, logged = pictures(), journaled(world), len(failures(world))
    inter = await world.stylize(quality="fast")
    first = await finished(inter)
    assert result_png(first).size == (64, 48)
    await emu.replay(inter)
    variation = await emu.press_button(
        first, next(b for b in first.buttons() if b["label"] == "Variation")["custom_id"]
    )
    await finished(variation)
    await emu.replay(variation)
    # A later request behind the worker: a second job from either replay would come first.
    await finished(await world.stylize(quality="fast"))
    await finished(await world.stylize(quality="fast"))
    assert pictures() - before == 4
    assert journaled(world) - jobs_before == 4
    # The copies were ignored, not answered with "already acknowledged" and a traceback.
    assert failures(world)[logged:] == []
