"""The bot: a discord.py client that takes its engine pool, settings and stores as arguments."""

from __future__ import annotations

import gc
import logging
import uuid

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.api_base import use_gateway_of
from bot.cogs.stylize import StylizeCog
from bot.cogs.stylize.errors import UserFacingError
from bot.cogs.stylize.views import JobButton
from bot.metrics import Metrics
from bot.settings import Settings
from bot.store import JobStore
from nst_engine.errors import NSTError
from nst_engine.pool import EnginePool

log = logging.getLogger(__name__)


class StyleBot(commands.Bot):
    def __init__(
        self, settings: Settings, pool: EnginePool, store: JobStore, metrics: Metrics
    ) -> None:
        # Slash commands need no privileged intents; guilds gives us channels for fallbacks.
        super().__init__(
            command_prefix=commands.when_mentioned, intents=discord.Intents(guilds=True)
        )
        self.settings = settings
        self.pool = pool
        self.store = store
        self.metrics = metrics
        self.http_session: aiohttp.ClientSession | None = None
        self._heap_frozen = False
        self.tree.on_error = self.on_app_command_error

    async def setup_hook(self) -> None:
        if self.settings.discord_api_base:
            await use_gateway_of(self)
        self.http_session = aiohttp.ClientSession()
        self.metrics.loop_lag.start()
        self.add_dynamic_items(JobButton)
        await self.add_cog(StylizeCog(self))
        if self.settings.nst_dev_guild:
            guild = discord.Object(self.settings.nst_dev_guild)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
            log.info("commands synced to development guild %s", guild.id)
        else:
            await self.tree.sync()
            log.info("commands synced globally (may take up to an hour to appear)")

    async def close(self) -> None:
        await self.metrics.loop_lag.stop()
        await super().close()
        if self.http_session:
            await self.http_session.close()

    @property
    def connected(self) -> bool:
        return self.is_ready() and not self.is_closed() and self.ws is not None and self.ws.open

    async def on_ready(self) -> None:
        log.info("connected as %s (%s) to %d guild(s)", self.user, self.user.id, len(self.guilds))
        if not self._heap_frozen:
            # Everything loaded so far (discord.py, aiohttp, the command tree, the guild cache)
            # lives as long as the process: take it out of the garbage collector's full passes,
            # which would otherwise stall the event loop for tens of milliseconds each.
            self._heap_frozen = True
            gc.collect()
            gc.freeze()

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """Known errors become one line for the member; anything else is logged with an id."""
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if isinstance(cause, (UserFacingError, NSTError)):
            message = str(cause)
        elif isinstance(cause, app_commands.CheckFailure):
            message = "You can't use this command here."
        else:
            error_id = uuid.uuid4().hex[:8]
            log.error("command failed (error id %s)", error_id, exc_info=cause)
            message = f"Something went wrong on our side (error id `{error_id}`); please try again."
        try:
            if interaction.response.is_done():
                await interaction.followup.send(message, ephemeral=True)
            else:
                await interaction.response.send_message(message, ephemeral=True)
        except discord.HTTPException:
            log.warning("could not tell the member about an error: %s", message)
