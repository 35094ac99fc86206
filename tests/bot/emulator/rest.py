"""The REST API under ``/api/v10`` and the attachment CDN, as aiohttp handlers."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import errors
from .errors import DiscordError
from .faults import VIA, Fault, limited_body, limited_headers
from .messages import Upload, check_sizes, read_body, validate
from .records import CallbackRecord, InteractionRecord, MessageRecord, RequestRecord

if TYPE_CHECKING:
    from .server import DiscordEmulator

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

RECORD = web.RequestKey("record", RequestRecord)

# Routes that take the interaction token instead of the bot token.
_TOKEN_ROUTES = ("/webhooks/", "/interactions/")
_MAJOR_PARAMETERS = ("channel_id", "guild_id", "webhook_token", "interaction_token")
_COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")

VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
ATTACH_FILES = 1 << 15

# Which callback types each interaction type accepts.
# Interaction type → the callback types Discord accepts for it (4: autocomplete → 8).
_CALLBACKS_FOR = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}


class RestApi:
    def __init__(self, emu: DiscordEmulator) -> None:
        self._emu = emu

    def routes(self) -> list[web.AbstractRouteDef]:
        a = API_PREFIX
        webhook = a + "/webhooks/{application_id}/{webhook_token}"
        message = a + "/channels/{channel_id}/messages/{message_id}"
        return [
            web.get(a + "/gateway/bot", self.gateway_bot),
            web.get(a + "/gateway", self.gateway),
            web.get(a + "/users/@me", self.current_user),
            web.get(a + "/oauth2/applications/@me", self.application_info),
            web.get(a + "/applications/{application_id}/commands", self.get_commands),
            web.put(a + "/applications/{application_id}/commands", self.put_commands),
            web.get(
                a + "/applications/{application_id}/guilds/{guild_id}/commands",
                self.get_commands,
            ),
            web.put(
                a + "/applications/{application_id}/guilds/{guild_id}/commands",
                self.put_commands,
            ),
            web.post(
                a + "/interactions/{interaction_id}/{interaction_token}/callback", self.callback
            ),
            web.post(webhook, self.execute_webhook),
            web.get(webhook + "/messages/{message_id}", self.get_webhook_message),
            web.patch(webhook + "/messages/{message_id}", self.edit_webhook_message),
            web.delete(webhook + "/messages/{message_id}", self.delete_webhook_message),
            web.get(a + "/channels/{channel_id}", self.get_channel),
            web.get(a + "/channels/{channel_id}/messages", self.list_messages),
            web.post(a + "/channels/{channel_id}/messages", self.create_message),
            web.post(a + "/channels/{channel_id}/typing", self.typing),
            web.get(message, self.get_message),
            web.patch(message, self.edit_message),
            web.delete(message, self.delete_message),
            web.get("/cdn/attachments/{attachment_id}/{filename}", self.cdn),
            web.get("/cdn/media/attachments/{attachment_id}/{filename}", self.cdn),
            web.route("*", "/{tail:.*}", self.unknown),
        ]

    # -- every request ------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        emu = self._emu
        path = request.path
        if path.startswith("/gateway"):
            return await handler(request)
        is_api = path.startswith(API_PREFIX + "/")
        relative = path[len(API_PREFIX) :] if is_api else path
        known = request.match_info.handler != self.unknown
        canonical = request.match_info.route.resource.canonical if known else ""
        route = canonical.removeprefix(API_PREFIX)
        record = RequestRecord(request.method, relative, route, at=emu._now())
        request[RECORD] = record
        emu.requests.append(record)
        # Linked before faults apply, so an interaction's record shows injected failures too.
        token = request.match_info.get("webhook_token") or request.match_info.get(
            "interaction_token"
        )
        interaction = emu._by_token.get(token) if token else None
        if interaction is not None:
            record.interaction_id = interaction.id
            interaction.requests.append(record)
        headers = {"Via": VIA}
        try:
            fault = emu._take_fault(request.method, relative)
            emu._changes.notify()  # a request arriving (or being held) is news to waiters
            response = await self._apply(fault, record, is_api) if fault else None
            if response is None:
                needs_bot_token = is_api and known and not route.startswith(_TOKEN_ROUTES)
                if needs_bot_token and request.headers.get("Authorization") != f"Bot {emu.token}":
                    raise errors.unauthorized()
                if is_api and known:
                    major = "+".join(
                        request.match_info[k] for k in _MAJOR_PARAMETERS if k in request.match_info
                    )
                    limits, retry_after = emu._limiter.take(f"{request.method} {route}", major)
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
            emu.internal_errors.append(f"{request.method} {path}: {exc!r}")
            body = {"message": f"emulator error: {exc!r}", "code": -1}
            response = json_response(body, status=400)
        for key, value in headers.items():
            response.headers.setdefault(key, value)
        record.status = response.status
        emu._changes.notify()
        return response

    async def _apply(
        self, fault: Fault, record: RequestRecord, is_api: bool
    ) -> web.StreamResponse | None:
        """The injected answer, or None to let the request through (after any wait)."""
        record.fault = fault.pattern
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.hang:
            waits = [asyncio.ensure_future(e.wait()) for e in (fault._released, self._emu._closing)]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
            if self._emu._closing.is_set():
                return web.Response(status=503, text="emulator closed")
        status = fault.status
        if status is None:
            return None
        if status == 429:
            headers = limited_headers(
                fault.retry_after,
                scope="global" if fault.is_global else "user",
                is_global=fault.is_global,
            )
            body = limited_body(fault.retry_after, is_global=fault.is_global)
            return json_response(body, status=429, headers=headers)
        reason = _reason(status)
        if status in (502, 503, 504) or not is_api:
            # Cloudflare and the CDN answer errors with HTML and text, not Discord's JSON.
            return web.Response(status=status, text=f"{status} {reason}", content_type="text/html")
        return json_response({"message": f"{status}: {reason}", "code": 0}, status=status)

    async def unknown(self, request: web.Request) -> web.StreamResponse:
        self._emu.unexpected.append(request[RECORD])
        raise errors.not_found()

    async def _body(self, request: web.Request) -> tuple[Any, list[Upload]]:
        body, uploads = await read_body(request)
        record: RequestRecord = request[RECORD]
        record.body, record.files = body, len(uploads)
        return body, uploads

    async def _message_body(self, request: web.Request) -> tuple[dict[str, Any], list[Upload]]:
        body, uploads = await self._body(request)
        body = body if isinstance(body, dict) else {}
        validate(body, upload_count=len(uploads))
        check_sizes(uploads, self._emu.upload_limit)
        return body, uploads

    # -- login and gateway --------------------------------------------------------------------

    async def gateway_bot(self, request: web.Request) -> web.StreamResponse:
        emu = self._emu
        return json_response(
            {
                "url": emu.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000 - emu.identify_count,
                    "reset_after": 86_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    async def gateway(self, request: web.Request) -> web.StreamResponse:
        return json_response({"url": self._emu.gateway_url})

    async def current_user(self, request: web.Request) -> web.StreamResponse:
        extra = {"verified": True, "mfa_enabled": False, "flags": 0, "email": None}
        return json_response(self._emu.bot.payload() | extra)

    async def application_info(self, request: web.Request) -> web.StreamResponse:
        emu = self._emu
        return json_response(
            {
                "id": str(emu.application_id),
                "name": emu.bot.username,
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "bot": emu.bot.payload(),
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": emu.owner.payload(),
                "team": None,
                "verify_key": "0" * 64,
                "flags": emu.application_flags,
                "hook": True,
                "interactions_endpoint_url": None,
                "redirect_uris": [],
                "tags": [],
                "approximate_guild_count": len(emu.guilds),
                "integration_types_config": {"0": {}},
            }
        )

    # -- application commands -----------------------------------------------------------------

    def _command_scope(self, request: web.Request) -> int | None:
        emu = self._emu
        if request.match_info["application_id"] != str(emu.application_id):
            raise DiscordError(403, 20012, "You are not authorized to perform this action")
        guild_id = request.match_info.get("guild_id")
        if guild_id is None:
            return None
        if not any(str(g.id) == guild_id for g in emu.guilds):
            raise errors.missing_access()
        return int(guild_id)

    async def get_commands(self, request: web.Request) -> web.StreamResponse:
        guild_id = self._command_scope(request)
        emu = self._emu
        commands = emu.global_commands if guild_id is None else emu.guild_commands.get(guild_id, [])
        return json_response(commands)

    async def put_commands(self, request: web.Request) -> web.StreamResponse:
        guild_id = self._command_scope(request)
        body, _ = await self._body(request)
        if not isinstance(body, list):
            raise errors.invalid_form({"_": "BASE_TYPE_ARRAY: Must be an array."})
        emu = self._emu
        previous = emu.global_commands if guild_id is None else emu.guild_commands.get(guild_id, [])
        commands = self._store_commands(body, previous, guild_id)
        if guild_id is None:
            emu.global_commands = commands
        else:
            emu.guild_commands[guild_id] = commands
        return json_response(commands)

    def _store_commands(
        self, body: list[dict[str, Any]], previous: list[dict[str, Any]], guild_id: int | None
    ) -> list[dict[str, Any]]:
        emu = self._emu
        problems: dict[str, str] = {}
        seen: set[tuple[str, int]] = set()
        ids = {(c["name"], c.get("type", 1)): c["id"] for c in previous}
        stored = []
        for i, command in enumerate(body):
            kind = command.get("type", 1)
            name = command.get("name", "")
            key = (name, kind)
            if key in seen:
                problems[f"{i}.name"] = "APPLICATION_COMMANDS_DUPLICATE_NAME: Duplicate name"
            seen.add(key)
            if kind == 1:
                _check_chat_input(command, f"{i}", problems)
            entry = {
                "id": ids.get(key) or str(emu.snowflakes.next()),
                "application_id": str(emu.application_id),
                "version": str(emu.snowflakes.next()),
                "type": kind,
                "name": name,
                "name_localizations": command.get("name_localizations"),
                "description": command.get("description", ""),
                "description_localizations": command.get("description_localizations"),
                "options": command.get("options", []),
                "default_member_permissions": command.get("default_member_permissions"),
                "dm_permission": command.get("dm_permission", True),
                "contexts": command.get("contexts"),
                "integration_types": command.get("integration_types", [0]),
                "nsfw": command.get("nsfw", False),
            }
            if guild_id is not None:
                entry["guild_id"] = str(guild_id)
            stored.append(entry)
        if problems:
            raise errors.invalid_form(problems)
        return stored

    # -- interactions -------------------------------------------------------------------------

    async def callback(self, request: web.Request) -> web.StreamResponse:
        emu = self._emu
        raw_id = request.match_info["interaction_id"]
        interaction = emu._by_id.get(int(raw_id)) if raw_id.isdigit() else None
        if interaction is None or interaction.token != request.match_info["interaction_token"]:
            raise errors.unknown_interaction()
        body, uploads = await self._body(request)
        if interaction.callback is not None:
            raise errors.already_acknowledged()
        after = emu._now() - interaction.dispatched_at
        deadline = emu.callback_deadline
        if interaction.expired or (deadline is not None and after > deadline):
            raise errors.unknown_interaction()
        if not isinstance(body, dict) or not isinstance(body.get("type"), int):
            raise errors.invalid_form({"type": "BASE_TYPE_REQUIRED: This field is required"})
        kind = body["type"]
        data = body.get("data") or {}
        if kind not in _CALLBACKS_FOR.get(interaction.type, set()):
            raise errors.invalid_form(
                {"type": "INTERACTION_RESPONSE_TYPE_INVALID: Invalid interaction response type"}
            )
        if kind in (4, 7):
            validate(data, upload_count=len(uploads))
            check_sizes(uploads, emu.upload_limit)
        message: MessageRecord | None = None
        channel = interaction.channel
        if kind == 4:
            message = await emu._create_message(
                channel=channel, via="response", body=data, uploads=uploads, interaction=interaction
            )
        elif kind == 5:
            message = await emu._create_message(
                channel=channel,
                via="response",
                body={"flags": data.get("flags", 0)},
                uploads=[],
                interaction=interaction,
                loading=True,
            )
        elif kind in (6, 7):
            message = interaction.source
            if kind == 7 and message is not None:
                await emu._edit_message(message, data, uploads)
        files = message.files if message is not None and kind in (4, 7) else ()
        interaction.callback = CallbackRecord(type=kind, data=data, after=after, files=files)
        if kind in (4, 5):
            interaction.original = message
        emu._changes.notify()
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        summary: dict[str, Any] = {"id": str(interaction.id), "type": interaction.type}
        resource: dict[str, Any] = {"type": kind}
        if message is not None and kind != 6:
            summary |= {
                "response_message_id": str(message.id),
                "response_message_loading": kind == 5,
                "response_message_ephemeral": message.ephemeral,
            }
            resource["message"] = message.payload
        return json_response({"interaction": summary, "resource": resource})

    def _webhook_interaction(self, request: web.Request) -> InteractionRecord:
        interaction = self._emu._interaction_by_token(
            request.match_info["application_id"], request.match_info["webhook_token"]
        )
        if interaction.expired:
            raise errors.invalid_webhook_token()
        return interaction

    def _webhook_message(
        self, request: web.Request, interaction: InteractionRecord
    ) -> MessageRecord:
        wanted = request.match_info["message_id"]
        if interaction.callback is None:
            raise errors.unknown_message()
        if wanted == "@original":
            message = interaction.original
        else:
            candidates = [interaction.original, *interaction.followups]
            message = next((m for m in candidates if m is not None and str(m.id) == wanted), None)
        if message is None or message.deleted:
            raise errors.unknown_message()
        return message

    async def execute_webhook(self, request: web.Request) -> web.StreamResponse:
        emu = self._emu
        interaction = self._webhook_interaction(request)
        body, uploads = await self._message_body(request)
        if interaction.callback is None:
            raise errors.unknown_webhook()
        original = interaction.original
        if (
            interaction.callback.type == 5
            and original is not None
            and original.loading
            and not original.deleted
        ):
            # The first follow-up after a deferral replaces the "thinking" message; it keeps the
            # deferral's ephemerality whatever flags it asks for.
            message = original
            edit = {k: v for k, v in body.items() if k != "flags"}
            await emu._edit_message(message, edit, uploads)
        else:
            message = await emu._create_message(
                channel=interaction.channel,
                via="followup",
                body=body,
                uploads=uploads,
                interaction=interaction,
            )
        interaction.followups.append(message)
        emu._changes.notify()
        if request.query.get("wait") in ("1", "true", "True"):
            return json_response(message.payload)
        return web.Response(status=204)

    async def get_webhook_message(self, request: web.Request) -> web.StreamResponse:
        interaction = self._webhook_interaction(request)
        return json_response(self._webhook_message(request, interaction).payload)

    async def edit_webhook_message(self, request: web.Request) -> web.StreamResponse:
        interaction = self._webhook_interaction(request)
        message = self._webhook_message(request, interaction)
        body, uploads = await self._message_body(request)
        await self._emu._edit_message(message, body, uploads)
        return json_response(message.payload)

    async def delete_webhook_message(self, request: web.Request) -> web.StreamResponse:
        interaction = self._webhook_interaction(request)
        message = self._webhook_message(request, interaction)
        await self._emu._delete_message(message)
        return web.Response(status=204)

    # -- channels -----------------------------------------------------------------------------

    def _path_channel(self, request: web.Request) -> Any:
        return self._emu._channel(_snowflake(request, "channel_id"))

    def _channel_message(self, request: web.Request) -> MessageRecord:
        channel = self._path_channel(request)
        message = self._emu.messages.get(_snowflake(request, "message_id"))
        if message is None or message.deleted or message.ephemeral:
            raise errors.unknown_message()
        if message.channel_id != channel.id:
            raise errors.unknown_message()
        return message

    def _bot_permissions(self, channel: Any) -> int:
        emu = self._emu
        return emu.member_of(emu.bot, emu._guild_of(channel)).permissions

    async def get_channel(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._path_channel(request).payload())

    async def list_messages(self, request: web.Request) -> web.StreamResponse:
        channel = self._path_channel(request)
        limit = int(request.query.get("limit", "50"))
        newest_first = list(reversed(channel.messages))[:limit]
        return json_response([m.payload for m in newest_first])

    async def create_message(self, request: web.Request) -> web.StreamResponse:
        channel = self._path_channel(request)
        permissions = self._bot_permissions(channel)
        body, uploads = await self._message_body(request)
        if not permissions & VIEW_CHANNEL:
            raise errors.missing_access()
        if not permissions & SEND_MESSAGES or (uploads and not permissions & ATTACH_FILES):
            raise errors.missing_permissions()
        message = await self._emu._create_message(
            channel=channel, via="channel", body=body, uploads=uploads
        )
        return json_response(message.payload)

    async def typing(self, request: web.Request) -> web.StreamResponse:
        self._path_channel(request)
        return web.Response(status=204)

    async def get_message(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._channel_message(request).payload)

    async def edit_message(self, request: web.Request) -> web.StreamResponse:
        message = self._channel_message(request)
        if message.payload["author"]["id"] != str(self._emu.bot.id):
            raise errors.not_author()
        body, uploads = await self._message_body(request)
        await self._emu._edit_message(message, body, uploads)
        return json_response(message.payload)

    async def delete_message(self, request: web.Request) -> web.StreamResponse:
        message = self._channel_message(request)
        channel = self._path_channel(request)
        own = message.payload["author"]["id"] == str(self._emu.bot.id)
        if not own and not self._bot_permissions(channel) & MANAGE_MESSAGES:
            raise errors.missing_permissions()
        await self._emu._delete_message(message)
        return web.Response(status=204)

    # -- CDN ----------------------------------------------------------------------------------

    async def cdn(self, request: web.Request) -> web.StreamResponse:
        emu = self._emu
        raw_id = request.match_info["attachment_id"]
        entry = emu._cdn.get(int(raw_id)) if raw_id.isdigit() else None
        if entry is None or entry.filename != request.match_info["filename"]:
            return web.Response(status=404, text="This content is no longer available.")
        emu.downloads[int(raw_id)] += 1
        return web.Response(body=entry.data, headers={"Content-Type": entry.content_type})


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


def _snowflake(request: web.Request, key: str) -> int:
    raw = request.match_info[key]
    if not raw.isdigit():
        raise errors.invalid_form({key: f'NUMBER_TYPE_COERCE: Value "{raw}" is not snowflake.'})
    return int(raw)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _check_chat_input(command: dict[str, Any], where: str, problems: dict[str, str]) -> None:
    """Discord's rules for a slash command or subcommand: names, descriptions, option order."""
    name = command.get("name", "")
    if not _COMMAND_NAME.match(name) or name != name.lower():
        problems[f"{where}.name"] = "APPLICATION_COMMAND_INVALID_NAME: Command name is invalid"
    if not 1 <= len(command.get("description", "")) <= 100:
        problems[f"{where}.description"] = (
            "BASE_TYPE_BAD_LENGTH: Must be between 1 and 100 in length."
        )
    options = command.get("options") or []
    if len(options) > 25:
        problems[f"{where}.options"] = "BASE_TYPE_MAX_LENGTH: Must be 25 or fewer in length."
    optional_seen = False
    for j, option in enumerate(options):
        here = f"{where}.options.{j}"
        if option.get("type") in (1, 2):
            _check_chat_input(option, here, problems)
            continue
        if option.get("required"):
            if optional_seen:
                problems[f"{here}.required"] = (
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID: "
                    "Required options must be placed before non-required options"
                )
        else:
            optional_seen = True
        if not _COMMAND_NAME.match(option.get("name", "")):
            problems[f"{here}.name"] = "APPLICATION_COMMAND_INVALID_NAME: Option name is invalid"
        if not 1 <= len(option.get("description", "")) <= 100:
            problems[f"{here}.description"] = (
                "BASE_TYPE_BAD_LENGTH: Must be between 1 and 100 in length."
            )
        if len(option.get("choices") or []) > 25:
            problems[f"{here}.choices"] = "BASE_TYPE_MAX_LENGTH: Must be 25 or fewer in length."
