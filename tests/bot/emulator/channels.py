"""Messages in channels: what the bot and members post, edit and delete, rendered as Discord
renders them and announced on the gateway; and the channel routes of the REST API."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import errors
from .cdn import Cdn
from .gateway import Gateway
from .messages import COMPONENTS_V2, Upload, message_body
from .records import (
    DEFAULT_TIMEOUT,
    EPHEMERAL,
    LOADING,
    MessageRecord,
    Via,
    loop_time,
)
from .routing import API_PREFIX, json_response, path_snowflake
from .state import State
from .world import (
    GUILD_MESSAGES,
    MESSAGE_CONTENT,
    EmuChannel,
    EmuMember,
    EmuUser,
    iso_now,
)

if TYPE_CHECKING:
    from .interactions import InteractionRecord

log = logging.getLogger(__name__)

SUPPRESS_EMBEDS = 1 << 2
SUPPRESS_NOTIFICATIONS = 1 << 12

VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
ATTACH_FILES = 1 << 15


class MessageBoard:
    """Every message, by id, and the one way each is made, edited or deleted."""

    def __init__(self, state: State, cdn: Cdn, gateway: Gateway) -> None:
        self.state = state
        self.cdn = cdn
        self.gateway = gateway
        self.messages: dict[int, MessageRecord] = {}

    async def create(
        self,
        *,
        channel: EmuChannel,
        via: Via,
        body: dict[str, Any],
        uploads: list[Upload],
        interaction: InteractionRecord | None = None,
        loading: bool = False,
    ) -> MessageRecord:
        """A message from the bot: a response (loading for deferrals), follow-up or post."""
        flags = int(body.get("flags") or 0)
        ephemeral = interaction is not None and bool(flags & EPHEMERAL)
        message = MessageRecord(
            self.state.snowflakes.next(), channel.id, via, interaction.id if interaction else None
        )
        msg_type = 0
        if interaction is not None and interaction.type == 2:
            msg_type = 20  # CHAT_INPUT_COMMAND
        elif interaction is not None:
            msg_type = 19  # REPLY: component responses are replies to the component's message
        payload = base_message(message.id, channel, self.state.app.bot, msg_type=msg_type)
        shown = EPHEMERAL | SUPPRESS_EMBEDS | COMPONENTS_V2 | SUPPRESS_NOTIFICATIONS
        payload["flags"] = (flags & shown) | (LOADING if loading else 0)
        if not ephemeral:
            payload["flags"] &= ~EPHEMERAL
        payload["tts"] = bool(body.get("tts"))
        if interaction is not None:
            payload |= answer_fields(interaction, channel, str(self.state.app.id), msg_type)
        reference = body.get("message_reference")
        if reference and interaction is None:
            payload |= self._reply_fields(reference, channel)
        attachments = self.cdn.attachments(body, uploads, [], ephemeral=ephemeral)
        self._fill(payload, body, attachments, channel)
        if not loading:
            check_not_empty(payload)
        message.push(loop_time(), payload, tuple(self.cdn.sent_file(a) for a in attachments))
        self.messages[message.id] = message
        if not ephemeral:
            channel.log.append(message)
            await self._announce("MESSAGE_CREATE", message, channel)
        self.state.changes.notify()
        return message

    async def edit(
        self, message: MessageRecord, body: dict[str, Any], uploads: list[Upload]
    ) -> None:
        channel = self.state.guilds.channel(message.channel_id)
        payload = copy.deepcopy(message.payload)
        was_loading = bool(payload["flags"] & LOADING)
        if body.get("flags") is not None:
            settable = SUPPRESS_EMBEDS | COMPONENTS_V2
            payload["flags"] = (payload["flags"] & ~settable) | (int(body["flags"]) & settable)
        payload["flags"] &= ~LOADING
        attachments = self.cdn.attachments(
            body, uploads, payload["attachments"], ephemeral=message.ephemeral
        )
        self._fill(payload, body, attachments, channel)
        if not was_loading:
            payload["edited_timestamp"] = iso_now()
        check_not_empty(payload)
        message.push(loop_time(), payload, tuple(self.cdn.sent_file(a) for a in attachments))
        if not message.ephemeral:
            await self._announce("MESSAGE_UPDATE", message, channel)
        self.state.changes.notify()

    async def delete(self, message: MessageRecord) -> None:
        message.deleted = True
        channel = self.state.guilds.channel(message.channel_id)
        if not message.ephemeral:
            event = {
                "id": str(message.id),
                "channel_id": str(channel.id),
                "guild_id": str(channel.guild_id),
            }
            await self.gateway.dispatch("MESSAGE_DELETE", event, intent=GUILD_MESSAGES)
        self.state.changes.notify()

    async def post_as(
        self,
        user: EmuMember,
        content: str = "",
        *,
        channel: EmuChannel | None = None,
        attachments: Iterable[Mapping[str, Any]] = (),
    ) -> MessageRecord:
        """``user`` posts a message (MESSAGE_CREATE; content hidden without the content intent
        unless it mentions the bot, as Discord does)."""
        channel = channel or self.state.defaults.channel
        message = MessageRecord(self.state.snowflakes.next(), channel.id, "user", None)
        payload = base_message(message.id, channel, user.user, msg_type=0)
        payload["content"] = content
        payload["attachments"] = [dict(a) for a in attachments]
        payload["mentions"] = self.state.guilds.mentions(content, channel)
        files = tuple(self.cdn.sent_file(a) for a in payload["attachments"])
        message.push(loop_time(), payload, files)
        self.messages[message.id] = message
        channel.log.append(message)
        event = copy.deepcopy(payload) | {
            "guild_id": str(channel.guild_id),
            "member": user.payload(with_user=False),
        }
        mentioned = str(self.state.app.bot.id) in [m["id"] for m in payload["mentions"]]
        if not self.gateway.intents() & MESSAGE_CONTENT and not mentioned:
            event |= {"content": "", "embeds": [], "attachments": [], "components": []}
        await self.gateway.dispatch("MESSAGE_CREATE", event, intent=GUILD_MESSAGES)
        self.state.changes.notify()
        return message

    async def wait_for_message(
        self,
        predicate: Callable[[MessageRecord], object] | None = None,
        *,
        channel: EmuChannel | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> MessageRecord:
        """The first message the bot posted through the channel endpoint (in ``channel``, if
        given) for which ``predicate`` holds."""

        def found() -> MessageRecord | None:
            for message in self.messages.values():
                if message.via != "channel" or message.deleted:
                    continue
                if channel is not None and message.channel_id != channel.id:
                    continue
                if predicate is None or predicate(message):
                    return message
            return None

        def describe() -> str:
            latest = list(self.messages.values())[-20:]
            return "\n".join(["a channel message"] + [f"message: {m.summary()}" for m in latest])

        return await self.state.changes.wait_until(found, timeout=timeout, describe=describe)

    def _reply_fields(self, reference: dict[str, Any], channel: EmuChannel) -> dict[str, Any]:
        """What a channel message that replies to another carries (nothing if that one is gone
        and the bot said not to fail)."""
        target = self.messages.get(int(reference.get("message_id", 0)))
        if target is None or target.deleted:
            if reference.get("fail_if_not_exists", True):
                raise errors.invalid_form(
                    {"message_reference": "MESSAGE_REFERENCE_UNKNOWN_MESSAGE: Unknown message"}
                )
            return {}
        return {
            "message_reference": {
                "type": 0,
                "message_id": str(target.id),
                "channel_id": str(target.channel_id),
                "guild_id": str(channel.guild_id),
            },
            "referenced_message": copy.deepcopy(target.payload),
            "type": 19,
        }

    def _fill(
        self,
        payload: dict[str, Any],
        body: dict[str, Any],
        attachments: list[dict[str, Any]],
        channel: EmuChannel,
    ) -> None:
        if "content" in body:
            payload["content"] = body["content"] or ""
            payload["mentions"] = self.state.guilds.mentions(payload["content"], channel)
        if "embeds" in body:
            payload["embeds"] = body["embeds"] or []
        if "components" in body:
            payload["components"] = copy.deepcopy(body["components"] or [])
        if "poll" in body and body["poll"]:
            payload["poll"] = body["poll"]
        payload["attachments"] = attachments
        payload["embeds"] = resolve_embed_files(payload["embeds"], attachments)

    async def _announce(self, event: str, message: MessageRecord, channel: EmuChannel) -> None:
        if self.gateway.session is None:
            return
        data = copy.deepcopy(message.payload) | {"guild_id": str(channel.guild_id)}
        if message.via != "user":
            data["member"] = self.state.guilds.bot_member(
                self.state.guilds.guild_of(channel)
            ).payload(with_user=False)
        await self.gateway.dispatch(event, data, intent=GUILD_MESSAGES)


def base_message(
    message_id: int, channel: EmuChannel, author: EmuUser, *, msg_type: int
) -> dict[str, Any]:
    """A new message's payload, empty."""
    return {
        "id": str(message_id),
        "channel_id": str(channel.id),
        "type": msg_type,
        "content": "",
        "author": author.payload(),
        "embeds": [],
        "components": [],
        "attachments": [],
        "mentions": [],
        "mention_roles": [],
        "mention_everyone": False,
        "pinned": False,
        "tts": False,
        "timestamp": iso_now(),
        "edited_timestamp": None,
        "flags": 0,
    }


def answer_fields(
    interaction: InteractionRecord, channel: EmuChannel, application_id: str, msg_type: int
) -> dict[str, Any]:
    """What a message answering ``interaction`` carries about it."""
    fields: dict[str, Any] = {
        "webhook_id": application_id,
        "application_id": application_id,
        "interaction_metadata": interaction_metadata(interaction),
        "interaction": {
            "id": str(interaction.id),
            "type": interaction.type,
            "name": interaction.name or "",
            "user": interaction.user.user.payload(),
        },
    }
    if interaction.source is not None and msg_type == 19:
        fields["message_reference"] = {
            "type": 0,
            "message_id": str(interaction.source.id),
            "channel_id": str(channel.id),
            "guild_id": str(channel.guild_id),
        }
    return fields


def interaction_metadata(interaction: InteractionRecord) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "id": str(interaction.id),
        "type": interaction.type,
        "user": interaction.user.user.payload(),
        "authorizing_integration_owners": {"0": str(interaction.channel.guild_id)},
    }
    if interaction.type == 2:
        metadata["name"] = interaction.name or ""
        metadata["command_type"] = 1
    elif interaction.source is not None:
        metadata["interacted_message_id"] = str(interaction.source.id)
    return metadata


def resolve_embed_files(
    embeds: list[dict[str, Any]], attachments: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    # Discord rewrites attachment://name in embeds to the uploaded file's CDN URL.
    by_name = {a["filename"]: a for a in attachments}
    out = []
    for embed in embeds:
        embed = copy.deepcopy(embed)
        embed.setdefault("type", "rich")
        for key in ("image", "thumbnail"):
            url = (embed.get(key) or {}).get("url", "")
            if url.startswith("attachment://") and url[13:] in by_name:
                attachment = by_name[url[13:]]
                embed[key] |= {"url": attachment["url"], "proxy_url": attachment["proxy_url"]}
        out.append(embed)
    return out


def check_not_empty(payload: dict[str, Any]) -> None:
    if not (
        payload["content"]
        or payload["embeds"]
        or payload["attachments"]
        or payload["components"]
        or payload.get("poll")
    ):
        raise errors.empty_message()


class ChannelRoutes:
    """``/channels/...``: what the bot reads, posts, edits and deletes through the channel
    endpoint, under the bot's permissions there."""

    def __init__(self, state: State, board: MessageBoard) -> None:
        self.state = state
        self.board = board

    def routes(self) -> list[web.AbstractRouteDef]:
        channel = API_PREFIX + "/channels/{channel_id}"
        message = channel + "/messages/{message_id}"
        return [
            web.get(channel, self.get_channel),
            web.get(channel + "/messages", self.list_messages),
            web.post(channel + "/messages", self.create_message),
            web.post(channel + "/typing", self.typing),
            web.get(message, self.get_message),
            web.patch(message, self.edit_message),
            web.delete(message, self.delete_message),
        ]

    def _path_channel(self, request: web.Request) -> EmuChannel:
        return self.state.guilds.channel(path_snowflake(request, "channel_id"))

    def _channel_message(self, request: web.Request) -> MessageRecord:
        channel = self._path_channel(request)
        message = self.board.messages.get(path_snowflake(request, "message_id"))
        if message is None or message.deleted or message.ephemeral:
            raise errors.unknown_message()
        if message.channel_id != channel.id:
            raise errors.unknown_message()
        return message

    def _bot_permissions(self, channel: EmuChannel) -> int:
        return self.state.guilds.bot_member(self.state.guilds.guild_of(channel)).permissions

    def _own(self, message: MessageRecord) -> bool:
        return message.payload["author"]["id"] == str(self.state.app.bot.id)

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
        body, uploads = await message_body(request, self.state.app.upload_limit)
        if not permissions & VIEW_CHANNEL:
            raise errors.missing_access()
        if not permissions & SEND_MESSAGES or (uploads and not permissions & ATTACH_FILES):
            raise errors.missing_permissions()
        message = await self.board.create(
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
        if not self._own(message):
            raise errors.not_author()
        body, uploads = await message_body(request, self.state.app.upload_limit)
        await self.board.edit(message, body, uploads)
        return json_response(message.payload)

    async def delete_message(self, request: web.Request) -> web.StreamResponse:
        message = self._channel_message(request)
        channel = self._path_channel(request)
        if not self._own(message) and not self._bot_permissions(channel) & MANAGE_MESSAGES:
            raise errors.missing_permissions()
        await self.board.delete(message)
        return web.Response(status=204)
