"""``nst-bot``: logging, settings, the engine pool, the health server, then the bot."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import discord

from bot.api_base import use_api_base
from bot.client import StyleBot
from bot.logs import setup_logging
from bot.metrics import Metrics
from bot.settings import Settings, SettingsError
from bot.store import JobStore
from bot.web import HealthServer
from nst_engine.errors import WeightsError
from nst_engine.pool import EnginePool

log = logging.getLogger("bot")


async def run(settings: Settings) -> None:
    use_api_base(settings.discord_api_base)
    if settings.nst_weights == "random":
        log.warning(
            "NST_WEIGHTS=random: results are NOT real style transfers (tests and demos only)"
        )
    pool = EnginePool(
        settings.nst_weights,
        workers=settings.nst_workers,
        gpus=settings.nst_gpus or None,
        memory_limit_mb=settings.nst_worker_memory_mb or None,
        pid_dir=settings.nst_data_dir / "workers",
    )
    bot = StyleBot(settings, pool, JobStore(settings.nst_data_dir), Metrics())
    async with bot, HealthServer(bot, settings.nst_http_port):
        # Log in first, so a rejected token is reported before minutes of model loading.
        await bot.login(settings.discord_token)
        async with pool:
            await _serve_until_stopped(bot, settings.nst_shutdown_grace)


async def _serve_until_stopped(bot: StyleBot, grace: float) -> None:
    """Run the gateway until SIGTERM/SIGINT, then let running jobs finish and close cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    cog = bot.get_cog("Stylize")

    def on_signal() -> None:
        if cog is not None:
            cog.draining = True  # at once: requests already in flight are refused too
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    connection = asyncio.create_task(bot.connect(), name="gateway")
    stopping = asyncio.create_task(stop.wait(), name="signals")
    await asyncio.wait({connection, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if stop.is_set():
        log.info("stopping: no new jobs; running ones get %g s to finish", grace)
        if cog is not None:
            await cog.drain(grace)
        await bot.close()
    stopping.cancel()
    await connection


def main() -> int:
    setup_logging()
    try:
        settings = Settings.from_env()
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        asyncio.run(run(settings))
    except discord.LoginFailure:
        print(
            "error: Discord rejected DISCORD_TOKEN; copy the bot token again from the "
            "developer portal",
            file=sys.stderr,
        )
        return 2
    except WeightsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
