"""What every HTTP route shares: where the emulator listens, the request's record, snowflakes
from the path, and JSON answers exactly as Discord sends them."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, Protocol

from aiohttp import web

from . import errors
from .records import RequestRecord

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The record of the request being answered, set by the REST middleware before any route runs.
RECORD = web.RequestKey("record", RequestRecord)


class Routes(Protocol):
    """A part of the emulator that serves HTTP routes."""

    def routes(self) -> list[web.AbstractRouteDef]: ...


class Address:
    """Where the emulator listens on loopback; the port is known once it has started."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        """What ``bot.api_base.use_api_base`` takes: ``http://127.0.0.1:PORT/api/v10``."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/gateway"

    @property
    def resume_gateway_url(self) -> str:
        # A different path from gateway_url, so a test can see the client resume where told.
        return f"ws://{self.host}:{self.port}/gateway/resume"


def json_response(
    body: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    # Exactly "application/json": discord.py compares the header verbatim, so aiohttp's usual
    # "application/json; charset=utf-8" would hand it a string instead of parsed JSON.
    return web.Response(
        body=json.dumps(body).encode(),
        status=status,
        headers={"Content-Type": "application/json"} | (headers or {}),
    )


def path_snowflake(request: web.Request, key: str) -> int:
    """The id named ``key`` in the request's path; Discord's 50035 when it is not a number."""
    raw = request.match_info[key]
    if not raw.isdigit():
        raise errors.invalid_form({key: f'NUMBER_TYPE_COERCE: Value "{raw}" is not snowflake.'})
    return int(raw)


def reason(status: int) -> str:
    """The HTTP reason phrase of ``status``."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
