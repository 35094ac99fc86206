"""Taking a request in: admission (shutdown, rates, caps), the download and checks, and the
journal write that makes it a job. Shared by /stylize and the re-run buttons."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import discord
import numpy as np
from discord import app_commands
from discord.ext import commands

from bot import access, attachments
from bot.cogs.stylize.continuing import Continuing
from bot.cogs.stylize.delivery import Delivery, queued_text
from bot.cogs.stylize.errors import DailyLimit, TooFast, UserFacingError
from bot.cogs.stylize.request import Params, Request, size_cap
from bot.cogs.stylize.scheduler import Scheduler
from bot.logs import job_id_var
from bot.store import GuildSettings
from nst_engine import provenance
from nst_engine.clips import Clip

if TYPE_CHECKING:
    from bot.client import StyleBot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inputs:
    """What a request loads once its place is held: the images, and their bytes as uploaded
    (journaled, so re-runs and restarts need no download)."""

    content: np.ndarray
    style: np.ndarray
    content_raw: bytes
    style_raw: bytes
    style2: np.ndarray | None = None
    style2_raw: bytes | None = None
    # What each artwork was, for the picture's parameters (see nst_engine.provenance).
    artworks: tuple[str, ...] = ()
    # An animated content picture (`content` is then its first frame).
    clip: Clip | None = None
    # The finished picture a Stronger, Weaker or Upscale goes on from; None: a fresh run.
    parent: Continuing | None = None

    @classmethod
    def of(
        cls,
        content: np.ndarray | Clip,
        style: np.ndarray,
        content_raw: bytes,
        style_raw: bytes,
        **more,
    ) -> Inputs:
        """Inputs whose content may be a still photo or an animation."""
        if isinstance(content, Clip):
            return cls(content.frames[0], style, content_raw, style_raw, clip=content, **more)
        return cls(content, style, content_raw, style_raw, **more)


@dataclass
class Place:
    """What a request holds from its arrival until it is a job or refused (see `Intake.place`)."""

    # The server's rules as `admit` found them (None until then).
    rules: GuildSettings | None = None
    # The UTC day a picture was counted on under the server's daily limit (None: none counted).
    day: str | None = None


RATE_WINDOW = 60.0


class Rates:
    """Requests a member and a server may start per minute (discord.py's cooldown buckets).

    Only accepted work counts: `check` before anything is done, `spend` once a job is queued."""

    def __init__(self, per_member: int, per_guild: int) -> None:
        self._buckets = [
            (_mapping(per_member), lambda i: i.user.id, "you"),
            (_mapping(per_guild), lambda i: i.guild_id, "this server"),
        ]

    def check(self, interaction: discord.Interaction) -> None:
        """Raises TooFast when the member or their server has used up this minute's starts."""
        for mapping, key, who in self._buckets:
            if mapping is None or key(interaction) is None:
                continue
            bucket = mapping.get_bucket(key(interaction))
            if wait := bucket.get_retry_after():
                raise TooFast(who, bucket.rate, "minute", wait)

    def spend(self, interaction: discord.Interaction) -> None:
        for mapping, key, _who in self._buckets:
            if mapping is not None and key(interaction) is not None:
                mapping.get_bucket(key(interaction)).update_rate_limit()


def _mapping(rate: int) -> commands.CooldownMapping | None:
    if not rate:
        return None
    return commands.CooldownMapping(app_commands.Cooldown(rate, RATE_WINDOW), lambda key: key)


class Intake:
    """Admits, checks and journals requests, then hands them to the scheduler."""

    def __init__(self, bot: StyleBot, scheduler: Scheduler, delivery: Delivery) -> None:
        self.bot = bot
        self.scheduler = scheduler
        self.delivery = delivery
        settings = bot.settings
        self.rates = Rates(settings.nst_member_rate, settings.nst_guild_rate)
        self._hosts = attachments.allowed_hosts(settings.discord_api_base)
        # What each request holds from its arrival until it is a job, by interaction id (see
        # `place`).
        self._places: dict[int, Place] = {}

    async def download(self, which: str, attachment: discord.Attachment) -> bytes:
        settings = self.bot.settings
        data = await attachments.fetch(
            self.bot.http_session,
            which,
            attachment,
            max_bytes=settings.nst_max_attachment_bytes,
            hosts=self._hosts,
            timeout=settings.nst_download_timeout,
        )
        attachments.check_bytes(which, attachment, data, videos=True)
        return data

    async def decode_inputs(
        self,
        content_raw: bytes,
        style_raw: bytes,
        style2_raw: bytes | None,
        *,
        saved_name: str | None = None,
    ) -> Inputs:
        content = await self.decode_content(content_raw)
        style = await self.decode("style", style_raw)
        style2 = None
        labels = [f"saved:{saved_name}" if saved_name else provenance.artwork_label(style_raw)]
        if style2_raw is not None:
            style2 = await self.decode("style2", style2_raw)
            labels.append(provenance.artwork_label(style2_raw))
        return Inputs.of(
            content,
            style,
            content_raw,
            style_raw,
            style2=style2,
            style2_raw=style2_raw,
            artworks=tuple(labels),
        )

    async def decode_content(self, data: bytes) -> np.ndarray | Clip:
        """The photo, or an animated GIF or WebP or a video (up to NST_MAX_FRAMES frames and
        NST_MAX_VIDEO_SECONDS), decoded in the bot's shared budget (a video in a child process,
        its frames no larger than NST_MAX_SIZE)."""
        settings = self.bot.settings
        return await attachments.decode_content(
            data,
            max_bytes=settings.nst_max_attachment_bytes,
            max_frames=settings.nst_max_frames,
            max_seconds=settings.nst_max_video_seconds,
            max_side=settings.nst_max_size,
            budget=self.bot.decode_budget,
        )

    async def decode(self, which: str, data: bytes) -> np.ndarray:
        """An artwork, decoded in the bot's shared budget."""
        return await attachments.decode(
            which,
            data,
            max_bytes=self.bot.settings.nst_max_attachment_bytes,
            budget=self.bot.decode_budget,
        )

    async def admit(self, interaction: discord.Interaction) -> GuildSettings:
        """In the member's `place`: refuse new work while shutting down, past a member's or a
        server's rate, or against the server's own rules as they stand now (channels, role,
        pictures a day, whose place is held from here); the server's settings."""
        place = self._place_of(interaction, "admit")
        self.scheduler.admit()
        self.rates.check(interaction)
        if interaction.guild_id is None:
            place.rules = GuildSettings()
            return place.rules
        rules = await self.bot.store.guild_settings(interaction.guild_id)
        access.require_may_use(interaction, rules)
        if rules.daily_limit and place.day is None:
            place.day = await self.bot.store.hold_picture(
                interaction.guild_id, interaction.user.id, rules.daily_limit
            )
            if place.day is None:
                raise DailyLimit(rules.daily_limit)
        place.rules = rules
        return rules

    def size_cap(self, rules: GuildSettings | None, *, upscale: bool = False) -> int:
        """The longest side a picture may have under ``rules`` (`request.size_cap`)."""
        return size_cap(self.bot.settings, rules, upscale=upscale)

    @contextlib.asynccontextmanager
    async def place(self, interaction: discord.Interaction) -> AsyncIterator[None]:
        """Hold the member's place in the queue from the moment the request arrives, before
        anything is awaited, so that of a burst it is the latest request that is refused over
        the caps (raises MemberQueueFull or QueueFull), and no burst slips past them while we
        check and download; `admit` adds the day's place under a daily limit. `take` turns
        the places into the queued job; otherwise they are given back when the block ends."""
        self.scheduler.queue.reserve(interaction.user.id)
        self._places[interaction.id] = Place()
        try:
            yield
        finally:
            held = self._places.pop(interaction.id, None)
            if held is not None:
                self.scheduler.queue.release(interaction.user.id)
                await self._give_back_day(interaction, held)

    async def _give_back_day(self, interaction: discord.Interaction, held: Place) -> None:
        if held.day is None or interaction.guild_id is None:
            return
        try:
            await self.bot.store.give_back_picture(
                interaction.guild_id, interaction.user.id, held.day
            )
        except Exception as err:  # noqa: BLE001 - the member loses one picture of the day
            log.error("could not give back a refused request's picture of the day: %s", err)

    def _place_of(self, interaction: discord.Interaction, step: str) -> Place:
        place = self._places.get(interaction.id)
        if place is None:
            raise RuntimeError(f"Intake.{step} needs the member's place (Intake.place)")
        return place

    async def take(
        self,
        interaction: discord.Interaction,
        params: Params,
        load: Callable[[], Awaitable[Inputs]],
        *,
        upscale: bool = False,
        claimed_by: tuple[str, str] | None = None,
    ) -> Request | None:
        """In the member's `place`, once admitted: answer "thinking…", load the inputs and queue
        the job (returned); a problem with the inputs is told to the member in one line and
        nothing is queued (None). The size is capped by the rules as `admit` found them, so a
        re-run or a pick from the menu obeys the server's cap as it stands when pressed, not as
        it was (an ``upscale``, the upscale cap). ``claimed_by``: the button press a re-run is
        journaled with (`Request.claimed_by`)."""
        place = self._place_of(interaction, "take")
        params = params.checked(max_size=self.size_cap(place.rules, upscale=upscale))
        try:
            await interaction.response.defer(thinking=True, ephemeral=params.private)
            inputs = await load()
        except UserFacingError as err:
            await self._refuse_after_defer(interaction, str(err))
            return None
        params = replace(params, artworks=inputs.artworks)
        request = Request.from_interaction(
            interaction,
            params,
            inputs.content,
            inputs.style,
            inputs.style2,
            inputs.clip,
            inputs.parent,
            claimed_by,
        )
        job_id_var.set(request.id)
        # Journaled before the member hears it is queued: a restart will still run it.
        await self.bot.store.add(
            request.to_record(),
            inputs.content_raw,
            inputs.style_raw,
            inputs.style2_raw,
            counted=place.day is not None,
        )
        self.rates.spend(interaction)
        del self._places[interaction.id]  # the places are the job's now
        position = self.scheduler.enqueue(request)
        log.info("queued for user %s at position %s: %s", interaction.user.id, position, params)
        async with request.edit_lock:
            await self.delivery.edit_status(
                request, queued_text(request, position, len(self.scheduler.running)), cancel=True
            )
        return request

    async def _refuse_after_defer(self, interaction: discord.Interaction, message: str) -> None:
        """Replace the public 'thinking…' with an error only the member sees."""
        self.bot.metrics.rejected.inc()
        with contextlib.suppress(discord.HTTPException):
            await interaction.delete_original_response()
        await interaction.followup.send(message, ephemeral=True)
