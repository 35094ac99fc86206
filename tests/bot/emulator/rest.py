"""The REST API under ``/api/v10``: every request recorded and linked to its interaction, then
answered by an injected fault, the token and rate-limit checks, or its route (the parts' routes,
and login's here)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiohttp import web

from . import errors
from .errors import DiscordError
from .faults import VIA, Fault, Faults, RateLimiter, limited_body
from .gateway import Gateway
from .interactions import Interactions
from .records import RequestRecord, loop_time
from .routing import API_PREFIX, RECORD, Address, Handler, Routes, json_response
from .state import State

log = logging.getLogger(__name__)

# Routes that take the interaction token instead of the bot token.
_TOKEN_ROUTES = ("/webhooks/", "/interactions/")
_MAJOR_PARAMETERS = ("channel_id", "guild_id", "webhook_token", "interaction_token")


class RestApi:
    """Every HTTP request but the gateway's, and what the emulator made of each."""

    def __init__(
        self,
        state: State,
        address: Address,
        gateway: Gateway,
        interactions: Interactions,
        faults: Faults,
        limiter: RateLimiter,
        parts: Sequence[Routes],
    ) -> None:
        self.state = state
        self.address = address
        self.gateway = gateway
        self.interactions = interactions
        self.faults = faults
        self.limiter = limiter
        self.parts = parts
        self._bot_auth = f"Bot {state.app.token}"
        self.requests: list[RequestRecord] = []
        self.unexpected: list[RequestRecord] = []  # requests to routes the emulator does not know
        self.internal_errors: list[str] = []  # emulator handlers that crashed (a bug here)

    def routes(self) -> list[web.AbstractRouteDef]:
        """Login's routes, then every part's, then the catch-all for routes no part knows."""
        a = API_PREFIX
        own = [
            web.get(a + "/gateway/bot", self.gateway_bot),
            web.get(a + "/gateway", self.gateway_url),
            web.get(a + "/users/@me", self.current_user),
            web.get(a + "/oauth2/applications/@me", self.application_info),
        ]
        parts = [route for part in self.parts for route in part.routes()]
        return own + parts + [web.route("*", "/{tail:.*}", self.unknown)]

    def requests_to(self, route: str) -> list[RequestRecord]:
        """Requests matching a fault-style pattern, e.g. ``"PUT /applications/*"``."""
        probe = Fault(route, None, None)
        return [r for r in self.requests if probe.matches(r.method, r.path)]

    def assert_no_unexpected(self) -> None:
        problems = [f"unknown route: {r.method} {r.path}" for r in self.unexpected]
        problems += [f"emulator error: {e}" for e in self.internal_errors]
        if problems:
            raise AssertionError("Discord emulator:\n" + "\n".join(problems))

    def summary(self) -> str:
        """The gateway's counts and the last requests, for a wait that timed out."""
        gateway = self.gateway
        lines = [
            f"gateway: identifies={gateway.identify_count} resumes={gateway.resume_count} "
            f"connections={len(gateway.connections)}"
        ]
        lines += [f"request: {r.summary()}" for r in self.requests[-20:]]
        return "\n".join(lines)

    # -- every request ------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith("/gateway"):
            return await handler(request)
        is_api = path.startswith(API_PREFIX + "/")
        relative = path[len(API_PREFIX) :] if is_api else path
        known = request.match_info.handler != self.unknown
        canonical = request.match_info.route.resource.canonical if known else ""
        route = canonical.removeprefix(API_PREFIX)
        record = RequestRecord(request.method, relative, route, at=loop_time())
        request[RECORD] = record
        self.requests.append(record)
        # Linked before faults apply, so an interaction's record shows injected failures too.
        token = request.match_info.get("webhook_token") or request.match_info.get(
            "interaction_token"
        )
        interaction = self.interactions.by_token(token) if token else None
        if interaction is not None:
            record.interaction_id = interaction.id
            interaction.requests.append(record)
        headers = {"Via": VIA}
        try:
            fault = self.faults.take(request.method, relative)
            self.state.changes.notify()  # a request arriving (or being held) is news to waiters
            response = await self.faults.answer(fault, record, is_api=is_api) if fault else None
            if response is None:
                needs_bot_token = is_api and known and not route.startswith(_TOKEN_ROUTES)
                if needs_bot_token and request.headers.get("Authorization") != self._bot_auth:
                    raise errors.unauthorized()
                if is_api and known:
                    major = "+".join(
                        request.match_info[k] for k in _MAJOR_PARAMETERS if k in request.match_info
                    )
                    limits, retry_after = self.limiter.take(f"{request.method} {route}", major)
                    headers |= limits
                    if retry_after is not None:
                        response = json_response(limited_body(retry_after), status=429)
                if response is None:
                    response = await handler(request)
        except DiscordError as exc:
            record.error_code = exc.code
            response = json_response(exc.body(), status=exc.status)
        except web.HTTPException:
            raise
        except Exception as exc:
            # A crash here is the emulator's bug, not the bot's: answer with a 400 that
            # discord.py raises at once (a 500 would be retried for half a minute) and remember it
            # so that a strict emulator fails the test.
            log.exception("emulator handler crashed on %s %s", request.method, path)
            self.internal_errors.append(f"{request.method} {path}: {exc!r}")
            body = {"message": f"emulator error: {exc!r}", "code": -1}
            response = json_response(body, status=400)
        for key, value in headers.items():
            response.headers.setdefault(key, value)
        record.status = response.status
        self.state.changes.notify()
        return response

    async def unknown(self, request: web.Request) -> web.StreamResponse:
        self.unexpected.append(request[RECORD])
        raise errors.not_found()

    # -- login and gateway --------------------------------------------------------------------

    async def gateway_bot(self, request: web.Request) -> web.StreamResponse:
        return json_response(
            {
                "url": self.address.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000 - self.gateway.identify_count,
                    "reset_after": 86_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    async def gateway_url(self, request: web.Request) -> web.StreamResponse:
        return json_response({"url": self.address.gateway_url})

    async def current_user(self, request: web.Request) -> web.StreamResponse:
        extra = {"verified": True, "mfa_enabled": False, "flags": 0, "email": None}
        return json_response(self.state.app.bot.payload() | extra)

    async def application_info(self, request: web.Request) -> web.StreamResponse:
        app = self.state.app
        return json_response(
            {
                "id": str(app.id),
                "name": app.bot.username,
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "bot": app.bot.payload(),
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": app.owner.payload(),
                "team": None,
                "verify_key": "0" * 64,
                "flags": app.flags,
                "hook": True,
                "interactions_endpoint_url": None,
                "redirect_uris": [],
                "tags": [],
                "approximate_guild_count": len(self.state.guilds),
                "integration_types_config": {"0": {}},
            }
        )
