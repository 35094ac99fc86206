"""/styles add, list and remove through the real client and the emulator: what members see,
what the journal keeps, and what is refused in one line."""

from __future__ import annotations

import io

import discord
import pytest
import pytest_asyncio
from PIL import Image

from bot.store import MAX_STYLES
from tests.bot.harness import World, png_bytes
from tests.support import gradient_image

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module", autouse=True)
async def _commands_synced(world: World) -> None:
    await world.emu.wait_for_commands("styles", "settings", guild=world.emu.guild)


def artwork(world: World, width: int = 48, height: int = 36, name: str = "art.png") -> dict:
    data = png_bytes(gradient_image(width, height, seed=5))
    return world.emu.add_attachment(name, data, "image/png", width=width, height=height)


async def answer(inter) -> str:
    """The one line (or lines) the member sees first."""
    return (await inter.wait_for_original(timeout=30)).content


async def add(world: World, name: str, image: dict | None = None, *, user=None, **kw) -> str:
    options = {"name": name, "image": image or artwork(world)}
    return await answer(await world.emu.invoke_slash("styles add", options, user=user, **kw))


async def test_a_style_is_saved_shrunk_listed_with_its_author_and_removed(world: World) -> None:
    emu = world.emu
    big = artwork(world, 800, 600, "big.png")
    inter = await emu.invoke_slash("styles add", {"name": " Starry  Night ", "image": big})
    saved = await inter.wait_for_original(timeout=30)
    assert saved.ephemeral
    assert saved.content.startswith("Saved the style **Starry Night** for this server (512×384)")
    assert Image.open(io.BytesIO(saved.file("style.png").data)).size == (512, 384)
    kept = await world.bot.store.style(emu.guild.id, "starry night")
    assert kept.user_id == emu.member.id
    assert Image.open(io.BytesIO(kept.image)).size == (512, 384)

    listing = await emu.invoke_slash("styles list", {})
    shown = await listing.wait_for_original(timeout=30)
    assert shown.ephemeral
    [embed] = shown.embeds
    assert embed["description"] == f"1. **Starry Night** — <@{emu.member.id}>"
    sheet = Image.open(io.BytesIO(shown.file("styles-1.png").data))
    assert "/styles-1.png" in embed["image"]["url"] and sheet.width > 96

    assert await answer(await emu.invoke_slash("styles remove", {"name": "STARRY NIGHT"})) == (
        "Removed the style **Starry Night**."
    )
    assert await world.bot.store.style(emu.guild.id, "Starry Night") is None
    empty = await answer(await emu.invoke_slash("styles list", {}))
    assert empty == "This server has no saved styles yet; save one with `/styles add`."


async def test_a_name_already_taken_whatever_its_case_is_refused_before_any_download(
    world: World,
) -> None:
    assert (await add(world, "Bauhaus")).startswith("Saved the style **Bauhaus**")
    second = artwork(world)
    line = await add(world, "BAUHAUS", second, user=world.emu.users["bob"])
    assert line == (
        "This server already has a style called 'BAUHAUS'; names are unique whatever their "
        "case, so pick another or remove that one with /styles remove."
    )
    assert world.emu.downloads[int(second["id"])] == 0
    assert (await world.bot.store.style(world.emu.guild.id, "bauhaus")).user_id == (
        world.emu.member.id
    )


@pytest.mark.parametrize("name", ["x" * 33, "   "])
async def test_a_name_outside_1_to_32_characters_is_refused_in_one_line(world: World, name) -> None:
    image = artwork(world)
    # Discord's client keeps names to 32 characters; a forged interaction does not.
    line = await add(world, name, image, validate=False)
    assert line.startswith(
        ("A style name must be 1 to 32 characters, not ", "The name option must be 1 to 32")
    )
    assert "\n" not in line
    assert world.emu.downloads[int(image["id"])] == 0


async def test_the_101st_style_of_a_server_is_refused_in_one_line(world: World) -> None:
    store, guild_id = world.bot.store, world.emu.guild.id
    have = len(await store.styles(guild_id))
    filler = [f"filler {n}" for n in range(MAX_STYLES - have)]
    png = png_bytes(gradient_image(8, 8))
    for name in filler:
        await store.add_style(guild_id, name, world.emu.member.id, png)
    try:
        line = await add(world, "one too many")
        assert line == (
            "This server already has 100 saved styles, the most allowed; remove one with "
            "/styles remove first."
        )
        listing = await world.emu.invoke_slash("styles list", {})
        await listing.wait_for(lambda rec: len(rec.messages) == 4, timeout=60)
        titles = [m.embeds[0]["title"] for m in listing.messages]
        assert titles[0] == "Saved styles 1–25 of 100 (at most 100)"
        assert titles[3] == "Saved styles 76–100 of 100 (at most 100)"
    finally:
        for name in filler:
            await store.remove_style(guild_id, name)


async def test_only_its_author_or_manage_server_may_remove_a_style(world: World) -> None:
    emu = world.emu
    author = emu.make_member("painter")
    assert (await add(world, "Ukiyo-e", user=author)).startswith("Saved the style")
    refused = await emu.invoke_slash("styles remove", {"name": "ukiyo-e"}, user=emu.users["bob"])
    assert await answer(refused) == (
        "Only the member who saved the style 'Ukiyo-e', or someone with the Manage Server "
        "permission, can remove it."
    )
    assert await world.bot.store.style(emu.guild.id, "Ukiyo-e") is not None
    admin = emu.make_member("styles-admin", permissions=discord.Permissions(manage_guild=True))
    removed = await emu.invoke_slash("styles remove", {"name": "ukiyo-e"}, user=admin)
    assert await answer(removed) == "Removed the style **Ukiyo-e**."
    unknown = await emu.invoke_slash("styles remove", {"name": "ukiyo-e"}, user=admin)
    assert await answer(unknown) == (
        "This server has no saved style called 'ukiyo-e'; /styles list shows the ones it has."
    )


async def test_an_attachment_that_is_not_an_image_is_refused_like_any_other(world: World) -> None:
    notes = world.emu.add_attachment("notes.txt", b"just words", "text/plain")
    line = await add(world, "Notes", notes)
    assert line == (
        "The image attachment won't do: it is text/plain, not an image "
        "(PNG, JPEG, GIF, WebP, BMP or TIFF are allowed)."
    )
    liar = world.emu.add_attachment("liar.png", b"GIF89a" + b"\0" * 64, "image/png")
    line = await add(world, "Liar", liar)
    assert line.startswith("The image attachment won't do: it says it is png but its contents")
    assert await world.bot.store.style(world.emu.guild.id, "Liar") is None
