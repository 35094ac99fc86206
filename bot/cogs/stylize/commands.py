"""/stylize, /queue and /gallery: the commands members use. Thin: they parse and check the
options, then hand over to the intake; the scheduler, delivery and buttons do the rest."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands, tasks

from bot import access, attachments
from bot.cogs.stylize.buttons import Buttons
from bot.cogs.stylize.delivery import PROGRESS_EDIT_SECONDS, Delivery
from bot.cogs.stylize.engine_job import Limits
from bot.cogs.stylize.errors import ArtworkChoice, NoImage, NoSavedStyles, UnknownStyle
from bot.cogs.stylize.intake import Inputs, Intake
from bot.cogs.stylize.lifecycle import RequestState
from bot.cogs.stylize.request import Params, Quality
from bot.cogs.stylize.scheduler import Scheduler
from bot.cogs.stylize.views import Action, JobViews, StylePicker
from bot.store import GuildSettings, SavedStyle, style_key

if TYPE_CHECKING:
    from bot.client import StyleBot

log = logging.getLogger(__name__)

GALLERY = "choose this server's gallery"


class StylizeCog(commands.Cog, name="Stylize"):
    """Repaint a photo in the style of an artwork."""

    def __init__(self, bot: StyleBot) -> None:
        self.bot = bot
        settings = bot.settings
        # This extension's persistent buttons; `setup` registers their type.
        self.views = JobViews(self._press)
        self.delivery = Delivery(bot, self.views)

        # A restart's journaled jobs are decoded as new ones are: in the bot's shared budget.
        async def decode(data: bytes):
            return await self.intake.decode("style", data)

        async def decode_content(data: bytes):
            return await self.intake.decode_content(data)

        self.scheduler = Scheduler(
            bot.pool,
            bot.store,
            bot.metrics,
            self.delivery,
            Limits(
                settings.nst_max_steps,
                settings.nst_job_timeout,
                settings.nst_precision,
                max_clip_pixels=settings.nst_max_clip_pixels,
            ),
            queue_limit=settings.nst_queue_limit,
            member_limit=settings.nst_user_limit,
            decode=decode,
            decode_content=decode_content,
        )
        self.intake = Intake(bot, self.scheduler, self.delivery)
        self.buttons = Buttons(bot, self.scheduler, self.intake, self.delivery, self.views)
        self.menu = app_commands.ContextMenu(name="Stylize", callback=self.stylize_message)
        bot.metrics.track(
            queued=lambda: len(self.scheduler.queue), running=lambda: len(self.scheduler.running)
        )
        bot.metrics.track_workers(bot.pool)

    async def cog_load(self) -> None:
        # Context menus can't be declared in a cog; this one is added to the tree by hand.
        self.bot.tree.add_command(self.menu)
        self.scheduler.start()
        self.show_positions.start()
        self.prune.change_interval(seconds=min(3600.0, max(self._keep_seconds / 4, 1.0)))
        self.prune.start()
        await self.scheduler.recover()
        self.buttons.reclaim(self.scheduler.jobs.values())

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)
        self.show_positions.cancel()
        self.prune.cancel()
        await self.scheduler.close()

    async def _press(self, interaction: discord.Interaction, action: Action, job_id: str) -> None:
        # A press the gateway replays never gets here (see JobButton.interaction_check).
        await self.buttons.press(interaction, action, job_id)

    # The bot's shutdown (see bot.client.StyleBot.drain).
    def stop_accepting(self) -> None:
        self.scheduler.stop_accepting()

    async def drain(self, grace: float) -> None:
        await self.scheduler.drain(grace)

    # ---- commands -------------------------------------------------------------------------

    @app_commands.command(name="stylize")
    @app_commands.describe(
        content="The photo to repaint",
        style="The artwork whose style to use (or give style_name)",
        style_name="A style saved in this server with /styles add (instead of style)",
        style2="A second artwork to blend with the first (optional)",
        blend="How much of the second artwork: 0 … 1 (default 0.5)",
        strength="0 = barely styled … 10 = style dominates (default 5)",
        quality="fast, balanced or best (default: the server's choice, else balanced)",
        size="Longest side of the result in pixels (default 512)",
        preserve_colors="Keep the photo's colours and transfer only the texture (default off)",
        seed="Any number; the same inputs and seed give the same picture (default 0)",
        private="Only you see the result (default off)",
    )
    async def stylize(
        self,
        interaction: discord.Interaction,
        content: discord.Attachment,
        style: discord.Attachment | None = None,
        style_name: app_commands.Range[str, 1, 32] | None = None,
        style2: discord.Attachment | None = None,
        blend: app_commands.Range[float, 0.0, 1.0] = 0.5,
        strength: app_commands.Range[float, 0.0, 10.0] = 5.0,
        quality: Quality | None = None,
        size: app_commands.Range[int, 64, 2048] = 512,
        preserve_colors: bool = False,
        seed: app_commands.Range[int, 0, 2**31 - 1] = 0,
        private: bool = False,
    ) -> None:
        """Repaint a photo in the style of an artwork."""
        async with self.intake.place(interaction):
            rules = await self.intake.admit(interaction)
            if (style is None) == (style_name is None):
                raise ArtworkChoice()
            saved = await self._saved_style(interaction, style_name) if style_name else None
            params = self._params(
                rules,
                strength=strength,
                quality=quality,
                size=size,
                preserve_colors=preserve_colors,
                seed=seed,
                private=private,
                blend=blend,
                style_name=style_name,
            )
            max_bytes = self.bot.settings.nst_max_attachment_bytes
            # What Discord tells us is checked at once: the member hears of it within seconds.
            given = {"content": content, "style": style, "style2": style2}
            for which, attachment in given.items():
                if attachment is not None:
                    attachments.check_metadata(which, attachment, max_bytes=max_bytes, videos=True)

            async def load() -> Inputs:
                content_raw = await self.intake.download("content", content)
                style_raw = saved.image if saved else await self.intake.download("style", style)
                style2_raw = await self.intake.download("style2", style2) if style2 else None
                return await self.intake.decode_inputs(
                    content_raw, style_raw, style2_raw, saved_name=saved.name if saved else None
                )

            await self.intake.take(interaction, params, load)

    @stylize.autocomplete("style_name")
    async def _style_names(
        self, interaction: discord.Interaction, typed: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None:
            return []
        names = await self.bot.store.style_names(interaction.guild_id)
        typed = style_key(typed)
        matches = [n for n in names if typed in style_key(n)]
        return [app_commands.Choice(name=n, value=n) for n in matches[:25]]

    async def stylize_message(
        self, interaction: discord.Interaction, message: discord.Message
    ) -> None:
        """Stylize: the message's first image in the style of its second, or of a saved style."""
        async with self.intake.place(interaction):
            rules = await self.intake.admit(interaction)
            images = [a for a in message.attachments if attachments.is_image(a, videos=True)]
            if not images:
                raise NoImage()
            params = self._params(rules)
            max_bytes = self.bot.settings.nst_max_attachment_bytes
            for which, attachment in zip(("content", "style"), images[:2]):
                attachments.check_metadata(which, attachment, max_bytes=max_bytes, videos=True)
            if len(images) >= 2:

                async def load() -> Inputs:
                    content_raw = await self.intake.download("content", images[0])
                    style_raw = await self.intake.download("style", images[1])
                    return await self.intake.decode_inputs(content_raw, style_raw, None)

                await self.intake.take(interaction, params, load)
                return
            names = []
            if interaction.guild_id is not None:
                names = await self.bot.store.style_names(interaction.guild_id)
            if not names:
                raise NoSavedStyles()
            picker = StylePicker(self, interaction.user.id, images[0], names, params)
            await interaction.response.send_message(picker.text, view=picker, ephemeral=True)

    async def stylize_with_saved(
        self,
        interaction: discord.Interaction,
        photo: discord.Attachment,
        style_name: str,
        params: Params,
    ) -> None:
        """The context menu's second half: a member picked one of the menu's saved styles for a
        photo (the picker has checked the pick and that it is not a replay)."""
        async with self.intake.place(interaction):
            await self.intake.admit(interaction)
            saved = await self._saved_style(interaction, style_name)
            params = replace(params, style_name=saved.name)

            async def load() -> Inputs:
                content_raw = await self.intake.download("content", photo)
                return await self.intake.decode_inputs(
                    content_raw, saved.image, None, saved_name=saved.name
                )

            await self.intake.take(interaction, params, load)

    def _params(self, rules: GuildSettings, **chosen) -> Params:
        """The member's choices under the server's defaults and the bot-wide caps."""
        cap = self.bot.settings.nst_max_size
        if rules.max_size:
            cap = min(cap, rules.max_size)
        quality = chosen.pop("quality", None) or rules.default_quality or "balanced"
        return Params(quality=quality, **chosen).checked(max_size=cap)

    async def _saved_style(self, interaction: discord.Interaction, name: str) -> SavedStyle:
        saved = None
        if interaction.guild_id is not None:
            saved = await self.bot.store.style(interaction.guild_id, name)
        if saved is None:
            raise UnknownStyle(name)
        return saved

    @app_commands.command(name="queue")
    async def queue_command(self, interaction: discord.Interaction) -> None:
        """Show where your pictures stand."""
        scheduler = self.scheduler
        mine = [r for r in scheduler.jobs.values() if r.user_id == interaction.user.id]
        if not mine:
            await interaction.response.send_message(
                "You have no pictures queued or painting.", ephemeral=True
            )
            return
        lines = []
        for request in sorted(mine, key=lambda r: r.queued_at):
            if request.state is RequestState.QUEUED:
                position = scheduler.queue.position(request)
                lines.append(
                    f"• `{request.id}` queued, position {position} of {len(scheduler.queue)}"
                )
            else:
                lines.append(f"• `{request.id}` painting, {request.percent}% done")
        total = f"{len(scheduler.queue)} waiting and {len(scheduler.running)} painting in all."
        await interaction.response.send_message("\n".join(lines + [total]), ephemeral=True)

    gallery = app_commands.Group(
        name="gallery",
        description="Choose where members can cross-post their pictures",
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
        allowed_contexts=access.SERVER_ONLY,
    )

    @gallery.command(name="set")
    @access.admin_only(GALLERY)
    @app_commands.describe(channel="The channel that collects shared pictures")
    async def gallery_set(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        """Make a channel this server's gallery."""
        await self.bot.store.set_gallery_channel(interaction.guild_id, channel.id)
        await interaction.response.send_message(
            f"Pictures can now be posted to {channel.mention}.", ephemeral=True
        )

    @gallery.command(name="clear")
    @access.admin_only(GALLERY)
    async def gallery_clear(self, interaction: discord.Interaction) -> None:
        """Stop offering a gallery in this server."""
        await self.bot.store.set_gallery_channel(interaction.guild_id, None)
        await interaction.response.send_message(
            "This server no longer has a gallery.", ephemeral=True
        )

    # ---- periodic work --------------------------------------------------------------------

    @tasks.loop(seconds=PROGRESS_EDIT_SECONDS)
    async def show_positions(self) -> None:
        """Keep each waiting member's position line true without flooding Discord: one pass of
        edits when the queue has moved, at most one pass every PROGRESS_EDIT_SECONDS."""
        if not self.scheduler.moved.is_set():  # never wait here: edits stay 3 s apart
            return
        self.scheduler.moved.clear()
        running = len(self.scheduler.running)
        outcomes = await asyncio.gather(
            *(
                self.delivery.queued(request, position, running)
                for request, position in self.scheduler.waiting()
            ),
            return_exceptions=True,
        )
        for error in outcomes:
            if isinstance(error, Exception):  # one failed edit must not end the updates
                log.error("showing a queue position failed", exc_info=error)

    @property
    def _keep_seconds(self) -> float:
        return self.bot.settings.nst_keep_hours * 3600

    @tasks.loop(hours=1)
    async def prune(self) -> None:
        """Remove finished jobs' rows and files once they are older than NST_KEEP_HOURS."""
        try:
            removed = await self.bot.store.prune(self._keep_seconds)
        except Exception:  # noqa: BLE001 - pruning again later is fine
            log.exception("pruning the data directory failed")
            return
        if removed:
            hours = self._keep_seconds / 3600
            log.info("removed %d finished job(s) older than %g h", removed, hours)
