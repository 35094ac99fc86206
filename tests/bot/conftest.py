"""The project's bot, unmodified, running against our Discord emulator on loopback."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import discord
import numpy as np
import pytest_asyncio
from discord.gateway import DiscordWebSocket
from PIL import Image

from bot.api_base import use_api_base
from bot.client import StyleBot
from bot.logs import set_library_levels
from bot.metrics import Metrics
from bot.settings import Settings
from bot.store import JobStore
from nst_engine.pool import EnginePool
from tests.bot.emulator import DiscordEmulator
from tests.support import gradient_image, stripes_image

TOKEN = "MTE0NTE0MTkxOTgxMDg5MzQ0MA.bot-under-test.token"


def png_bytes(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, "PNG")
    return out.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LogCapture(logging.Handler):
    """Every log line of the session, formatted, to check what operators' logs would show."""

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
        data = png_bytes(gradient_image(80, 60, seed=2))
        return self.emu.add_attachment(name, data, "image/png", width=80, height=60)

    def painting(self, name: str = "painting.png") -> dict:
        data = png_bytes(stripes_image(48, 48))
        return self.emu.add_attachment(name, data, "image/png", width=48, height=48)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory) -> AsyncIterator[World]:
    saved = discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    data_dir = tmp_path_factory.mktemp("nst-data")
    async with DiscordEmulator(token=TOKEN) as emu:
        settings = Settings(
            discord_token=TOKEN,
            discord_api_base=emu.api_base,
            nst_weights="random",
            nst_workers=1,
            nst_max_size=64,
            nst_max_steps=30,
            nst_user_limit=2,
            nst_queue_limit=6,
            nst_dev_guild=emu.guild.id,
            nst_http_port=free_port(),
            nst_data_dir=data_dir,
            nst_member_rate=0,  # the tests send many requests as one member
        )
        use_api_base(settings.discord_api_base)
        pool = EnginePool(settings.nst_weights, workers=settings.nst_workers)
        bot = StyleBot(settings, pool, JobStore(data_dir), Metrics())
        from bot.web import HealthServer

        async with HealthServer(bot, settings.nst_http_port, host="127.0.0.1"), pool:
            runner = asyncio.create_task(bot.start(TOKEN))
            await emu.wait_ready()
            await emu.wait_for_commands("stylize", "queue", guild=emu.guild)
            await asyncio.wait_for(bot.wait_until_ready(), 30)
            logs = LogCapture()
            root = logging.getLogger()
            root.addHandler(logs)
            old_level = root.level
            root.setLevel(logging.INFO)
            set_library_levels(logging.INFO)  # as nst-bot sets them
            try:
                yield World(emu, bot, settings, f"http://127.0.0.1:{settings.nst_http_port}", logs)
            finally:
                root.removeHandler(logs)
                root.setLevel(old_level)
                await bot.close()
                await asyncio.gather(runner, return_exceptions=True)
    discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved
