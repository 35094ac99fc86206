"""What servers ask of the bot (issue 11), through the emulator: saved styles in /stylize, two
artworks blended, the Stylize context menu, Variation, parameters in the PNG, server rules."""

from __future__ import annotations

import numpy as np
import pytest

from nst_engine.images import read_parameters
from tests.bot.harness import RESULT_BUTTONS, World, button, finished, png_bytes, result_png
from tests.support import gradient_image, stripes_image

pytestmark = pytest.mark.asyncio(loop_scope="module")


def parameters(message) -> dict:
    return read_parameters(message.file("stylized.png").data)


def pixels(message) -> np.ndarray:
    return np.asarray(result_png(message), dtype=np.int16)


def lines(inter) -> list[str]:
    return [m.content for m in inter.messages if m.ephemeral]


@pytest.fixture
async def saved(world: World):
    """The server's saved styles: 'Stripes' (and none other) for the test, removed after."""
    store, guild = world.bot.store, world.emu.guild.id
    for style in await store.styles(guild):
        await store.remove_style(guild, style.name)
    await store.add_style(guild, "Stripes", world.emu.member.id, png_bytes(stripes_image(48, 48)))
    yield store
    for style in await store.styles(guild):
        await store.remove_style(guild, style.name)


async def test_a_saved_style_by_name_paints_and_the_png_says_how(world: World, saved) -> None:
    inter = await world.emu.invoke_slash(
        "stylize", {"content": world.photo(), "style_name": "Stripes", "seed": 7}
    )
    result = await finished(inter)
    assert result_png(result).size == (64, 48)
    fields = {f["name"]: f["value"] for f in result.embeds[0]["fields"]}
    assert fields["Style"] == "Stripes"
    made = parameters(result)
    assert made["styles"] == ["saved:Stripes"] and made["seed"] == 7
    assert made["weights"] == "random" and made["quality"] == "balanced"
    assert {"strength", "size", "steps", "preserve_colors", "blend", "version"} <= set(made)
    assert [b["label"] for b in result.buttons()] == RESULT_BUTTONS


async def test_style_name_is_autocompleted_from_the_servers_saved_styles(world, saved) -> None:
    await saved.add_style(
        world.emu.guild.id, "Starry night", world.emu.member.id, png_bytes(stripes_image(40, 40))
    )
    choices = await world.emu.autocomplete("stylize", "style_name", "st")
    assert [c["value"] for c in choices] == ["Starry night", "Stripes"]
    assert [c["value"] for c in await world.emu.autocomplete("stylize", "style_name", "night")] == [
        "Starry night"
    ]


@pytest.mark.parametrize("artworks", ["both", "neither"])
async def test_exactly_one_of_style_and_style_name(world: World, saved, artworks) -> None:
    options = {"content": world.photo()}
    if artworks == "both":
        options |= {"style": world.painting(), "style_name": "Stripes"}
    inter = await world.emu.invoke_slash("stylize", options)
    await inter.wait_for(lambda rec: lines(rec), timeout=15)
    assert lines(inter) == [
        "Give exactly one artwork: either style (an image) or style_name (a saved style)."
    ]


async def test_an_unknown_style_name_is_refused_in_one_line(world: World, saved) -> None:
    inter = await world.emu.invoke_slash(
        "stylize", {"content": world.photo(), "style_name": "Nope"}
    )
    await inter.wait_for(lambda rec: lines(rec), timeout=15)
    assert lines(inter) == [
        "This server has no saved style called 'Nope'; /styles list shows the ones it has."
    ]


async def test_two_artworks_are_blended_and_the_blend_is_recorded(world: World) -> None:
    emu = world.emu
    second = emu.add_attachment(
        "second.png", png_bytes(gradient_image(40, 40, seed=9)), "image/png", width=40, height=40
    )
    both = await finished(await world.stylize(style2=second, blend=0.25, quality="fast"))
    made = parameters(both)
    assert made["blend"] == 0.25 and len(made["styles"]) == 2
    assert all(s.startswith("sha256:") for s in made["styles"])
    only_first = await finished(await world.stylize(quality="fast"))
    assert parameters(only_first)["blend"] is None
    assert np.abs(pixels(both) - pixels(only_first)).mean() > 1.0  # the second artwork shows


async def test_the_same_parameters_give_the_same_picture_and_variation_another(world) -> None:
    emu = world.emu
    first = await finished(await world.stylize(quality="fast", seed=3))
    again = await finished(await world.stylize(quality="fast", seed=3))
    assert parameters(first) == parameters(again)
    assert np.array_equal(pixels(first), pixels(again))
    press = await emu.press_button(first, button(first, "Variation")["custom_id"], user=emu.member)
    varied = await finished(press)
    assert parameters(varied)["seed"] != 3
    assert {k: v for k, v in parameters(varied).items() if k != "seed"} == {
        k: v for k, v in parameters(first).items() if k != "seed"
    }
    assert np.abs(pixels(varied) - pixels(first)).mean() > 0.5


async def test_the_context_menu_on_a_message_with_two_images(world: World) -> None:
    emu = world.emu
    post = await emu.post_as(emu.member, "look", attachments=[world.photo(), world.painting()])
    inter = await emu.invoke_message_command("Stylize", post)
    result = await finished(inter)
    assert result_png(result).size == (64, 48)


async def test_the_context_menu_on_one_image_offers_the_saved_styles(world: World, saved) -> None:
    emu = world.emu
    post = await emu.post_as(emu.member, "my cat", attachments=[world.photo()])
    inter = await emu.invoke_message_command("Stylize", post)
    await inter.wait_for_original(lambda m: m.components)
    menu = inter.original
    assert menu.ephemeral
    select = next(c for c in menu.iter_components() if c.get("type") == 3)
    assert [o["value"] for o in select["options"]] == ["Stripes"]
    pick = await emu.choose(menu, select["custom_id"], ["Stripes"])
    result = await finished(pick)
    assert parameters(result)["styles"] == ["saved:Stripes"]


async def test_the_context_menu_on_one_image_without_saved_styles_says_how(world) -> None:
    emu = world.emu
    for style in await world.bot.store.styles(emu.guild.id):
        await world.bot.store.remove_style(emu.guild.id, style.name)
    post = await emu.post_as(emu.member, "my dog", attachments=[world.photo()])
    inter = await emu.invoke_message_command("Stylize", post)
    await inter.wait_for(lambda rec: lines(rec), timeout=15)
    assert "save an artwork with /styles add" in lines(inter)[0]
    no_image = await emu.invoke_message_command("Stylize", await emu.post_as(emu.member, "hi"))
    await no_image.wait_for(lambda rec: lines(rec), timeout=15)
    assert lines(no_image) == ["That message has no image; Stylize needs a photo (and an artwork)."]


async def test_a_channel_outside_the_servers_allow_list_is_refused(world: World, rules) -> None:
    emu = world.emu
    elsewhere = next(c for c in emu.guild.text_channels if c.id != emu.channel.id)
    await world.bot.store.add_channel(emu.guild.id, elsewhere.id)
    member = emu.make_member("plain")
    inter = await world.stylize(user=member)
    await inter.wait_for(lambda rec: lines(rec), timeout=15)
    assert lines(inter) == [f"In this server the bot can be used only in <#{elsewhere.id}>."]
    allowed = await emu.invoke_slash(
        "stylize",
        {"content": world.photo(), "style": world.painting()},
        channel=elsewhere,
        user=member,
    )
    await finished(allowed)


async def test_a_role_the_server_requires(world: World, rules) -> None:
    emu = world.emu
    role = emu.guild.everyone
    await rules(role_id=role.id + 1)  # a role nobody has
    inter = await world.stylize(user=emu.make_member("roleless"))
    await inter.wait_for(lambda rec: lines(rec), timeout=15)
    assert lines(inter) == [
        f"In this server only members with the <@&{role.id + 1}> role can use the bot."
    ]


async def test_a_daily_limit_reached_is_told_with_when_it_resets(world: World, rules) -> None:
    emu = world.emu
    member = emu.make_member("daily")
    await rules(daily_limit=1)
    await finished(await world.stylize(user=member, quality="fast"))
    inter = await world.stylize(user=member, quality="fast")
    await inter.wait_for(lambda rec: lines(rec), timeout=15)
    assert lines(inter) == [
        "You have made 1 pictures today, this server's daily limit; try again after 00:00 UTC."
    ]


async def test_the_servers_default_quality_applies_when_the_member_chooses_none(
    world, rules
) -> None:
    await rules(default_quality="fast")
    result = await finished(await world.stylize())
    assert parameters(result)["quality"] == "fast"
    chosen = await finished(await world.stylize(quality="best"))
    assert parameters(chosen)["quality"] == "best"
