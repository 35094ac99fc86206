"""The bot: a discord.py client that takes its engine backend, settings and stores as arguments."""

from __future__ import annotations

import gc
import logging
from typing import Protocol, runtime_checkable

import aiohttp
import discord
from discord.ext import commands

from bot.api_base import use_gateway_of
from bot.decoding import DECODE_BUDGET_PIXELS, PixelBudget
from bot.metrics import Metrics
from bot.replays import SeenInteractions
from bot.settings import Settings
from bot.store import JobStore
from bot.tree import StyleTree
from nst_engine.backend import Backend

log = logging.getLogger(__name__)

# Features, loaded by name; each one's setup() adds its cog and registers its persistent views.
EXTENSIONS = ("bot.cogs.stylize", "bot.cogs.server")


@runtime_checkable
class Drains(Protocol):
    """A cog with work in flight that a shutdown should let finish."""

    def stop_accepting(self) -> None: ...

    async def drain(self, grace: float) -> None: ...


class StyleBot(commands.Bot):
    def __init__(
        self, settings: Settings, pool: Backend, store: JobStore, metrics: Metrics
    ) -> None:
        # Slash commands need no privileged intents; guilds gives us channels for fallbacks.
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents(guilds=True),
            tree_cls=StyleTree,
        )
        self.settings = settings
        self.pool = pool
        self.store = store
        self.metrics = metrics
        self.http_session: aiohttp.ClientSession | None = None
        self._heap_frozen = False
        self._seen = SeenInteractions()
        # Member images decoded in this process (saved styles, attachment checks) share it.
        self.decode_budget = PixelBudget(DECODE_BUDGET_PIXELS)

    async def setup_hook(self) -> None:
        # Runs again when nst-bot retries a login that failed part-way (Discord out of reach).
        if self.settings.discord_api_base:
            await use_gateway_of(self)
        if self.http_session is None:
            self.http_session = aiohttp.ClientSession()
        self.metrics.loop_lag.start()
        for extension in EXTENSIONS:
            if extension not in self.extensions:
                await self.load_extension(extension)
        if self.settings.nst_dev_guild:
            guild = discord.Object(self.settings.nst_dev_guild)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
            log.info("commands synced to development guild %s", guild.id)
        else:
            await self.tree.sync()
            log.info("commands synced globally (may take up to an hour to appear)")

    def first_delivery(self, interaction: discord.Interaction) -> bool:
        """False for an interaction the gateway delivered again (a replay after a RESUME): the
        tree and every component handler call this before doing anything."""
        return self._seen.first(interaction)

    def stop_accepting(self) -> None:
        """Refuse new work from now on (the first thing a SIGTERM does)."""
        for cog in self._draining_cogs():
            cog.stop_accepting()

    async def drain(self, grace: float) -> None:
        """Stop taking work and give what is running up to ``grace`` seconds to finish; the
        rest stays journaled for the next start."""
        for cog in self._draining_cogs():
            await cog.drain(grace)

    def _draining_cogs(self) -> list[Drains]:
        return [cog for cog in self.cogs.values() if isinstance(cog, Drains)]

    async def close(self) -> None:
        await self.metrics.loop_lag.stop()
        await super().close()
        if self.http_session:
            await self.http_session.close()
        self.decode_budget.close()

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
