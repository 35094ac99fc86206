"""/healthz and /metrics for operators, on NST_HTTP_PORT."""

from __future__ import annotations

import errno
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from bot.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

if TYPE_CHECKING:
    from bot.client import StyleBot

log = logging.getLogger(__name__)


class HealthServerError(Exception):
    """The server cannot listen on NST_HTTP_PORT; the message is one line for the operator."""


class HealthServer:
    """200 on /healthz once the gateway is connected and the engine pool is warm, else 503."""

    def __init__(self, bot: StyleBot, port: int, host: str = "0.0.0.0") -> None:
        self.bot = bot
        self.port = port
        self.host = host
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> HealthServer:
        if self.port == 0:
            return self
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except OSError as err:
            await self._runner.cleanup()
            self._runner = None
            reason = (
                "it is already in use (another nst-bot?)"
                if err.errno == errno.EADDRINUSE
                else (err.strerror or str(err))
            )
            raise HealthServerError(
                f"NST_HTTP_PORT={self.port} cannot be used: {reason}; choose another port, "
                "or 0 to turn the health and metrics server off"
            ) from None
        log.info("health and metrics on port %d", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def healthz(self, _request: web.Request) -> web.Response:
        gateway = self.bot.connected
        pool = self.bot.pool.warm
        status = 200 if gateway and pool else 503
        body = f"gateway {'up' if gateway else 'down'}, engine {'warm' if pool else 'cold'}\n"
        return web.Response(status=status, text=body)

    async def metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=self.bot.metrics.render(), headers={"Content-Type": METRICS_CONTENT_TYPE}
        )
