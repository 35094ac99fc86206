"""/styles add, remove and list: artworks a server saves under a name, for everyone in it."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import TYPE_CHECKING

import discord
import numpy as np
from discord import app_commands
from discord.ext import commands
from PIL import Image, ImageDraw

from bot import access, attachments
from bot.cogs.server.errors import NotYourStyle, SavingTooFast, UnknownStyle
from bot.errors import BadAttachment
from bot.markdown import literal
from bot.store import (
    MAX_STYLES,
    STYLE_NAME_LENGTH,
    SavedStyle,
    StyleExists,
    TooManyStyles,
    style_key,
)
from bot.store import style_name as checked_name
from nst_engine.errors import ImageError
from nst_engine.images import decode_image, encode_image, output_size, resize

if TYPE_CHECKING:
    from bot.client import StyleBot

log = logging.getLogger(__name__)

# A saved artwork is kept at most this many pixels on its longest side: enough for the engine
# (which works at up to NST_MAX_SIZE on the photo, and at most this on the style), small in the
# database.
STYLE_MAX_SIDE = 512
# /styles list: styles per message (each message has one contact sheet of their thumbnails).
PAGE = 25
SHEET_COLUMNS = 5
THUMB = 96
# Saves per member per minute are NST_MEMBER_RATE, as for /stylize: each one is a download and
# a decode of up to NST_MAX_ATTACHMENT_BYTES.
RATE_WINDOW = 60.0
_LABEL = 18
_PAD = 8

NO_PINGS = discord.AllowedMentions.none()


class StylesCog(commands.Cog, name="Styles"):
    """Artworks a server keeps under a name."""

    def __init__(self, bot: StyleBot) -> None:
        self.bot = bot
        self._hosts = attachments.allowed_hosts(bot.settings.discord_api_base)
        rate = bot.settings.nst_member_rate
        self._saves = (
            commands.CooldownMapping(app_commands.Cooldown(rate, RATE_WINDOW), lambda key: key)
            if rate
            else None
        )

    styles = app_commands.Group(
        name="styles",
        description="Artworks this server keeps by name",
        guild_only=True,
        allowed_contexts=access.SERVER_ONLY,
    )

    @styles.command(name="add")
    @app_commands.describe(
        name=f"What to call it, 1 to {STYLE_NAME_LENGTH} characters, unique in this server",
        image="The artwork (PNG, JPEG, GIF, WebP, BMP or TIFF)",
    )
    async def styles_add(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, STYLE_NAME_LENGTH],
        image: discord.Attachment,
    ) -> None:
        """Save an artwork for this server under a name."""
        name = checked_name(name)  # also refuses a forged name, before anything is fetched
        store, settings = self.bot.store, self.bot.settings
        max_bytes = settings.nst_max_attachment_bytes
        attachments.check_metadata("image", image, max_bytes=max_bytes)
        await interaction.response.defer(ephemeral=True, thinking=True)
        access.require_may_use(interaction, await store.guild_settings(interaction.guild_id))
        # The store checks both again when it saves; here they spare a pointless download.
        names = await store.style_names(interaction.guild_id)
        if any(style_key(n) == style_key(name) for n in names):
            raise StyleExists(name)
        if len(names) >= MAX_STYLES:
            raise TooManyStyles()
        self._spend_a_save(interaction.user.id)
        data = await attachments.fetch(
            self.bot.http_session,
            "image",
            image,
            max_bytes=max_bytes,
            hosts=self._hosts,
            timeout=settings.nst_download_timeout,
        )
        attachments.check_bytes("image", image, data)
        # The full-size pixels live until the PNG is made: the budget covers both.
        budget = self.bot.decode_budget
        async with budget.decoding(data):
            png = await budget.run(style_png, data, max_bytes=max_bytes)
        saved = await store.add_style(interaction.guild_id, name, interaction.user.id, png)
        log.info(
            "guild %s: user %s saved style %r (%d bytes, sha256 %s)",
            interaction.guild_id,
            interaction.user.id,
            saved.name,
            len(png),
            saved.sha256[:12],
        )
        height, width = _png_size(png)
        await interaction.followup.send(
            f"Saved the style **{literal(saved.name)}** for this server "
            f"({width}×{height}); anyone here can use it with `/stylize style_name:`.",
            file=discord.File(io.BytesIO(png), filename="style.png"),
            ephemeral=True,
        )

    def _spend_a_save(self, user_id: int) -> None:
        """Count a save that is about to download (a burst counts in full), or raise
        SavingTooFast when the member has used up this minute's."""
        if self._saves is None:
            return
        bucket = self._saves.get_bucket(user_id)
        if wait := bucket.update_rate_limit():
            raise SavingTooFast(bucket.rate, wait)

    @styles.command(name="remove")
    @app_commands.describe(name="The saved style to remove")
    async def styles_remove(
        self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 100]
    ) -> None:
        """Remove a saved style (yours, or any with Manage Server)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        store = self.bot.store
        saved = await store.style(interaction.guild_id, name)
        if saved is None:
            raise UnknownStyle(name)
        if saved.user_id != interaction.user.id and not access.manages_server(interaction):
            raise NotYourStyle(saved.name)
        if not await store.remove_style(interaction.guild_id, saved.name):
            raise UnknownStyle(name)  # removed by someone else meanwhile
        log.info(
            "guild %s: user %s removed style %r",
            interaction.guild_id,
            interaction.user.id,
            saved.name,
        )
        await interaction.followup.send(
            f"Removed the style **{literal(saved.name)}**.", ephemeral=True
        )

    @styles_remove.autocomplete("name")
    async def _style_names(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        wanted = style_key(current)
        names = await self.bot.store.style_names(interaction.guild_id)
        return [app_commands.Choice(name=n, value=n) for n in names if wanted in style_key(n)][:25]

    @styles.command(name="list")
    async def styles_list(self, interaction: discord.Interaction) -> None:
        """Show this server's saved styles, who saved them, and their thumbnails."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        saved = await self.bot.store.styles(interaction.guild_id)
        if not saved:
            await interaction.followup.send(
                "This server has no saved styles yet; save one with `/styles add`.",
                ephemeral=True,
            )
            return
        for start in range(0, len(saved), PAGE):
            page = saved[start : start + PAGE]
            sheet = await asyncio.to_thread(contact_sheet, page, start + 1)
            filename = f"styles-{start // PAGE + 1}.png"
            embed = discord.Embed(
                title=f"Saved styles {start + 1}–{start + len(page)} of {len(saved)} "
                f"(at most {MAX_STYLES})",
                description="\n".join(
                    f"{start + i}. **{literal(s.name)}** — <@{s.user_id}>"
                    for i, s in enumerate(page, 1)
                ),
            )
            embed.set_image(url=f"attachment://{filename}")
            await interaction.followup.send(
                embed=embed,
                file=discord.File(io.BytesIO(sheet), filename=filename),
                ephemeral=True,
                allowed_mentions=NO_PINGS,
            )


def style_png(data: bytes, *, max_bytes: int) -> bytes:
    """A member's upload as a saved style's PNG (`bounded_png`); BadAttachment if it can't be
    decoded. The full-size pixels never leave this call."""
    try:
        pixels = decode_image(data, max_bytes=max_bytes)
    except ImageError as err:
        raise BadAttachment("image", str(err)) from None
    return bounded_png(pixels)


def bounded_png(image: np.ndarray) -> bytes:
    """A saved style's form: ``uint8`` ``(H, W, 3)`` re-encoded as PNG, shrunk (never enlarged)
    to at most STYLE_MAX_SIDE pixels on its longest side."""
    height, width = image.shape[:2]
    new_width, new_height = output_size(width, height, STYLE_MAX_SIDE, min_side=1)
    return encode_image(resize(image, new_width, new_height), "png")


def contact_sheet(styles: list[SavedStyle], first: int) -> bytes:
    """One PNG of the styles' thumbnails in a grid, each numbered from ``first`` as the list
    beside it numbers them."""
    rows = -(-len(styles) // SHEET_COLUMNS)
    columns = min(len(styles), SHEET_COLUMNS)
    cell_w, cell_h = THUMB + _PAD, THUMB + _LABEL + _PAD
    sheet = Image.new("RGB", (columns * cell_w + _PAD, rows * cell_h + _PAD), (43, 45, 49))
    draw = ImageDraw.Draw(sheet)
    for i, style in enumerate(styles):
        x = _PAD + (i % SHEET_COLUMNS) * cell_w
        y = _PAD + (i // SHEET_COLUMNS) * cell_h
        draw.text((x, y + 2), str(first + i), fill=(230, 230, 230))
        pixels = decode_image(style.image)
        height, width = pixels.shape[:2]
        thumb_w, thumb_h = output_size(width, height, THUMB, min_side=1)
        thumb = Image.fromarray(resize(pixels, thumb_w, thumb_h))
        sheet.paste(thumb, (x + (THUMB - thumb_w) // 2, y + _LABEL + (THUMB - thumb_h) // 2))
    out = io.BytesIO()
    sheet.save(out, "PNG")
    return out.getvalue()


def _png_size(png: bytes) -> tuple[int, int]:
    """(height, width) from a PNG's header."""
    return int.from_bytes(png[20:24], "big"), int.from_bytes(png[16:20], "big")
