"""``DiscordEmulator``: the state of a small Discord, served on loopback to a real discord.py."""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import discord
from aiohttp import web

from . import errors
from .faults import Fault, RateLimiter
from .gateway import GUILD_MEMBERS, GUILD_MESSAGES, MESSAGE_CONTENT, PRIVILEGED_INTENTS, Gateway
from .messages import COMPONENTS_V2, Upload, content_type_of
from .records import (
    DEFAULT_TIMEOUT,
    EPHEMERAL,
    LOADING,
    Changes,
    InteractionRecord,
    MessageRecord,
    RequestRecord,
    SentFile,
    Via,
)
from .rest import API_PREFIX, RestApi
from .world import (
    ADMINISTRATOR,
    BOT_PERMISSIONS,
    CATEGORY_CHANNEL,
    EVERYONE_PERMISSIONS,
    EmuChannel,
    EmuGuild,
    EmuMember,
    EmuRole,
    EmuUser,
    Snowflakes,
    iso_now,
    permission_value,
)

log = logging.getLogger(__name__)

DEFAULT_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.emulator.not-a-real-token"
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # what Discord lets a bot upload in a boost-less guild
SUPPRESS_EMBEDS = 1 << 2

# Application flags Discord sets when the privileged intents are switched on in the portal.
_APP_FLAG_FOR_INTENT = {1 << 1: 1 << 15, 1 << 8: 1 << 13, 1 << 15: 1 << 19}

# Application command option types, as numbered by the API.
SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = (
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
)
_MENTION = re.compile(r"<@!?(\d+)>")


@dataclass(frozen=True, eq=False)
class _CdnEntry:
    filename: str
    data: bytes
    content_type: str


class DiscordEmulator:
    """A loopback Discord for one bot: REST under ``api_base``, the gateway, and a CDN.

    Out of the box it has one guild with a ``general`` and a ``style-lab`` text channel, three
    people (``alice``, the default invoker; ``bob``; ``olivia``, the owner) and the bot.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        application_id: int | None = None,
        bot_name: str = "StyleBot",
        guild_names: Sequence[str] = ("Emulated Guild",),
        bot_permissions: int | discord.Permissions = BOT_PERMISSIONS,
        privileged_intents: int = PRIVILEGED_INTENTS,
        heartbeat_interval: float = 2.0,
        rate_limit: int = 50,
        rate_limit_per: float = 1.0,
        callback_deadline: float | None = 3.0,
        upload_limit: int = DEFAULT_UPLOAD_LIMIT,
        strict: bool = True,
        host: str = "127.0.0.1",
    ) -> None:
        """
        ``privileged_intents``: the intents switched on in the developer portal; identifying
        with others closes the gateway with 4014. ``heartbeat_interval``: seconds, sent in
        HELLO. ``callback_deadline``: seconds the bot has to answer an interaction (Discord: 3)
        before its callback gets 404 Unknown interaction; None for no deadline.
        ``upload_limit``: bytes per file. ``strict``: on a clean exit, fail if the bot called
        a route the emulator does not know or an emulator handler crashed.
        """
        if not guild_names:
            raise ValueError("the emulator needs at least one guild")
        self.token = token
        self.host = host
        self.heartbeat_interval = heartbeat_interval
        self.callback_deadline = callback_deadline
        self.upload_limit = upload_limit
        self.privileged_intents = privileged_intents
        self.strict = strict
        self.snowflakes = Snowflakes()
        self.application_id = application_id or self.snowflakes.next()
        self.application_flags = 0
        for intent, flag in _APP_FLAG_FOR_INTENT.items():
            if privileged_intents & intent:
                self.application_flags |= flag
        self.bot = EmuUser(self.application_id, bot_name, bot=True)
        self.owner = EmuUser(self.snowflakes.next(), "olivia")
        self._bot_permissions = permission_value(bot_permissions)

        self.guilds: list[EmuGuild] = []
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.requests: list[RequestRecord] = []
        self.unexpected: list[RequestRecord] = []  # requests to routes the emulator does not know
        self.internal_errors: list[str] = []  # emulator handlers that crashed (a bug here)
        self.interactions: list[InteractionRecord] = []
        self.messages: dict[int, MessageRecord] = {}
        self.downloads: Counter[int] = Counter()  # attachment id -> CDN downloads
        self.faults: list[Fault] = []

        self._changes = Changes()
        self._limiter = RateLimiter(rate_limit, rate_limit_per)
        self._gateway = Gateway(self)
        self._rest = RestApi(self)
        self._cdn: dict[int, _CdnEntry] = {}
        self._by_token: dict[str, InteractionRecord] = {}
        self._by_id: dict[int, InteractionRecord] = {}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

        for name in guild_names:
            self.add_guild(name)
        self.guild = self.guilds[0]
        self.channel = self.guild.channel("general")
        self.member = self.guild.member("alice")  # who invokes commands unless told otherwise

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(
            middlewares=[self._rest.middleware], client_max_size=self.upload_limit * 11
        )
        app.add_routes(
            [
                web.get("/gateway", self._gateway.handle),
                web.get("/gateway/resume", self._gateway.handle),
            ]
        )
        app.add_routes(self._rest.routes())
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        log.info("Discord emulator on %s", self.base_url)

    async def close(self) -> None:
        self._closing.set()  # lets hanging faults return so that shutdown does not wait on them
        if self._runner is not None:
            await self._gateway.close(1001, "Emulator shutting down")
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        await self.close()
        if exc_type is None and self.strict:
            self.assert_no_unexpected()

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

    # -- the world ----------------------------------------------------------------------------

    @property
    def users(self) -> dict[str, EmuMember]:
        """The default guild's members by username (the bot included)."""
        return {m.name: m for m in self.guild.members}

    @property
    def bot_member(self) -> EmuMember:
        return self.member_of(self.bot, self.guild)

    def member_of(self, user: EmuUser | EmuMember, guild: EmuGuild) -> EmuMember:
        user_id = user.id
        member = guild.get_member(user_id)
        if member is None:
            raise LookupError(f"user {user_id} is not in {guild.name!r}")
        return member

    def add_guild(self, name: str) -> EmuGuild:
        """A guild the bot is in (announced by GUILD_CREATE at the next IDENTIFY)."""
        guild_id = self.snowflakes.next()
        guild = EmuGuild(id=guild_id, name=name, owner_id=self.owner.id)
        guild.roles.append(EmuRole(guild_id, "@everyone", EVERYONE_PERMISSIONS))
        bot_role = EmuRole(self.snowflakes.next(), self.bot.username, self._bot_permissions, 1)
        bot_role.managed = True
        guild.roles.append(bot_role)
        category = EmuChannel(self.snowflakes.next(), guild_id, "Text Channels", CATEGORY_CHANNEL)
        guild.channels.append(category)
        for position, channel_name in enumerate(("general", "style-lab")):
            guild.channels.append(
                EmuChannel(
                    self.snowflakes.next(),
                    guild_id,
                    channel_name,
                    position=position,
                    parent_id=category.id,
                )
            )
        guild.members.append(EmuMember(self.bot, guild, roles=[bot_role]))
        guild.members.append(EmuMember(self.owner, guild))
        self.guilds.append(guild)
        self.make_member("alice", guild=guild)
        self.make_member("bob", guild=guild)
        return guild

    def make_member(
        self,
        name: str,
        *,
        permissions: int | discord.Permissions | None = None,
        guild: EmuGuild | None = None,
        nick: str | None = None,
    ) -> EmuMember:
        """A new person in ``guild`` (default: the default guild).

        ``permissions``: given, the member gets a role of their own with exactly these on top
        of @everyone's (``discord.Permissions(administrator=True)`` for an admin); otherwise
        they have @everyone's. The bot hears of them with their first interaction, as a bot
        without the members intent does.
        """
        guild = guild or self.guild
        user = EmuUser(self.snowflakes.next(), name)
        member = EmuMember(user, guild, nick=nick)
        if permissions is not None:
            role = EmuRole(self.snowflakes.next(), f"{name}'s role", permission_value(permissions))
            role.position = len(guild.roles)
            guild.roles.append(role)
            member.roles.append(role)
            self._gateway.tell_later(
                "GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": role.payload()}
            )
        guild.members.append(member)
        return member

    def make_channel(self, name: str, *, guild: EmuGuild | None = None) -> EmuChannel:
        """A new text channel (made before the bot connects, or it will not know of it)."""
        guild = guild or self.guild
        channel = EmuChannel(
            self.snowflakes.next(), guild.id, name, position=len(guild.text_channels)
        )
        guild.channels.append(channel)
        return channel

    def set_bot_permissions(
        self, permissions: int | discord.Permissions, *, guild: EmuGuild | None = None
    ) -> None:
        """Set the permissions of the bot's role in ``guild`` (as an admin would); the bot keeps
        @everyone's too, so to take one away, take it from ``guild.everyone.permissions`` too."""
        member = self.member_of(self.bot, guild or self.guild)
        member.roles[0].permissions = permission_value(permissions)

    def add_attachment(
        self,
        filename: str,
        data: bytes,
        content_type: str | None = None,
        *,
        width: int | None = None,
        height: int | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """Put ``data`` on the CDN and return the attachment payload a user upload would have.

        Pass the returned dict as the value of an attachment option in ``invoke_slash``.
        """
        attachment_id = self.snowflakes.next()
        content_type = content_type_of(filename, content_type)
        self._cdn[attachment_id] = _CdnEntry(filename, data, content_type)
        payload: dict[str, Any] = self._attachment_payload(attachment_id, filename, data)
        payload["content_type"] = content_type
        if width is not None and height is not None:
            payload["width"], payload["height"] = width, height
        if description is not None:
            payload["description"] = description
        return payload

    def cdn_url(self, attachment_id: int, filename: str) -> str:
        # Discord signs attachment URLs; the query is decoration here but keeps the shape real.
        query = f"ex={0x7FFFFFFF:x}&is={0:x}&hm={secrets.token_hex(16)}&"
        return f"{self.base_url}/cdn/attachments/{attachment_id}/{filename}?{query}"

    def _attachment_payload(self, attachment_id: int, filename: str, data: bytes) -> dict[str, Any]:
        url = self.cdn_url(attachment_id, filename)
        return {
            "id": str(attachment_id),
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url.replace("/cdn/attachments/", "/cdn/media/attachments/"),
        }

    # -- application commands -----------------------------------------------------------------

    def commands_for(self, guild: EmuGuild | None = None) -> list[dict[str, Any]]:
        """The commands a member of ``guild`` sees: the guild's own, then the global ones.

        ``None`` means the global commands only.
        """
        if guild is None:
            return list(self.global_commands)
        return self.guild_commands.get(guild.id, []) + self.global_commands

    def command(self, name: str, *, guild: EmuGuild | None = None) -> dict[str, Any]:
        """A synced chat-input command by top-level name, as the bot synced it."""
        guild = guild or self.guild
        for command in self.commands_for(guild):
            if command["name"] == name and command.get("type", 1) == 1:
                return command
        synced = sorted(c["name"] for c in self.commands_for(guild))
        raise LookupError(f"no slash command {name!r} synced for {guild.name!r}; synced: {synced}")

    # -- interactions -------------------------------------------------------------------------

    async def invoke_slash(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        user: EmuMember | None = None,
        channel: EmuChannel | None = None,
        attachments: Mapping[str, Mapping[str, Any]] | None = None,
        locale: str = "en-US",
        validate: bool = True,
        craft: Callable[[dict[str, Any]], None] | None = None,
    ) -> InteractionRecord:
        """Dispatch INTERACTION_CREATE for ``/name`` (``"group sub"`` for subcommands).

        Option values are typed by the synced command: str, int, float, bool; an
        ``EmuMember``/``EmuUser``, ``EmuChannel`` or ``EmuRole`` for those types; for
        attachments, a payload from ``add_attachment`` (in ``options`` or ``attachments``).
        With ``validate``, refuses what Discord's client would not send (unknown or missing
        options, values outside choices, ranges or lengths). ``craft`` may change the whole
        payload just before it is dispatched, as a forged interaction would.
        """
        channel = channel or self.channel
        guild = self._guild_of(channel)
        user = user or (self.member if guild is self.guild else guild.members[-1])
        values: dict[str, Any] = dict(options or {}) | dict(attachments or {})
        parts = name.split()
        command = self.command(parts[0], guild=guild)
        resolved: dict[str, dict[str, Any]] = {}
        spec: dict[str, Any] = command
        path = [parts[0]]
        chain: list[dict[str, Any]] = []
        for part in parts[1:]:
            sub = next(
                (
                    o
                    for o in spec.get("options", [])
                    if o["name"] == part and o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)
                ),
                None,
            )
            if sub is None:
                raise LookupError(f"/{' '.join(path)} has no subcommand {part!r}")
            spec = sub
            path.append(part)
            chain.append(sub)
        if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in spec.get("options", [])):
            raise ValueError(f"/{' '.join(path)} is a group; name one of its subcommands")
        leaf = self._build_options(
            spec.get("options", []), values, guild, resolved, validate=validate, path=path
        )
        for sub in reversed(chain):
            leaf = [{"name": sub["name"], "type": sub["type"], "options": leaf}]
        data: dict[str, Any] = {
            "id": command["id"],
            "name": command["name"],
            "type": 1,
            "options": leaf,
        }
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        if resolved:
            data["resolved"] = resolved
        return await self._interact(2, data, user=user, channel=channel, locale=locale, craft=craft)

    async def invoke_message_command(
        self,
        name: str,
        message: MessageRecord,
        *,
        user: EmuMember | None = None,
        channel: EmuChannel | None = None,
    ) -> InteractionRecord:
        """A member picks the message command (context menu) ``name`` on ``message``."""
        channel = channel or self._channel(message.channel_id)
        guild = self._guild_of(channel)
        user = user or (self.member if guild is self.guild else guild.members[-1])
        command = next(
            (c for c in self.commands_for(guild) if c["name"] == name and c.get("type") == 3),
            None,
        )
        if command is None:
            raise LookupError(f"no message command {name!r} synced for {guild.name!r}")
        data: dict[str, Any] = {
            "id": command["id"],
            "name": name,
            "type": 3,
            "target_id": str(message.id),
            "resolved": {"messages": {str(message.id): copy.deepcopy(message.payload)}},
        }
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        return await self._interact(2, data, user=user, channel=channel)

    async def autocomplete(
        self,
        name: str,
        option: str,
        typed: str,
        *,
        user: EmuMember | None = None,
        channel: EmuChannel | None = None,
    ) -> list[dict[str, Any]]:
        """The choices the bot offers while a member types ``typed`` into ``/name option``."""
        channel = channel or self.channel
        guild = self._guild_of(channel)
        user = user or (self.member if guild is self.guild else guild.members[-1])
        command = self.command(name, guild=guild)
        spec = next((o for o in command.get("options", []) if o["name"] == option), None)
        if spec is None or not spec.get("autocomplete"):
            raise LookupError(f"/{name} has no autocompleted option {option!r}")
        data: dict[str, Any] = {
            "id": command["id"],
            "name": name,
            "type": 1,
            "options": [{"name": option, "type": spec["type"], "value": typed, "focused": True}],
        }
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        record = await self._interact(4, data, user=user, channel=channel)
        await record.wait_for(lambda rec: rec.callback)
        return list(record.callback.data.get("choices", []))

    async def press_button(
        self,
        message: MessageRecord,
        custom_id: str,
        *,
        user: EmuMember | None = None,
        craft: Callable[[dict[str, Any]], None] | None = None,
    ) -> InteractionRecord:
        """Press the button ``custom_id`` on ``message`` as ``user`` (default: ``emu.member``);
        ``craft`` may change the payload as a forged interaction would."""
        component = self._pressable(message, custom_id, user, kind=2)
        data = {"custom_id": custom_id, "component_type": component["type"]}
        return await self._component(message, data, user, craft=craft)

    async def choose(
        self,
        message: MessageRecord,
        custom_id: str,
        values: Sequence[str],
        *,
        user: EmuMember | None = None,
        craft: Callable[[dict[str, Any]], None] | None = None,
    ) -> InteractionRecord:
        """Pick ``values`` in the string select menu ``custom_id`` on ``message``; ``craft`` may
        then change the payload as a forged interaction would (Discord itself only sends what
        the menu offers)."""
        component = self._pressable(message, custom_id, user, kind=3)
        offered = [o["value"] for o in component.get("options", [])]
        unknown = [v for v in values if v not in offered]
        if unknown:
            raise ValueError(f"select {custom_id!r} offers {offered}, not {unknown}")
        low, high = component.get("min_values", 1), component.get("max_values", 1)
        if not low <= len(values) <= high:
            raise ValueError(f"select {custom_id!r} takes {low} to {high} values")
        data = {"custom_id": custom_id, "component_type": 3, "values": list(values)}
        return await self._component(message, data, user, craft=craft)

    def _pressable(
        self, message: MessageRecord, custom_id: str, user: EmuMember | None, *, kind: int
    ) -> dict[str, Any]:
        if message.deleted:
            raise ValueError(f"message {message.id} was deleted")
        component = message.component(custom_id)
        if component is None:
            ids = [c.get("custom_id") for c in message.iter_components() if c.get("custom_id")]
            raise LookupError(f"message {message.id} has no component {custom_id!r}; it has {ids}")
        if component.get("type") != kind:
            raise ValueError(f"{custom_id!r} is component type {component.get('type')}, not {kind}")
        if component.get("disabled"):
            raise ValueError(f"{custom_id!r} is disabled; Discord would not let anyone use it")
        if message.ephemeral and message.interaction_id is not None:
            owner = self._by_id[message.interaction_id].user
            if (user or self.member) is not owner:
                raise ValueError(f"message {message.id} is ephemeral; only {owner.name} sees it")
        return component

    async def _component(
        self,
        message: MessageRecord,
        data: dict[str, Any],
        user: EmuMember | None,
        *,
        craft: Callable[[dict[str, Any]], None] | None = None,
    ) -> InteractionRecord:
        channel = self._channel(message.channel_id)
        guild = self._guild_of(channel)
        if message.interaction_id is not None and user is None:
            user = self._by_id[message.interaction_id].user
        user = user or (self.member if guild is self.guild else guild.members[-1])
        return await self._interact(
            3, data, user=user, channel=channel, source=message, craft=craft
        )

    async def _interact(
        self,
        type_: int,
        data: dict[str, Any],
        *,
        user: EmuMember,
        channel: EmuChannel,
        source: MessageRecord | None = None,
        locale: str = "en-US",
        craft: Callable[[dict[str, Any]], None] | None = None,
    ) -> InteractionRecord:
        guild = self._guild_of(channel)
        if user.guild is not guild:
            raise ValueError(f"{user.name} is not a member of {guild.name!r}")
        interaction_id = self.snowflakes.next()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": type_,
            "data": data,
            "guild": guild.partial_payload(),
            "guild_id": str(guild.id),
            "channel": channel.payload() | {"permissions": str(user.permissions)},
            "channel_id": str(channel.id),
            "member": user.payload(with_permissions=True),
            "token": token,
            "version": 1,
            "app_permissions": str(self.member_of(self.bot, guild).permissions),
            "locale": locale,
            "guild_locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": self.upload_limit,
        }
        if source is not None:
            payload["message"] = copy.deepcopy(source.payload)
        if craft is not None:
            craft(payload)
        record = InteractionRecord(
            id=interaction_id,
            token=token,
            type=type_,
            payload=payload,
            user=user,
            channel=channel,
            source=source,
            changes=self._changes,
        )
        if self._gateway.session is None:
            raise RuntimeError("the bot has no gateway session; await emu.wait_ready() first")
        self.interactions.append(record)
        self._by_id[interaction_id] = record
        self._by_token[token] = record
        record.dispatched_at = asyncio.get_running_loop().time()
        await self._gateway.dispatch("INTERACTION_CREATE", payload)
        self._changes.notify()
        return record

    def _build_options(
        self,
        spec: list[dict[str, Any]],
        values: dict[str, Any],
        guild: EmuGuild,
        resolved: dict[str, dict[str, Any]],
        *,
        validate: bool,
        path: list[str],
    ) -> list[dict[str, Any]]:
        where = "/" + " ".join(path)
        known = {o["name"]: o for o in spec}
        unknown = [k for k in values if k not in known]
        if unknown:
            raise ValueError(f"{where} has no option(s) {unknown}; it has {list(known)}")
        out: list[dict[str, Any]] = []
        for option in spec:
            name = option["name"]
            if name not in values or values[name] is None:
                if option.get("required") and validate:
                    raise ValueError(f"{where} needs option {name!r}")
                continue
            value = self._option_value(option, values[name], guild, resolved, validate, where)
            out.append({"name": name, "type": option["type"], "value": value})
        return out

    def _option_value(
        self,
        option: dict[str, Any],
        value: Any,
        guild: EmuGuild,
        resolved: dict[str, dict[str, Any]],
        validate: bool,
        where: str,
    ) -> Any:
        kind, name = option["type"], option["name"]

        def refuse(why: str) -> ValueError:
            return ValueError(f"{where} option {name!r}: {why}")

        if kind == STRING:
            if not isinstance(value, str):
                raise refuse(f"expects a str, got {value!r}")
            if validate and not option.get("min_length", 0) <= len(value) <= option.get(
                "max_length", 6000
            ):
                raise refuse(f"length {len(value)} is outside the allowed range")
        elif kind in (INTEGER, NUMBER):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise refuse(f"expects a number, got {value!r}")
            if kind == INTEGER and value != int(value):
                raise refuse(f"expects an integer, got {value!r}")
            value = int(value) if kind == INTEGER else value
            low, high = option.get("min_value"), option.get("max_value")
            if validate and (low is not None and value < low or high is not None and value > high):
                raise refuse(f"{value} is outside [{low}, {high}]")
        elif kind == BOOLEAN:
            if not isinstance(value, bool):
                raise refuse(f"expects a bool, got {value!r}")
        elif kind in (USER, MENTIONABLE) and isinstance(value, EmuMember | EmuUser):
            member = guild.get_member(value.id)
            user = value.user if isinstance(value, EmuMember) else value
            resolved.setdefault("users", {})[str(user.id)] = user.payload()
            if member is not None:
                resolved.setdefault("members", {})[str(user.id)] = member.payload(
                    with_user=False, with_permissions=True
                )
            return str(user.id)
        elif kind in (ROLE, MENTIONABLE) and isinstance(value, EmuRole):
            resolved.setdefault("roles", {})[str(value.id)] = value.payload()
            return str(value.id)
        elif kind == CHANNEL and isinstance(value, EmuChannel):
            allowed = option.get("channel_types")
            if validate and allowed and value.type not in allowed:
                raise refuse(f"channel type {value.type} is not one of {allowed}")
            entry = {
                k: v for k, v in value.payload().items() if k in ("id", "name", "type", "parent_id")
            }
            resolved.setdefault("channels", {})[str(value.id)] = entry | {
                "permissions": str(ADMINISTRATOR)
            }
            return str(value.id)
        elif kind == ATTACHMENT:
            if not isinstance(value, Mapping) or int(value.get("id", 0)) not in self._cdn:
                raise refuse("expects a payload from emu.add_attachment()")
            resolved.setdefault("attachments", {})[str(value["id"])] = dict(value)
            return str(value["id"])
        else:
            raise refuse(f"cannot send {value!r} as option type {kind}")
        choices = option.get("choices")
        if validate and choices and value not in [c["value"] for c in choices]:
            raise refuse(f"{value!r} is not one of the choices {[c['value'] for c in choices]}")
        return value

    # -- members talking ----------------------------------------------------------------------

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
        channel = channel or self.channel
        message = MessageRecord(self.snowflakes.next(), channel.id, "user", None)
        payload = self._base_message(message, channel, user.user, msg_type=0)
        payload["content"] = content
        payload["attachments"] = [dict(a) for a in attachments]
        payload["mentions"] = self._mentions(content, channel)
        files = tuple(self._sent_file(a) for a in payload["attachments"])
        message._push(self._now(), payload, files)
        self.messages[message.id] = message
        channel.log.append(message)
        event = copy.deepcopy(payload) | {
            "guild_id": str(channel.guild_id),
            "member": user.payload(with_user=False),
        }
        mentioned = str(self.bot.id) in [m["id"] for m in payload["mentions"]]
        if not self._gateway.intents() & MESSAGE_CONTENT and not mentioned:
            event |= {"content": "", "embeds": [], "attachments": [], "components": []}
        await self._gateway.dispatch("MESSAGE_CREATE", event, intent=GUILD_MESSAGES)
        self._changes.notify()
        return message

    # -- failures -----------------------------------------------------------------------------

    def fail_next(
        self,
        route: str,
        *,
        status: int = 429,
        times: int | None = 1,
        retry_after: float = 0.05,
        is_global: bool = False,
    ) -> Fault:
        """Answer the next ``times`` requests matching ``route`` with ``status``.

        ``route``: ``"POST /channels/*/messages"``, ``"/webhooks/*"``, ``"GET /cdn/*"``... (see
        ``Fault``). A 429 carries ``retry_after`` and Discord's rate-limit headers; discord.py
        retries 429s and 500/502/504 (after 1 s, 3 s, ...), and gives up on other statuses.
        """
        return self._add_fault(
            Fault(route, status, times, retry_after=retry_after, is_global=is_global)
        )

    def hang_next(self, route: str, *, times: int | None = 1, status: int | None = None) -> Fault:
        """Hold the next matching requests until ``fault.release()`` or the emulator closes;
        then answer with ``status``, or normally when it is None."""
        return self._add_fault(Fault(route, status, times, hang=True))

    def delay_next(self, route: str, seconds: float, *, times: int | None = 1) -> Fault:
        """Answer the next matching requests normally, but ``seconds`` late."""
        return self._add_fault(Fault(route, None, times, delay=seconds))

    def clear_faults(self) -> None:
        for fault in self.faults:
            fault.release()
        self.faults.clear()

    def _add_fault(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                fault.hits += 1
                return fault
        return None

    # -- gateway control ----------------------------------------------------------------------

    @property
    def identify_count(self) -> int:
        return self._gateway.identify_count

    @property
    def resume_count(self) -> int:
        return self._gateway.resume_count

    @property
    def gateway_connections(self) -> int:
        """How many WebSocket connections the bot has opened so far."""
        return self._gateway.connect_count

    @property
    def gateway_paths(self) -> list[str]:
        """The path of each open gateway connection (``/gateway`` or ``/gateway/resume``)."""
        return [c.path for c in self._gateway.connections]

    @property
    def presences(self) -> list[dict[str, Any]]:
        """Every presence update (op 3) the bot sent."""
        return self._gateway.presences

    def drop_gateway(self) -> None:
        """Cut the gateway connection without a close frame, like a network failure."""
        self._gateway.drop()

    async def close_gateway(self, code: int = 4000, reason: str = "") -> None:
        """Close the gateway connection with ``code`` (4000: resumable; 4004: bad token...)."""
        await self._gateway.close(code, reason)

    async def send_reconnect(self) -> None:
        """Op 7 RECONNECT: Discord asks the client to reconnect and resume."""
        await self._gateway.send_op(7, None)

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        """Op 9 INVALID_SESSION; when not resumable, the client identifies anew."""
        await self._gateway.send_op(9, resumable)

    async def replay(self, interaction: InteractionRecord) -> None:
        """Deliver ``interaction`` again, as a gateway does when a RESUME replays from a sequence
        the client had in fact seen: the connection drops, the client resumes, and the replay
        starts at that interaction's INTERACTION_CREATE (and goes on with what came after)."""
        self._gateway.replay_from(interaction.id)
        resumed = self.resume_count
        self.drop_gateway()
        await self.wait_until(lambda: self.resume_count > resumed, what="the RESUME")

    async def dispatch(self, event: str, data: dict[str, Any]) -> int | None:
        """Send any gateway dispatch the emulator has no helper for; returns its sequence."""
        return await self._gateway.dispatch(event, data)

    # -- waiting ------------------------------------------------------------------------------

    async def wait_until(
        self, predicate: Callable[[], object], *, timeout: float = DEFAULT_TIMEOUT, what: str = ""
    ) -> None:
        await self._changes.wait_until(
            lambda: bool(predicate()),
            timeout=timeout,
            describe=lambda: (what or "a condition") + "\n" + self.summary(),
        )

    async def wait_ready(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Until READY and every GUILD_CREATE went out on a live connection.

        The client fires ``on_ready`` a little later: after ``guild_ready_timeout`` (2 s by
        default; tests should pass a small one to the client).
        """
        await self.wait_until(lambda: self._gateway.ready, timeout=timeout, what="READY")

    async def wait_for_commands(
        self, *names: str, guild: EmuGuild | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> list[dict[str, Any]]:
        """Until the bot has synced commands (at least ``names``) visible in ``guild``."""

        def synced() -> list[dict[str, Any]] | None:
            commands = self.commands_for(guild or self.guild)
            have = {c["name"] for c in commands}
            return commands if commands and have.issuperset(names) else None

        return await self._changes.wait_until(
            synced, timeout=timeout, describe=lambda: f"commands {names or ''} to be synced"
        )

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

        return await self._changes.wait_until(
            found, timeout=timeout, describe=lambda: "a channel message\n" + self.summary()
        )

    # -- inspection ---------------------------------------------------------------------------

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
        lines = [
            f"gateway: identifies={self.identify_count} resumes={self.resume_count} "
            f"connections={len(self._gateway.connections)}"
        ]
        lines += [f"request: {r.summary()}" for r in self.requests[-20:]]
        return "\n".join(lines)

    # -- internals shared with the REST handlers ----------------------------------------------

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _guild_of(self, channel: EmuChannel) -> EmuGuild:
        return next(g for g in self.guilds if g.id == channel.guild_id)

    def _channel(self, channel_id: int) -> EmuChannel:
        for guild in self.guilds:
            channel = guild.get_channel(channel_id)
            if channel is not None:
                return channel
        raise errors.unknown_channel()

    def _guild_create_payload(self, guild: EmuGuild) -> dict[str, Any]:
        # Without the members intent, GUILD_CREATE lists only the bot itself.
        if self._gateway.intents() & GUILD_MEMBERS:
            members = guild.members
        else:
            members = [self.member_of(self.bot, guild)]
        return guild.create_payload(members=members)

    def _interaction_by_token(self, application_id: str, token: str) -> InteractionRecord:
        record = self._by_token.get(token)
        if record is None or application_id != str(self.application_id):
            raise errors.unknown_webhook()
        return record

    def _mentions(self, content: str, channel: EmuChannel) -> list[dict[str, Any]]:
        guild = self._guild_of(channel)
        out = []
        for user_id in dict.fromkeys(int(m) for m in _MENTION.findall(content or "")):
            member = guild.get_member(user_id)
            if member is not None:
                out.append(member.user.payload() | {"member": member.payload(with_user=False)})
        return out

    def _base_message(
        self, message: MessageRecord, channel: EmuChannel, author: EmuUser, *, msg_type: int
    ) -> dict[str, Any]:
        return {
            "id": str(message.id),
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

    def _sent_file(self, attachment: Mapping[str, Any]) -> SentFile:
        entry = self._cdn[int(attachment["id"])]
        return SentFile(
            id=int(attachment["id"]),
            filename=attachment["filename"],
            data=entry.data,
            content_type=entry.content_type,
            description=attachment.get("description"),
        )

    def _attachments(
        self,
        body: dict[str, Any],
        uploads: list[Upload],
        existing: list[dict[str, Any]],
        *,
        ephemeral: bool,
    ) -> list[dict[str, Any]]:
        """The attachments a create or edit ends with: those in ``body["attachments"]`` (kept
        by id, or new by upload index); without that key, the existing ones plus every upload."""
        by_index = {u.index: u for u in uploads}
        kept = {a["id"]: a for a in existing}
        out: list[dict[str, Any]] = []
        used: set[int] = set()
        descriptors = body.get("attachments")
        if descriptors is None:
            out.extend(existing)
            descriptors = []
        for descriptor in descriptors:
            key = str(descriptor.get("id"))
            if key in kept:
                out.append(kept[key])
            elif key.isdigit() and int(key) in by_index:
                used.add(int(key))
                out.append(self._store_upload(by_index[int(key)], descriptor, ephemeral))
            else:
                raise errors.invalid_form(
                    {"attachments": "ATTACHMENT_NOT_FOUND: Unknown attachment"}
                )
        for upload in uploads:
            if upload.index not in used:
                out.append(self._store_upload(upload, {}, ephemeral))
        return out

    def _store_upload(
        self, upload: Upload, descriptor: Mapping[str, Any], ephemeral: bool
    ) -> dict[str, Any]:
        attachment_id = self.snowflakes.next()
        filename = descriptor.get("filename") or upload.filename
        content_type = content_type_of(filename, upload.content_type)
        self._cdn[attachment_id] = _CdnEntry(filename, upload.data, content_type)
        payload = self._attachment_payload(attachment_id, filename, upload.data)
        payload["content_type"] = content_type
        if descriptor.get("description"):
            payload["description"] = descriptor["description"]
        if ephemeral:
            payload["ephemeral"] = True
        return payload

    def _resolve_embed_files(
        self, embeds: list[dict[str, Any]], attachments: list[dict[str, Any]]
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

    async def _create_message(
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
            self.snowflakes.next(), channel.id, via, interaction.id if interaction else None
        )
        msg_type = 0
        if interaction is not None and interaction.type == 2:
            msg_type = 20  # CHAT_INPUT_COMMAND
        elif interaction is not None:
            msg_type = 19  # REPLY: component responses are replies to the component's message
        payload = self._base_message(message, channel, self.bot, msg_type=msg_type)
        payload["flags"] = (flags & (EPHEMERAL | SUPPRESS_EMBEDS | COMPONENTS_V2 | (1 << 12))) | (
            LOADING if loading else 0
        )
        if not ephemeral:
            payload["flags"] &= ~EPHEMERAL
        payload["tts"] = bool(body.get("tts"))
        if interaction is not None:
            payload["webhook_id"] = str(self.application_id)
            payload["application_id"] = str(self.application_id)
            payload["interaction_metadata"] = self._interaction_metadata(interaction)
            payload["interaction"] = {
                "id": str(interaction.id),
                "type": interaction.type,
                "name": interaction.name or "",
                "user": interaction.user.user.payload(),
            }
            if interaction.source is not None and msg_type == 19:
                payload["message_reference"] = {
                    "type": 0,
                    "message_id": str(interaction.source.id),
                    "channel_id": str(channel.id),
                    "guild_id": str(channel.guild_id),
                }
        reference = body.get("message_reference")
        if reference and interaction is None:
            target = self.messages.get(int(reference.get("message_id", 0)))
            if target is None or target.deleted:
                if reference.get("fail_if_not_exists", True):
                    raise errors.invalid_form(
                        {"message_reference": "MESSAGE_REFERENCE_UNKNOWN_MESSAGE: Unknown message"}
                    )
            else:
                payload["message_reference"] = {
                    "type": 0,
                    "message_id": str(target.id),
                    "channel_id": str(target.channel_id),
                    "guild_id": str(channel.guild_id),
                }
                payload["referenced_message"] = copy.deepcopy(target.payload)
                payload["type"] = 19
        attachments = self._attachments(body, uploads, [], ephemeral=ephemeral)
        self._fill(payload, body, attachments, channel)
        if not loading:
            self._check_not_empty(payload)
        files = tuple(self._sent_file(a) for a in attachments)
        message._push(self._now(), payload, files)
        self.messages[message.id] = message
        if not ephemeral:
            channel.log.append(message)
            await self._dispatch_message("MESSAGE_CREATE", message, channel)
        self._changes.notify()
        return message

    async def _edit_message(
        self, message: MessageRecord, body: dict[str, Any], uploads: list[Upload]
    ) -> None:
        channel = self._channel(message.channel_id)
        payload = copy.deepcopy(message.payload)
        was_loading = bool(payload["flags"] & LOADING)
        if body.get("flags") is not None:
            settable = SUPPRESS_EMBEDS | COMPONENTS_V2
            payload["flags"] = (payload["flags"] & ~settable) | (int(body["flags"]) & settable)
        payload["flags"] &= ~LOADING
        attachments = self._attachments(
            body, uploads, payload["attachments"], ephemeral=message.ephemeral
        )
        self._fill(payload, body, attachments, channel)
        if not was_loading:
            payload["edited_timestamp"] = iso_now()
        self._check_not_empty(payload)
        files = tuple(self._sent_file(a) for a in attachments)
        message._push(self._now(), payload, files)
        if not message.ephemeral:
            await self._dispatch_message("MESSAGE_UPDATE", message, channel)
        self._changes.notify()

    async def _delete_message(self, message: MessageRecord) -> None:
        message.deleted = True
        channel = self._channel(message.channel_id)
        if not message.ephemeral:
            event = {
                "id": str(message.id),
                "channel_id": str(channel.id),
                "guild_id": str(channel.guild_id),
            }
            await self._gateway.dispatch("MESSAGE_DELETE", event, intent=GUILD_MESSAGES)
        self._changes.notify()

    def _fill(
        self,
        payload: dict[str, Any],
        body: dict[str, Any],
        attachments: list[dict[str, Any]],
        channel: EmuChannel,
    ) -> None:
        if "content" in body:
            payload["content"] = body["content"] or ""
            payload["mentions"] = self._mentions(payload["content"], channel)
        if "embeds" in body:
            payload["embeds"] = body["embeds"] or []
        if "components" in body:
            payload["components"] = copy.deepcopy(body["components"] or [])
        if "poll" in body and body["poll"]:
            payload["poll"] = body["poll"]
        payload["attachments"] = attachments
        payload["embeds"] = self._resolve_embed_files(payload["embeds"], attachments)

    @staticmethod
    def _check_not_empty(payload: dict[str, Any]) -> None:
        if not (
            payload["content"]
            or payload["embeds"]
            or payload["attachments"]
            or payload["components"]
            or payload.get("poll")
        ):
            raise errors.empty_message()

    def _interaction_metadata(self, interaction: InteractionRecord) -> dict[str, Any]:
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

    async def _dispatch_message(
        self, event: str, message: MessageRecord, channel: EmuChannel
    ) -> None:
        if self._gateway.session is None:
            return
        data = copy.deepcopy(message.payload) | {"guild_id": str(channel.guild_id)}
        if message.via != "user":
            data["member"] = self.member_of(self.bot, self._guild_of(channel)).payload(
                with_user=False
            )
        await self._gateway.dispatch(event, data, intent=GUILD_MESSAGES)
