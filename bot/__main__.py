"""``nst-bot``: logging, settings, the journal, the engine backend (a local pool or Ray), the
health server, then the bot."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable
from typing import TypeVar

import aiohttp
import discord

from bot.api_base import use_api_base
from bot.client import StyleBot
from bot.logs import setup_logging
from bot.metrics import Metrics
from bot.settings import Settings, SettingsError
from bot.store import JobStore, JournalError
from bot.web import HealthServer, HealthServerError
from nst_engine.backend import Backend
from nst_engine.errors import WeightsError
from nst_engine.pool import EnginePool
from nst_engine.ray import RayBackend, RayUnavailable, check_reachable, import_ray
from nst_engine.weights import HED, HED_LABEL

log = logging.getLogger("bot")

_T = TypeVar("_T")
# Waits between attempts to reach Discord: 1, 2, 4 … seconds, then every minute.
FIRST_RETRY = 1.0
LAST_RETRY = 60.0
# How long one probe of the API may take before it counts as unreachable.
PROBE_TIMEOUT = 10.0


async def run(settings: Settings, store: JobStore) -> None:
    use_api_base(settings.discord_api_base)
    if settings.nst_weights == "random":
        log.warning(
            "NST_WEIGHTS=random: results are NOT real style transfers (tests and demos only)"
        )
    elif settings.nst_weights == HED:
        log.warning("NST_WEIGHTS=hed: pictures are made with a %s", HED_LABEL)
    pool = make_backend(settings)
    bot = StyleBot(settings, pool, store, Metrics())
    stop = _stop_on_signals(bot)
    async with bot, HealthServer(bot, settings.nst_http_port):
        # Log in first, so a rejected token is reported before minutes of model loading.
        if not await _log_in(bot, settings.discord_token, stop):
            return
        async with pool:
            await _serve_until_stopped(bot, settings.nst_shutdown_grace, stop)


def make_backend(settings: Settings) -> Backend:
    """The engine the settings ask for: worker processes here, or actors on a Ray cluster."""
    if settings.nst_backend == "ray":
        for name, value in (
            ("NST_GPUS", settings.nst_gpus),
            ("NST_WORKER_MEMORY_MB", settings.nst_worker_memory_mb),
        ):
            if value:
                log.warning("%s is for NST_BACKEND=local; Ray places and sizes its actors", name)
        return RayBackend(
            settings.nst_weights,
            settings.nst_workers,
            min_workers=settings.nst_ray_min_workers,
            max_workers=settings.nst_ray_max_workers,
            scale_up_s=settings.nst_ray_scale_up_s,
            idle_s=settings.nst_ray_idle_s,
            gpu_actors=(
                None if settings.nst_ray_worker_gpus is None else bool(settings.nst_ray_worker_gpus)
            ),
            address=settings.nst_ray_address,
            cpus_per_worker=settings.nst_ray_cpus_per_worker,
            max_growth_percent=settings.nst_worker_max_growth,
        )
    return EnginePool(
        settings.nst_weights,
        workers=settings.nst_workers,
        gpus=settings.nst_gpus or None,
        memory_limit_mb=settings.nst_worker_memory_mb or None,
        pid_dir=settings.nst_data_dir / "workers",
        max_growth_percent=settings.nst_worker_max_growth,
    )


def _stop_on_signals(bot: StyleBot) -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, which also make the bot refuse new work at once."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal() -> None:
        bot.stop_accepting()  # at once: requests already in flight are refused too
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    return stop


async def _log_in(bot: StyleBot, token: str, stop: asyncio.Event) -> bool:
    """Log in, trying again with backoff while Discord cannot be reached; False if a signal
    came first. A rejected token raises `discord.LoginFailure` at once."""
    delay = FIRST_RETRY
    attempt = 0
    while True:
        attempt += 1
        done, problem = await _unless_stopped(_try_log_in(bot, token), stop)
        if not done:
            break
        if problem is None:
            if attempt > 1:
                log.info("reached Discord after %d attempts", attempt)
            return True
        log.warning(
            "cannot reach Discord at %s (attempt %d: %s); trying again in %g s",
            discord.http.Route.BASE,
            attempt,
            problem,
            delay,
        )
        done, _ = await _unless_stopped(asyncio.sleep(delay), stop)
        if not done:
            break
        delay = min(delay * 2, LAST_RETRY)
    log.info("stopped before Discord could be reached")
    return False


async def _try_log_in(bot: StyleBot, token: str) -> str | None:
    """One attempt; None once logged in, else why Discord could not be reached."""
    try:
        # Probe with a session of our own first: a failed login leaves discord.py's session
        # unclosed, and a later attempt would make another.
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT)) as session,
            session.get(f"{discord.http.Route.BASE}/gateway") as response,
        ):
            if response.status >= 500:
                return f"it answered {response.status} {response.reason}"
        await bot.login(token)
    except discord.DiscordServerError as err:
        return f"it answered {err.status}"
    except TimeoutError:
        return f"no answer within {PROBE_TIMEOUT:g} s"
    except (aiohttp.ClientError, OSError) as err:
        return " ".join(str(err).split()) or type(err).__name__
    return None


async def _unless_stopped(work: Awaitable[_T], stop: asyncio.Event) -> tuple[bool, _T | None]:
    """(True, its result) once ``work`` is done, or (False, None) if ``stop`` is set first (the
    work is then cancelled)."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False, None
    return True, task.result()


async def _serve_until_stopped(bot: StyleBot, grace: float, stop: asyncio.Event) -> None:
    """Run the gateway until SIGTERM/SIGINT, then let running jobs finish and close cleanly."""
    connection = asyncio.create_task(bot.connect(), name="gateway")
    stopping = asyncio.create_task(stop.wait(), name="signals")
    await asyncio.wait({connection, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if stop.is_set():
        log.info("stopping: no new jobs; running ones get %g s to finish", grace)
        await bot.drain(grace)
        await bot.close()
    stopping.cancel()
    await connection


def main() -> int:
    setup_logging()
    try:
        settings = Settings.from_env()
        store = JobStore(settings.nst_data_dir)
        # Before logging in and loading the model: a data folder that can't be used stops here.
        store.open()
    except (SettingsError, JournalError) as err:
        return _error(str(err))
    if settings.nst_backend == "ray":
        # Before logging in: Ray missing, or nothing at the cluster's address, is told at once.
        address = settings.nst_ray_address
        try:
            import_ray(local=address is None)
        except RayUnavailable as err:
            store.close()
            return _error(f"NST_BACKEND=ray, but {err}")
        try:
            if address not in (None, "auto"):
                check_reachable(address)
        except RayUnavailable as err:
            store.close()
            return _error(f"{err}; check NST_RAY_ADDRESS={address}")
    try:
        asyncio.run(run(settings, store))
    except discord.LoginFailure:
        return _error(
            "Discord rejected DISCORD_TOKEN; copy the bot token again from the developer portal"
        )
    except (WeightsError, HealthServerError, JournalError) as err:
        return _error(str(err))
    except RayUnavailable as err:
        address = settings.nst_ray_address
        if address is None:
            return _error(f"{err}; or set NST_RAY_ADDRESS to a running cluster's address")
        return _error(f"{err}; check NST_RAY_ADDRESS={address}")
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
    return 0


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
