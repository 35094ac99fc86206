"""The project's bot, unmodified, against our Discord emulator: in this process
(``running_bot``, the bot tests' fixture) or as ``python -m bot`` in its own (``bot_process``,
for restarts, signals and the load benchmark in bench/load.py).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import discord
import numpy as np
from discord.gateway import DiscordWebSocket
from PIL import Image

from bot.__main__ import make_backend
from bot.api_base import use_api_base
from bot.client import StyleBot
from bot.logs import set_library_levels
from bot.metrics import Metrics
from bot.settings import Settings
from bot.store import JobStore
from bot.web import HealthServer
from nst_engine.pool import EnginePool
from tests.bot.emulator import DiscordEmulator
from tests.support import gradient_image, stripes_image

TOKEN = "MTE0NTE0MTkxOTgxMDg5MzQ0MA.bot-under-test.token"
# The buttons under a picture a member may iterate on, in order.
RESULT_BUTTONS = ["Stronger", "Weaker", "Variation", "Upscale", "Edit", "Delete"]


def png_bytes(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, "PNG")
    return out.getvalue()


def result_png(message) -> Image.Image:
    """The picture a result message carries."""
    sent = message.file("stylized.png")
    image = Image.open(io.BytesIO(sent.data))
    image.load()
    return image


async def finished(inter, timeout: float = 60):
    """The follow-up that carries the picture."""
    await inter.wait_for(
        lambda rec: any(m.files for m in rec.followups if m is not rec.original), timeout=timeout
    )
    return next(m for m in inter.followups if m.files and m is not inter.original)


def button(message, label: str) -> dict:
    """The button labelled ``label`` on a message."""
    return next(b for b in message.buttons() if b["label"] == label)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LogCapture(logging.Handler):
    """Every log line while the bot runs, to check what operators' logs would show."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class World:
    emu: DiscordEmulator
    bot: StyleBot
    settings: Settings
    http: str
    logs: LogCapture

    def photo(self, name: str = "photo.png") -> dict:
        return add_photo(self.emu, name)

    async def stylize(self, *, user=None, **options: object):
        """A member's /stylize with a fresh photo and artwork and ``options``; the interaction."""
        params = {"content": self.photo(), "style": self.painting(), **options}
        return await self.emu.invoke_slash("stylize", params, user=user)

    def painting(self, name: str = "painting.png") -> dict:
        return add_painting(self.emu, name)


def add_photo(emu: DiscordEmulator, name: str = "photo.png") -> dict:
    """An 80×60 photo on the emulator's CDN, as an attachment a member would send."""
    data = png_bytes(gradient_image(80, 60, seed=2))
    return emu.add_attachment(name, data, "image/png", width=80, height=60)


def add_painting(emu: DiscordEmulator, name: str = "painting.png") -> dict:
    """A 48×48 striped artwork on the emulator's CDN."""
    data = png_bytes(stripes_image(48, 48))
    return emu.add_attachment(name, data, "image/png", width=48, height=48)


@asynccontextmanager
async def running_bot(
    data_dir: Path, *, pool_options: dict | None = None, **settings: object
) -> AsyncIterator[World]:
    """Emulator, engine pool (seeded random weights), health server and bot, all on loopback;
    ``pool_options`` go to the EnginePool (e.g. its preview interval)."""
    saved = discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    async with DiscordEmulator(token=TOKEN) as emu:
        config = Settings(
            **{
                "discord_token": TOKEN,
                "discord_api_base": emu.api_base,
                "nst_weights": "random",
                "nst_workers": 1,
                "nst_max_size": 64,
                "nst_max_steps": 30,
                "nst_download_timeout": 2.0,
                "nst_dev_guild": emu.guild.id,
                "nst_http_port": free_port(),
                "nst_data_dir": data_dir,
                # Off, so that no test's worker is replaced under it; test_pool tests it.
                "nst_worker_max_growth": 0,
                **settings,
            }
        )
        use_api_base(config.discord_api_base)
        # The engine nst-bot would build from these settings (the local pool, or Ray), unless
        # a test tunes the pool itself.
        pool = (
            make_backend(config)
            if pool_options is None
            else EnginePool(
                config.nst_weights,
                workers=config.nst_workers,
                memory_limit_mb=config.nst_worker_memory_mb or None,
                max_growth_percent=config.nst_worker_max_growth,
                **pool_options,
            )
        )
        bot = StyleBot(config, pool, JobStore(data_dir), Metrics())
        logs = LogCapture()
        root = logging.getLogger()
        old_level = root.level
        root.addHandler(logs)
        root.setLevel(logging.INFO)
        set_library_levels(logging.INFO)  # as nst-bot sets them
        try:
            async with HealthServer(bot, config.nst_http_port, host="127.0.0.1"), pool:
                runner = asyncio.create_task(bot.start(TOKEN))
                await emu.wait_ready()
                await emu.wait_for_commands("stylize", "queue", guild=emu.guild)
                await asyncio.wait_for(bot.wait_until_ready(), 30)
                try:
                    yield World(emu, bot, config, f"http://127.0.0.1:{config.nst_http_port}", logs)
                finally:
                    await bot.close()
                    await asyncio.gather(runner, return_exceptions=True)
                    bot.store.close()
        finally:
            root.removeHandler(logs)
            root.setLevel(old_level)
            discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved


@asynccontextmanager
async def bot_process(emu: DiscordEmulator, data_dir, log_name: str, **extra: str):
    """``python -m bot`` as an operator runs it, in its own process group."""
    env = {
        **os.environ,
        "DISCORD_TOKEN": TOKEN,
        "DISCORD_API_BASE": emu.api_base,
        "NST_WEIGHTS": "random",
        "NST_MAX_SIZE": "64",
        "NST_MAX_STEPS": "150",
        "NST_HTTP_PORT": "0",
        "NST_DEV_GUILD": str(emu.guild.id),
        "NST_DATA_DIR": str(data_dir),
        # Off, so that no test's worker is replaced under it (bench/soak.py and bench/load.py
        # run the bot's default; test_pool and test_soak test the replacement).
        "NST_WORKER_MAX_GROWTH": "0",
        **extra,
    }
    data_dir.mkdir(exist_ok=True)
    log_file = open(data_dir.parent / log_name, "wb")  # noqa: SIM115 - closed below
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        env=env,
        start_new_session=True,
        stdout=log_file,
        stderr=log_file,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        log_file.close()


@asynccontextmanager
async def ready_bot(emu: DiscordEmulator, data_dir, log_name: str, **extra: str):
    """``bot_process``, once it has identified on the gateway and can take commands."""
    identified = emu.identify_count
    async with bot_process(emu, data_dir, log_name, **extra) as process:
        await emu.wait_until(lambda: emu.identify_count > identified, timeout=120, what="IDENTIFY")
        await emu.wait_ready(timeout=60)
        await asyncio.sleep(2.5)  # discord.py's guild_ready_timeout before it handles events
        yield process
