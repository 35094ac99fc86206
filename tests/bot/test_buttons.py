"""The result's buttons: Share, Delete, Post to gallery, and any button pressed twice quickly,
through the emulator."""

from __future__ import annotations

import discord
import pytest

from tests.bot.harness import World, button, finished, result_png
from tests.bot.test_hostile_admin import failures, journaled

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_a_private_result_is_ephemeral_and_share_posts_it_publicly(world: World) -> None:
    emu = world.emu
    inter = await world.stylize(private=True)
    result = await finished(inter)
    assert result.ephemeral
    assert [b["label"] for b in result.buttons()] == [
        "Stronger",
        "Weaker",
        "Variation",
        "Upscale",
        "Edit",
        "Share",
        "Delete",
    ]
    press = await emu.press_button(result, button(result, "Share")["custom_id"], user=inter.user)
    await press.wait_for(lambda rec: any(m.files and not m.ephemeral for m in rec.followups))
    shared = next(m for m in press.followups if m.files)
    assert f"Shared by <@{inter.user.id}>" in shared.content
    assert result_png(shared).size == (64, 48)


async def test_delete_is_for_the_requester_or_moderators(world: World) -> None:
    emu = world.emu
    inter = await world.stylize()
    result = await finished(inter)
    delete_id = button(result, "Delete")["custom_id"]
    stranger = emu.make_member("passer-by")
    refused = await emu.press_button(result, delete_id, user=stranger)
    await refused.wait_for(lambda rec: rec.responded)
    assert "Only the member who asked for this picture can delete it" in refused.messages[0].content
    assert not result.deleted
    moderator = emu.make_member("mod", permissions=discord.Permissions(manage_messages=True))
    press = await emu.press_button(result, delete_id, user=moderator)
    await press.wait_for(lambda rec: result.deleted)


async def test_post_to_gallery_cross_posts_with_credit_and_a_link(world: World) -> None:
    emu = world.emu
    gallery = next(c for c in emu.guild.text_channels if c.name == "style-lab")
    admin = emu.make_member("admin", permissions=discord.Permissions(manage_guild=True))
    setting = await emu.invoke_slash("gallery set", {"channel": gallery}, user=admin)
    await setting.wait_for(lambda rec: rec.responded)
    assert "can now be posted to" in setting.original.content
    inter = await world.stylize()
    result = await finished(inter)
    press = await emu.press_button(
        result, button(result, "Post to gallery")["custom_id"], user=inter.user
    )
    posted = await emu.wait_for_message(lambda m: m.files, channel=gallery, timeout=15)
    assert f"By <@{inter.user.id}>" in posted.content
    assert f"/channels/{emu.guild.id}/" in posted.content  # the link back to the result
    await press.wait_for(lambda rec: any("Posted to" in m.content for m in rec.messages))
    clear = await emu.invoke_slash("gallery clear", {}, user=admin)
    await clear.wait_for(lambda rec: rec.responded)


@pytest.mark.parametrize("label", ["Stronger", "Weaker", "Variation", "Upscale"])
async def test_a_button_pressed_twice_quickly_makes_one_job(world: World, label: str) -> None:
    emu, logged = world.emu, len(failures(world))
    inter = await world.stylize(quality="fast")
    result = await finished(inter)
    jobs = journaled(world)
    custom_id = button(result, label)["custom_id"]
    presses = [await emu.press_button(result, custom_id, user=inter.user) for _ in range(2)]
    await emu.wait_until(
        lambda: any(p.ephemeral for p in presses), timeout=30, what="a press refused"
    )
    (refused,) = [p for p in presses if p.ephemeral]
    (taken,) = [p for p in presses if p is not refused]
    assert [m.content for m in refused.messages] == [
        f"This picture's {label} is already queued or painting; it will be posted here."
    ]
    assert (await finished(taken)).files and journaled(world) - jobs == 1
    assert not any(m.files for m in refused.followups)
    # Once that picture is here, the button works again.
    again = await emu.press_button(result, custom_id, user=inter.user)
    assert (await finished(again)).files and journaled(world) - jobs == 2
    assert failures(world)[logged:] == []
