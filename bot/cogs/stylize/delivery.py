"""What members see of a job: its status message, its progress, the picture and the fallbacks
when the interaction can no longer be used. The Discord side of `scheduler.Notifier`."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from typing import TYPE_CHECKING

import discord
from PIL import Image

from bot.cogs.stylize.contracts import Undeliverable
from bot.cogs.stylize.lifecycle import RequestState
from bot.cogs.stylize.request import Request, size_cap
from bot.cogs.stylize.results import figures
from bot.cogs.stylize.views import Action, JobViews
from bot.markdown import literal
from nst_engine.clips import sniff_clip_type
from nst_engine.continuation import upscaled_size
from nst_engine.images import encode_image
from nst_engine.options import Progress, StyleResult
from nst_engine.text import clock
from nst_engine.weights import HED, HED_LABEL

if TYPE_CHECKING:
    from bot.client import StyleBot

log = logging.getLogger(__name__)

# Discord allows about five edits of a message per few seconds; one every few seconds is polite.
PROGRESS_EDIT_SECONDS = 3.0
# An interaction token works for 15 minutes; after that we answer in the channel.
TOKEN_LIFETIME = 15 * 60 - 30
# Discord's answer to a webhook call with a stale interaction token.
_INVALID_TOKEN = 401
# Discord's answer to a file over the upload limit (its JSON code is 40005).
_TOO_LARGE = 413
# Discord's answer when a route's rate limit is spent: worth trying again later.
_RATE_LIMITED = 429


class Delivery:
    """Tells members about their jobs through the interaction while its token lives, and through
    the channel (or a DM, for private pictures) once it has expired."""

    def __init__(self, bot: StyleBot, views: JobViews) -> None:
        self.bot = bot
        self.views = views
        self._last_edit: dict[str, float] = {}

    # ---- scheduler.Notifier ------------------------------------------------------------------

    async def queued(self, request: Request, position: int | None, running: int) -> None:
        async with request.edit_lock:
            # Looked up under the lock: a job that started meanwhile keeps its "painting…".
            if request.state is not RequestState.QUEUED or position == request.shown_position:
                return
            request.shown_position = position
            await self.edit_status(request, queued_text(request, position, running), cancel=True)

    async def started(self, request: Request) -> None:
        self._last_edit[request.id] = 0.0
        async with request.edit_lock:
            await self.edit_status(
                request, f"🎨 {request.mention}, {painting(request)} 0%", cancel=True
            )

    async def starting_worker(self, request: Request, seconds: float | None) -> None:
        async with request.edit_lock:
            # Looked up under the lock: a job whose worker is up keeps its "painting…".
            if request.handle is None or request.handle.state != "queued":
                return
            await self.edit_status(request, starting_text(request, seconds), cancel=True)

    async def progress(self, request: Request, progress: Progress) -> None:
        now = time.monotonic()
        last = self._last_edit.get(request.id, 0.0)
        if now - last < PROGRESS_EDIT_SECONDS or progress.step >= progress.total:
            return
        self._last_edit[request.id] = now
        eta = progress.eta
        eta_text = f", about {clock(eta)} left" if eta is not None else ""
        frame = f" frame {progress.frame}/{progress.frames}" if progress.frames > 1 else ""
        doing = painting(request, frame)
        text = (
            f"🎨 {request.mention}, {doing} {request.percent}% "
            f"(step {progress.step}/{progress.total}{eta_text})"
        )
        preview = None
        if progress.preview is not None and not request.resumed:  # see edit_status
            preview = await asyncio.to_thread(encode_image, progress.preview, "png")
        async with request.edit_lock:
            await self.edit_status(request, text, cancel=True, preview=preview)

    async def deliver(self, request: Request, png: bytes, result: StyleResult | None) -> None:
        self._last_edit.pop(request.id, None)
        name = picture_name(png)
        actions: list[Action] = ["stronger", "weaker", "variation"]
        if await self._upscalable(request, name, png):
            actions.append("upscale")
        actions.append("edit")
        if request.params.private:
            actions.append("share")
        elif await self.gallery_for(request.guild_id):
            actions.append("gallery")
        actions.append("delete")
        made = None if result is None else figures(result)
        size = None
        if made is not None:
            size = f"{made.width}×{made.height}"
            if made.frames > 1:
                size += f", {made.frames} frames"
        embed = params_embed(self.bot, request, name, size=size)
        if made is not None:
            embed.add_field(name="Time", value=f"{made.seconds:.1f} s, {made.steps} steps")
        text = f"{request.mention}, here is your picture."
        if request.note:
            text += f" {request.note}"
        try:
            await self._send(request, text, png, embed, self.views(request.id, *actions))
        except discord.HTTPException as err:
            # Too large, the channel gone or closed to the bot, the member's DMs closed: no
            # retry will change Discord's answer, so the job ends here, not at every restart.
            if permanent(err):
                why = refusal(err, private=request.params.private)
                raise Undeliverable(f"{err.status} {err.text}", why) from None
            raise
        async with request.edit_lock:
            if self._token_alive(request) and request.interaction is not None:
                with contextlib.suppress(discord.HTTPException):
                    await request.interaction.delete_original_response()
            else:
                await self._settle_status(request, "✅ Finished: the picture is below.")

    async def ended(self, request: Request, text: str) -> None:
        self._last_edit.pop(request.id, None)
        async with request.edit_lock:
            if await self.edit_status(request, text, cancel=False):
                return
            if await self._settle_status(request, text):
                return
        await self._send(request, text, None, None, None)

    async def _upscalable(self, request: Request, name: str, png: bytes) -> bool:
        """Whether a result gets the Upscale button: a still sent as our PNG (an upscale goes on
        from it) whose longest side is below the upscale cap as it stands now. Read from the
        file itself: a result delivered after a restart has only that."""
        if request.clip is not None or name != "stylized.png":
            return False
        rules = None
        if request.guild_id is not None:
            rules = await self.bot.store.guild_settings(request.guild_id)
        cap = size_cap(self.bot.settings, rules, upscale=True)
        with Image.open(io.BytesIO(png)) as picture:  # reads the header only
            long_side = max(picture.size)
        return upscaled_size(long_side, cap) is not None

    # ---- helpers the commands and buttons share ---------------------------------------------

    async def gallery_for(self, guild_id: int | None) -> int | None:
        if guild_id is None:
            return None
        stored = await self.bot.store.gallery_channel(guild_id)
        return stored or self.bot.settings.nst_gallery_channel

    def _token_alive(self, request: Request) -> bool:
        return (
            request.token is not None
            and not request.token_refused
            and time.time() - request.created < TOKEN_LIFETIME
        )

    async def edit_status(
        self, request: Request, text: str, *, cancel: bool, preview: bytes | None = None
    ) -> bool:
        """Edit the status message (the caller holds its edit lock): through the interaction
        while its token lives, or through the channel for a job recovered after a restart.
        True if it was edited; a lost edit (expired token, deleted message) is not fatal."""
        view = self.views(request.id, "cancel") if cancel else None
        if request.resumed:
            # No interaction survives a restart, but the journal kept the public status
            # message's id. These edits share the channel's rate limit with everyone there, so
            # they carry text and the button only (no previews; the stale one is removed).
            return await self._edit_in_channel(request, text, view)
        if request.interaction is None or not self._token_alive(request):
            return False
        extra = {}
        if preview is not None:  # no new preview: keep the one the member is looking at
            extra["attachments"] = [discord.File(io.BytesIO(preview), "preview.png")]
        try:
            message = await request.interaction.edit_original_response(
                content=text,
                view=view,
                allowed_mentions=discord.AllowedMentions.none(),
                **extra,
            )
        except discord.HTTPException as err:
            if err.status == _INVALID_TOKEN:
                request.token_refused = True
            log.debug("status edit failed: %s", err)
            return False
        if not request.params.private and request.status_message_id is None:
            request.status_message_id = message.id
            await self._journal_status_message(request)
        return True

    async def _journal_status_message(self, request: Request) -> None:
        """Journal the status message's id, so that a restart can still edit it. A journal that
        can't be written is logged, not raised: the job goes on, only that later edit is lost."""
        try:
            await self.bot.store.set_status_message(request.id, request.status_message_id)
        except Exception as err:  # noqa: BLE001 - the job matters more than the column
            log.error("could not journal the status message: %s", err)

    async def _settle_status(self, request: Request, text: str) -> bool:
        """Once the token is gone, edit the status message through the channel, so it no longer
        says "painting…" with a live Cancel button. True if it was edited."""
        return await self._edit_in_channel(request, text, None)

    async def _edit_in_channel(
        self, request: Request, text: str, view: discord.ui.View | None
    ) -> bool:
        """Edit the public status message through the channel, without its preview. True if it
        was edited; a message that is gone (or out of reach) is not tried again."""
        if request.status_message_id is None or request.channel_id is None:
            return False
        channel = self.bot.get_partial_messageable(request.channel_id)
        try:
            await channel.get_partial_message(request.status_message_id).edit(
                content=text,
                view=view,
                attachments=[],
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.HTTPException as err:
            if isinstance(err, (discord.NotFound, discord.Forbidden)):
                request.status_message_id = None
            log.debug("could not edit the status message through the channel: %s", err)
            return False
        return True

    async def _send(self, request: Request, text, png, embed, view) -> None:
        """Through the interaction while its token lives, else in the channel (or a DM).

        Raises discord.Forbidden / NotFound when the member can't be reached at all."""

        def extras() -> dict[str, object]:  # a fresh file each time: a send consumes it
            if png is None:
                return {}
            return {
                "file": discord.File(io.BytesIO(png), picture_name(png)),
                "embed": embed,
                "view": view,
            }

        mentions = discord.AllowedMentions(
            users=[discord.Object(request.user_id)], everyone=False, roles=False
        )
        if self._token_alive(request):
            webhook = (
                request.interaction.followup
                if request.interaction is not None
                else discord.Webhook.partial(request.application_id, request.token, client=self.bot)
            )
            try:
                await webhook.send(
                    text, ephemeral=request.params.private, allowed_mentions=mentions, **extras()
                )
                return
            except discord.NotFound:
                # The interaction's webhook is gone (the app was re-added, the token revoked).
                log.warning("the interaction's webhook is gone; answering in the channel")
            except discord.HTTPException as err:
                if err.status != _INVALID_TOKEN:
                    raise
                request.token_refused = True
                log.info("the interaction token has expired; answering in the channel")
        if request.params.private:
            user = self.bot.get_user(request.user_id) or await self.bot.fetch_user(request.user_id)
            await user.send(text, **extras())
            return
        channel = self.bot.get_channel(request.channel_id) or await self.bot.fetch_channel(
            request.channel_id
        )
        await channel.send(text, allowed_mentions=mentions, **extras())


def permanent(err: discord.HTTPException) -> bool:
    """Whether Discord's refusal is for good: any 4xx but a rate limit (a 5xx or a 429 may
    pass if tried later)."""
    return 400 <= err.status < 500 and err.status != _RATE_LIMITED


def refusal(err: discord.HTTPException, *, private: bool = False) -> str:
    """Why a picture could not be delivered, in the member's words (ends "painted but …")."""
    if err.status == _TOO_LARGE:
        return "Discord refused it as too large for this channel; try a smaller size"
    if isinstance(err, (discord.Forbidden, discord.NotFound)):
        if private:
            return "the bot can't send it to you (your DMs are closed to it)"
        return "the bot can't post it there any more (the channel is gone or closed to the bot)"
    return f"Discord refused it ({err.status} {err.text or 'no reason given'})"


def queued_text(request: Request, position: int | None, running: int) -> str:
    ahead = (position or 1) - 1 + running
    if request.resumed:
        lead = f"🔁 {request.mention}, the bot restarted before your picture was finished"
        if ahead == 0:
            return f"{lead}; painting it again next."
        return f"{lead}; it is queued again at position {position} ({running} painting now)."
    if ahead == 0:
        return f"🎨 {request.mention}, your picture is next: starting now."
    return (
        f"🕒 {request.mention}, your picture is queued at position {position} "
        f"({running} painting now)."
    )


def painting(request: Request, what: str = "") -> str:
    """What the status says while the picture is painted ("painting frame 2/5…"), with
    "again" after a restart."""
    return f"painting{what} again…" if request.resumed else f"painting{what}…"


def starting_text(request: Request, seconds: float | None) -> str:
    """The status while the job waits for a worker being started for it."""
    about = "" if seconds is None else f" (about {max(1, round(seconds))} s)"
    return f"⏳ {request.mention}, starting a worker…{about}"


def picture_name(data: bytes) -> str:
    """The file name a result is posted under: ``stylized.png``, ``.gif``, ``.webp`` or
    ``.mp4``."""
    return f"stylized.{sniff_clip_type(data[:64]) or 'png'}"


def params_embed(
    bot: StyleBot, request: Request, name: str = "stylized.png", size: str | None = None
) -> discord.Embed:
    """The member's options, and the weights named when they are not ImageNet's."""
    p = request.params
    embed = discord.Embed(title="Stylized", colour=discord.Colour.blurple())
    embed.set_image(url=f"attachment://{name}")
    embed.add_field(name="Strength", value=f"{p.strength:g}")
    embed.add_field(name="Quality", value=p.quality)
    embed.add_field(name="Size", value=size or f"up to {p.size}")
    embed.add_field(name="Colours", value="photo's" if p.preserve_colors else "artwork's")
    embed.add_field(name="Seed", value=str(p.seed))
    if p.style_name:
        embed.add_field(name="Style", value=literal(p.style_name))
    if request.style2 is not None:
        embed.add_field(name="Blend", value=f"{1 - p.blend:g} first, {p.blend:g} second")
    footer = f"job {request.id}"
    if bot.settings.nst_weights == "random":
        footer += " · random VGG19 weights: NOT a real style transfer (test mode)"
    elif bot.settings.nst_weights == HED:
        footer += f" · {HED_LABEL}"
    embed.set_footer(text=footer)
    return embed
