"""Point discord.py at a Discord-compatible API base (a rate-limit proxy, or our test emulator)."""

from __future__ import annotations

import logging

import discord
import yarl
from discord.gateway import DiscordWebSocket

log = logging.getLogger(__name__)

DISCORD_API_BASE = "https://discord.com/api/v10"


def use_api_base(api_base: str | None) -> None:
    """Send every REST call (bot and interaction webhooks alike) to ``api_base``.

    Must run before the client logs in. discord.py keeps the base on ``Route`` as a class
    attribute, so this is process-wide.
    """
    discord.http.Route.BASE = (api_base or DISCORD_API_BASE).rstrip("/")


async def use_gateway_of(client: discord.Client) -> None:
    """Open the gateway at the URL the configured API base announces.

    discord.py connects to its built-in default gateway rather than asking ``/gateway/bot``;
    behind another API base that would leave the REST and the gateway on different services.
    Call it after login (``setup_hook``) and before connect.
    """
    _shards, url, _limits = await client.http.get_bot_gateway()
    log.info("gateway at %s", url)
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
