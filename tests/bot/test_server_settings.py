"""/settings view, set, reset and channels through the real client and the emulator: Manage
Server only (checked at run time too), a round trip through the journal, the bot-wide caps shown
beside the server's values."""

from __future__ import annotations

import discord
import pytest
import pytest_asyncio

from bot.store import GuildSettings
from tests.bot.harness import World, png_bytes
from tests.support import gradient_image

pytestmark = pytest.mark.asyncio(loop_scope="module")

REFUSED = "Only members with the Manage Server permission can change this server's bot settings."


@pytest_asyncio.fixture(scope="module", loop_scope="module", autouse=True)
async def _commands_synced(world: World) -> None:
    await world.emu.wait_for_commands("styles", "settings", guild=world.emu.guild)


@pytest.fixture(scope="module")
def admin(world: World):
    return world.emu.make_member(
        "settings-admin", permissions=discord.Permissions(manage_guild=True)
    )


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def _settings_reset(world: World):
    yield
    store, guild_id = world.bot.store, world.emu.guild.id
    await store.update_guild_settings(
        guild_id, max_size=None, default_quality=None, daily_limit=None, role_id=None
    )
    for channel_id in (await store.guild_settings(guild_id)).channels:
        await store.remove_channel(guild_id, channel_id)


async def answer(inter) -> str:
    return (await inter.wait_for_original(timeout=30)).content


async def settings(world: World, command: str, options: dict | None = None, **kw) -> str:
    return await answer(await world.emu.invoke_slash(f"settings {command}", options or {}, **kw))


async def test_settings_are_refused_to_a_member_without_manage_server(world: World) -> None:
    # Discord hides the commands from such members by default, but a server's admins can
    # override that for a role or channel: the bot checks again.
    bob = world.emu.users["bob"]
    assert await settings(world, "set", {"max_size": 128}, user=bob) == REFUSED
    assert await settings(world, "channels add", {"channel": world.emu.channel}, user=bob) == (
        REFUSED
    )
    assert await settings(world, "reset", {"setting": "all"}, user=bob) == REFUSED
    assert await settings(world, "view", user=bob) == (
        "Only members with the Manage Server permission can see this server's bot settings."
    )
    assert await world.bot.store.guild_settings(world.emu.guild.id) == GuildSettings()
    synced = world.emu.command("settings")
    assert int(synced["default_member_permissions"]) == discord.Permissions(manage_guild=True).value


async def test_settings_set_and_view_round_trip_with_the_bot_caps_beside_them(
    world: World, admin
) -> None:
    emu = world.emu
    artist = emu.make_member("artist", permissions=discord.Permissions.none())
    role = artist.roles[0]
    options = {"max_size": 256, "default_quality": "fast", "daily_limit": 5, "role": role}
    saved = await settings(world, "set", options, user=admin)
    assert saved.splitlines()[0] == "Saved."
    assert await world.bot.store.guild_settings(emu.guild.id) == GuildSettings(
        256, "fast", 5, role.id, frozenset()
    )
    view = (await settings(world, "view", user=admin)).splitlines()
    assert view[0] == "**This server's settings** (the operator's caps stay the ceiling)"
    # The tests' bot runs with NST_MAX_SIZE=64 and NST_MAX_STEPS=30: those stay the ceiling.
    assert view[1] == "• Max size: 256 px, so 64 px applies · bot cap 64 px (NST_MAX_SIZE)"
    assert view[2] == "• Default quality: fast · steps capped at 30 (NST_MAX_STEPS)"
    assert view[3].startswith("• Daily limit: 5 pictures per member per UTC day · bot-wide: 2 at")
    assert view[4] == f"• Role required: <@&{role.id}>"
    assert view[5] == "• Channels: every channel"
    assert view[7].startswith("• Saved styles: 0 of 100")

    # One option at a time leaves the others; 0 means no daily limit, @everyone means anyone.
    await settings(world, "set", {"daily_limit": 0, "role": emu.guild.everyone}, user=admin)
    assert await world.bot.store.guild_settings(emu.guild.id) == GuildSettings(256, "fast")
    await settings(world, "reset", {"setting": "max_size"}, user=admin)
    view = (await settings(world, "view", user=admin)).splitlines()
    assert view[1] == "• Max size: not set: 64 px · bot cap 64 px (NST_MAX_SIZE)"
    assert view[3].startswith("• Daily limit: none · ")
    assert view[4] == "• Role required: none: anyone may use the bot"


async def test_settings_set_needs_an_option_and_refuses_a_forged_value(world: World, admin) -> None:
    assert await settings(world, "set", user=admin) == (
        "Name at least one setting to change: max_size, default_quality, daily_limit or role."
    )
    forged = await settings(world, "set", {"max_size": 5000}, user=admin, validate=False)
    assert forged == "The max_size option can't be 5000; it must be 64 to 2048 pixels."
    forged = await settings(world, "set", {"daily_limit": -3}, user=admin, validate=False)
    assert forged == "The daily_limit option can't be -3; it must be 0 to 1000."
    assert await world.bot.store.guild_settings(world.emu.guild.id) == GuildSettings()


async def test_channels_are_added_to_and_removed_from_the_allow_list(world: World, admin) -> None:
    emu = world.emu
    lab, general = emu.guild.channel("style-lab"), emu.guild.channel("general")
    added = await settings(world, "channels add", {"channel": lab}, user=admin)
    assert added == f"The bot can now be used in <#{lab.id}>. Allowed: <#{lab.id}>."
    again = await settings(world, "channels add", {"channel": lab}, user=admin)
    assert again == f"<#{lab.id}> was already on the list. Allowed: <#{lab.id}>."
    await settings(world, "channels add", {"channel": general}, user=admin)
    assert (await world.bot.store.guild_settings(emu.guild.id)).channels == {lab.id, general.id}
    view = (await settings(world, "view", user=admin)).splitlines()
    assert view[5] == f"• Channels: {', '.join(f'<#{c}>' for c in sorted((lab.id, general.id)))}"

    removed = await settings(world, "channels remove", {"channel": general}, user=admin)
    assert removed == f"<#{general.id}> is off the list. Allowed: <#{lab.id}>."
    await settings(world, "channels remove", {"channel": lab}, user=admin)
    gone = await settings(world, "channels remove", {"channel": lab}, user=admin)
    assert gone == f"<#{lab.id}> was not on the list. Allowed: every channel."
    assert (await world.bot.store.guild_settings(emu.guild.id)).channels == frozenset()


async def test_saving_a_style_follows_the_servers_channels_and_role(world: World, admin) -> None:
    emu = world.emu
    lab = emu.guild.channel("style-lab")
    await settings(world, "channels add", {"channel": lab}, user=admin)

    async def add_style(name: str, **kw) -> str:
        data = png_bytes(gradient_image(8, 8))
        image = emu.add_attachment("a.png", data, "image/png", width=8, height=8)
        inter = await emu.invoke_slash("styles add", {"name": name, "image": image}, **kw)
        return await answer(inter)

    assert await add_style("Elsewhere") == (
        f"In this server the bot can be used only in <#{lab.id}>."
    )
    assert (await add_style("In the lab", channel=lab)).startswith("Saved the style")
    assert (await add_style("Admins anywhere", user=admin)).startswith("Saved the style")

    everyone = emu.make_member("no-roles")
    holder = emu.make_member("member-of-role", permissions=discord.Permissions.none())
    role = holder.roles[0]
    await settings(world, "set", {"role": role}, user=admin)
    assert await add_style("No role", user=everyone, channel=lab) == (
        f"In this server only members with the <@&{role.id}> role can use the bot."
    )
    assert (await add_style("Role holder", user=holder, channel=lab)).startswith("Saved the style")
    assert await add_style("Holder elsewhere", user=holder) == (
        f"In this server the bot can be used only in <#{lab.id}>."
    )
    for name in ("In the lab", "Admins anywhere", "Role holder"):
        await world.bot.store.remove_style(emu.guild.id, name)
