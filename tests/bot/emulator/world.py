"""The emulated application, guilds, channels, roles and members, and the payloads Discord sends
for them."""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import discord

if TYPE_CHECKING:
    from .records import MessageRecord

log = logging.getLogger(__name__)

DISCORD_EPOCH_MS = 1420070400000

# Gateway intents, as numbered by the API.
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT
# Application flags Discord sets when the privileged intents are switched on in the portal.
APP_FLAG_FOR_INTENT = {GUILD_MEMBERS: 1 << 15, GUILD_PRESENCES: 1 << 13, MESSAGE_CONTENT: 1 << 19}

# Channel types, as numbered by the API.
TEXT_CHANNEL = 0
CATEGORY_CHANNEL = 4

ALL_PERMISSIONS = discord.Permissions.all().value
ADMINISTRATOR = discord.Permissions(administrator=True).value
# What @everyone may do in a freshly made community server.
EVERYONE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    read_message_history=True,
    attach_files=True,
    embed_links=True,
    add_reactions=True,
    use_application_commands=True,
    use_external_emojis=True,
    connect=True,
    speak=True,
).value
# What the invite link of a typical image bot asks for.
BOT_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    read_message_history=True,
    attach_files=True,
    embed_links=True,
    add_reactions=True,
    use_application_commands=True,
).value


def iso_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


class Snowflakes:
    """Hands out ids shaped like Discord's, so ``created_at`` on the client side is sensible."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        candidate = (ms << 22) | (1 << 17) | (1 << 12)
        # Several ids in the same millisecond must still be distinct and increasing.
        self._last = max(candidate, self._last + 1)
        return self._last


def permission_value(permissions: int | discord.Permissions) -> int:
    return permissions.value if isinstance(permissions, discord.Permissions) else int(permissions)


@dataclass(eq=False)
class EmuUser:
    """A Discord user (a person or the bot)."""

    id: int
    username: str
    bot: bool = False
    global_name: str | None = None

    @property
    def name(self) -> str:
        return self.username

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "avatar_decoration_data": None,
            "banner": None,
            "accent_color": None,
            "public_flags": 0,
            "bot": self.bot,
            "system": False,
        }


@dataclass(eq=False)
class Application:
    """The bot's application: who it is, what its developer portal allows, and the limits
    Discord holds it to."""

    id: int
    # The bot's token: REST calls and IDENTIFY must carry it.
    token: str
    # The bot's own user, and the person who owns the application (and every guild).
    bot: EmuUser
    owner: EmuUser
    # The intents switched on in the developer portal; identifying with others closes with 4014.
    privileged_intents: int
    # Seconds between heartbeats, sent in HELLO.
    heartbeat_interval: float
    # Seconds the bot has to answer an interaction (Discord: 3) before its callback gets 404
    # Unknown interaction; None for no deadline.
    callback_deadline: float | None
    # Bytes per file the bot may upload (a test may change it).
    upload_limit: int

    @property
    def flags(self) -> int:
        """The application's flags, as the portal sets them for the privileged intents."""
        flags = 0
        for intent, flag in APP_FLAG_FOR_INTENT.items():
            if self.privileged_intents & intent:
                flags |= flag
        return flags


@dataclass(eq=False)
class EmuRole:
    id: int
    name: str
    permissions: int
    position: int = 0
    managed: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": False,
            "flags": 0,
        }


@dataclass(eq=False)
class EmuChannel:
    """A guild channel; ``messages`` is what members can see in it, oldest first."""

    id: int
    guild_id: int
    name: str
    type: int = TEXT_CHANNEL
    position: int = 0
    parent_id: int | None = None
    topic: str | None = None
    log: list[MessageRecord] = field(default_factory=list, repr=False)

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    @property
    def messages(self) -> list[MessageRecord]:
        """Visible messages: interaction responses and follow-ups that are not ephemeral, and
        messages posted through the channel endpoint, minus deleted ones."""
        return [m for m in self.log if not m.deleted]

    @property
    def posted(self) -> list[MessageRecord]:
        """Messages the bot posted through ``POST /channels/{id}/messages`` (not deleted)."""
        return [m for m in self.messages if m.via == "channel"]

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "guild_id": str(self.guild_id),
            "name": self.name,
            "type": self.type,
            "position": self.position,
            "permission_overwrites": [],
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "nsfw": False,
            "flags": 0,
        }
        if self.type == TEXT_CHANNEL:
            data |= {
                "topic": self.topic,
                "last_message_id": None,
                "rate_limit_per_user": 0,
                "default_auto_archive_duration": 1440,
            }
        return data


@dataclass(eq=False)
class EmuMember:
    """A user's membership in a guild; ``permissions`` is what their roles add up to."""

    user: EmuUser
    guild: EmuGuild = field(repr=False)
    roles: list[EmuRole] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = field(default_factory=iso_now)

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def name(self) -> str:
        return self.user.username

    @property
    def mention(self) -> str:
        return self.user.mention

    @property
    def permissions(self) -> int:
        if self.guild.owner_id == self.id:
            return ALL_PERMISSIONS
        value = self.guild.everyone.permissions
        for role in self.roles:
            value |= role.permissions
        return ALL_PERMISSIONS if value & ADMINISTRATOR else value

    def payload(self, *, with_user: bool = True, with_permissions: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "roles": [str(r.id) for r in self.roles],
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.payload()
        if with_permissions:
            data["permissions"] = str(self.permissions)
        return data


@dataclass(eq=False)
class EmuGuild:
    id: int
    name: str
    owner_id: int
    roles: list[EmuRole] = field(default_factory=list)
    channels: list[EmuChannel] = field(default_factory=list)
    members: list[EmuMember] = field(default_factory=list, repr=False)

    @property
    def everyone(self) -> EmuRole:
        return self.roles[0]

    @property
    def text_channels(self) -> list[EmuChannel]:
        return [c for c in self.channels if c.type == TEXT_CHANNEL]

    def channel(self, name: str) -> EmuChannel:
        for channel in self.channels:
            if channel.name == name:
                return channel
        raise LookupError(f"no channel {name!r} in {self.name!r}")

    def member(self, name: str) -> EmuMember:
        for member in self.members:
            if member.name == name:
                return member
        raise LookupError(f"no member {name!r} in {self.name!r}")

    def get_member(self, user_id: int) -> EmuMember | None:
        return next((m for m in self.members if m.id == user_id), None)

    def get_channel(self, channel_id: int) -> EmuChannel | None:
        return next((c for c in self.channels if c.id == channel_id), None)

    def partial_payload(self) -> dict[str, Any]:
        """The ``guild`` object inside an interaction."""
        return {"id": str(self.id), "locale": "en-US", "features": []}

    def create_payload(self, *, members: list[EmuMember]) -> dict[str, Any]:
        """The body of GUILD_CREATE."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "system_channel_id": str(self.text_channels[0].id) if self.text_channels else None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "application_id": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "features": [],
            "emojis": [],
            "stickers": [],
            "roles": [r.payload() for r in self.roles],
            # GUILD_CREATE leaves guild_id out of its channels.
            "channels": [
                {k: v for k, v in c.payload().items() if k != "guild_id"} for c in self.channels
            ],
            "threads": [],
            "members": [m.payload() for m in members],
            "member_count": len(self.members),
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "joined_at": iso_now(),
            "large": False,
            "unavailable": False,
            "lazy": True,
        }
