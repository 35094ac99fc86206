"""Saved styles under a hostile member (issue 20, items 5 and 11), each bot of its own: an older
journal's look-alike names brought up to date on start, a per-member rate on /styles add, and
one decode budget for the images the bot decodes itself."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
import unicodedata

import discord
import pytest

from bot.decoding import PixelBudget
from tests.bot.harness import png_bytes, running_bot
from tests.support import gradient_image

pytestmark = pytest.mark.asyncio


def artwork(emu, width: int = 16, height: int = 12) -> dict:
    data = png_bytes(gradient_image(width, height, seed=5))
    return emu.add_attachment("art.png", data, "image/png", width=width, height=height)


async def answer(inter) -> str:
    return (await inter.wait_for_original(lambda m: m.content, timeout=60)).content


def old_rows(data_dir, guild_id: int, names: list[str]) -> None:
    """Styles as an older bot kept them: the name as typed, the key only case-folded."""
    png = png_bytes(gradient_image(8, 8))
    with sqlite3.connect(data_dir / "jobs.sqlite3") as db:
        for n, name in enumerate(names):
            sha = hashlib.sha256(png + bytes([n])).hexdigest()
            db.execute(
                "INSERT INTO styles VALUES (?,?,?,?,?,?,?)",
                (guild_id, name.casefold(), name, 1, time.time() + n, sha, png),
            )


async def test_an_older_journals_look_alike_names_keep_the_first_and_say_so(tmp_path) -> None:
    nfc, nfd = unicodedata.normalize("NFC", "Café"), unicodedata.normalize("NFD", "Café")
    async with running_bot(tmp_path) as world:
        emu, store = world.emu, world.bot.store
        await emu.wait_for_commands("styles", guild=emu.guild)
        old_rows(
            tmp_path,
            emu.guild.id,
            ["gravel", "gravel\u200b", nfc, nfd, "\u200b\u200b", "ｍｏｎｅｔ"],
        )
        store.close()  # as a restart does: the next use opens the journal again
        names = await store.style_names(emu.guild.id)
        assert names[:3] == ["Café", "gravel", "monet"] and len(names) == 4, names
        assert names[3].startswith("unnamed "), names
        logged = "\n".join(world.logs.lines)
        assert "removed saved style 'gravel\\u200b'" in logged, logged
        assert f"removed saved style {nfd!r}" in logged
        assert "is now called 'monet'" in logged
        # Each name is now what members type: the plain one finds the full-width one's art.
        admin = emu.make_member("styles-admin", permissions=discord.Permissions(manage_guild=True))
        inter = await emu.invoke_slash("styles remove", {"name": "MONET"}, user=admin)
        assert await answer(inter) == "Removed the style **monet**."


async def test_styles_add_has_a_per_member_rate(tmp_path) -> None:
    async with running_bot(tmp_path, nst_member_rate=2) as world:
        emu = world.emu
        await emu.wait_for_commands("styles", guild=emu.guild)
        burst = [
            await emu.invoke_slash("styles add", {"name": f"burst {n}", "image": artwork(emu)})
            for n in range(3)
        ]
        lines = [await answer(inter) for inter in burst]
        assert sum(line.startswith("Saved the style") for line in lines) == 2, lines
        refused = [line for line in lines if not line.startswith("Saved the style")]
        assert refused[0].startswith("Slow down: you may save 2 styles per minute; try again in ")
        assert len(await world.bot.store.style_names(emu.guild.id)) == 2
        other = await emu.invoke_slash(
            "styles add", {"name": "another member", "image": artwork(emu)}, user=emu.users["bob"]
        )
        assert (await answer(other)).startswith("Saved the style")


async def test_simultaneous_styles_share_one_decode_budget(tmp_path) -> None:
    async with running_bot(tmp_path) as world:
        emu = world.emu
        await emu.wait_for_commands("styles", guild=emu.guild)
        # Room for one 800×600 artwork at a time (the bot's own budget is 40 megapixels).
        world.bot.decode_budget = budget = PixelBudget(600_000)
        adds = [
            await emu.invoke_slash(
                "styles add", {"name": f"big {n}", "image": artwork(emu, 800, 600)}
            )
            for n in range(4)
        ]
        lines = [await answer(inter) for inter in adds]
        assert all(line.startswith("Saved the style") for line in lines), lines
        assert budget.peak == 480_000 and budget.held == 0


async def test_the_budget_lets_requests_in_order_and_survives_cancellation() -> None:
    budget = PixelBudget(10)
    order: list[str] = []
    release = asyncio.Event()

    async def use(name: str, pixels: int) -> None:
        async with budget.hold(pixels):
            order.append(name)
            await release.wait()

    first = asyncio.create_task(use("first", 8))
    await asyncio.sleep(0)
    big = asyncio.create_task(use("big", 50))  # more than the whole budget: waits for all
    small = asyncio.create_task(use("small", 1))  # fits now, but arrived after big
    await asyncio.sleep(0.01)
    assert order == ["first"] and budget.held == 8
    big.cancel()
    await asyncio.sleep(0.01)
    assert order == ["first", "small"] and budget.held == 9
    release.set()
    await asyncio.gather(first, small)
    assert budget.held == 0 and budget.peak == 9
    with pytest.raises(asyncio.CancelledError):
        await big
