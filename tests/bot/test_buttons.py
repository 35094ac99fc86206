"""The result's buttons: Share, Delete, Post to gallery, through the emulator."""

from __future__ import annotations

import discord
import pytest

from tests.bot.harness import World, button, finished, result_png

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
