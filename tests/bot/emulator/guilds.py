"""The guilds the bot is in, and the people, roles and channels in them; who acts by default."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import discord

from . import errors
from .world import (
    CATEGORY_CHANNEL,
    EVERYONE_PERMISSIONS,
    GUILD_MEMBERS,
    Application,
    EmuChannel,
    EmuGuild,
    EmuMember,
    EmuRole,
    EmuUser,
    Snowflakes,
    permission_value,
)

log = logging.getLogger(__name__)

_MENTION = re.compile(r"<@!?(\d+)>")

# Tells the bot of a change made outside any request (see `Gateway.tell_later`).
Announce = Callable[[str, dict[str, Any]], None]


class Guilds:
    """Every guild the bot is in, oldest first; the first is the default one."""

    def __init__(
        self, app: Application, snowflakes: Snowflakes, bot_permissions: int, announce: Announce
    ) -> None:
        self.app = app
        self.snowflakes = snowflakes
        self.bot_permissions = bot_permissions
        self.announce = announce
        self._guilds: list[EmuGuild] = []

    def __getitem__(self, index: int) -> EmuGuild:
        return self._guilds[index]

    def __len__(self) -> int:
        return len(self._guilds)

    def __iter__(self) -> Iterator[EmuGuild]:
        return iter(self._guilds)

    @property
    def default(self) -> EmuGuild:
        return self._guilds[0]

    def find(self, guild_id: int | str | None) -> EmuGuild | None:
        return next((g for g in self._guilds if str(g.id) == str(guild_id)), None)

    def guild_of(self, channel: EmuChannel) -> EmuGuild:
        return next(g for g in self._guilds if g.id == channel.guild_id)

    def channel(self, channel_id: int) -> EmuChannel:
        """The channel with this id in any guild; Discord's 10003 Unknown Channel if none."""
        for guild in self._guilds:
            channel = guild.get_channel(channel_id)
            if channel is not None:
                return channel
        raise errors.unknown_channel()

    def member_of(self, user: EmuUser | EmuMember, guild: EmuGuild) -> EmuMember:
        member = guild.get_member(user.id)
        if member is None:
            raise LookupError(f"user {user.id} is not in {guild.name!r}")
        return member

    def bot_member(self, guild: EmuGuild | None = None) -> EmuMember:
        return self.member_of(self.app.bot, guild or self.default)

    def add_guild(self, name: str) -> EmuGuild:
        """A guild the bot is in (announced by GUILD_CREATE at the next IDENTIFY)."""
        app = self.app
        guild_id = self.snowflakes.next()
        guild = EmuGuild(id=guild_id, name=name, owner_id=app.owner.id)
        guild.roles.append(EmuRole(guild_id, "@everyone", EVERYONE_PERMISSIONS))
        bot_role = EmuRole(self.snowflakes.next(), app.bot.username, self.bot_permissions, 1)
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
        guild.members.append(EmuMember(app.bot, guild, roles=[bot_role]))
        guild.members.append(EmuMember(app.owner, guild))
        self._guilds.append(guild)
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
        guild = guild or self.default
        user = EmuUser(self.snowflakes.next(), name)
        member = EmuMember(user, guild, nick=nick)
        if permissions is not None:
            role = EmuRole(self.snowflakes.next(), f"{name}'s role", permission_value(permissions))
            role.position = len(guild.roles)
            guild.roles.append(role)
            member.roles.append(role)
            self.announce("GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": role.payload()})
        guild.members.append(member)
        return member

    def make_channel(self, name: str, *, guild: EmuGuild | None = None) -> EmuChannel:
        """A new text channel (made before the bot connects, or it will not know of it)."""
        guild = guild or self.default
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
        self.bot_member(guild).roles[0].permissions = permission_value(permissions)

    def guild_create_payload(self, guild: EmuGuild, intents: int) -> dict[str, Any]:
        """The GUILD_CREATE a session with ``intents`` gets for ``guild``."""
        # Without the members intent, GUILD_CREATE lists only the bot itself.
        members = guild.members if intents & GUILD_MEMBERS else [self.bot_member(guild)]
        return guild.create_payload(members=members)

    def mentions(self, content: str, channel: EmuChannel) -> list[dict[str, Any]]:
        """The members of ``channel``'s guild that ``content`` mentions, as a message lists them."""
        guild = self.guild_of(channel)
        out = []
        for user_id in dict.fromkeys(int(m) for m in _MENTION.findall(content or "")):
            member = guild.get_member(user_id)
            if member is not None:
                out.append(member.user.payload() | {"member": member.payload(with_user=False)})
        return out


@dataclass
class Defaults:
    """Who acts, and where, when a test does not say."""

    guild: EmuGuild
    channel: EmuChannel
    # Who invokes commands unless told otherwise.
    member: EmuMember

    def actor(self, guild: EmuGuild) -> EmuMember:
        """Who acts in ``guild``: the default member there, else the guild's newest member."""
        return self.member if guild is self.guild else guild.members[-1]
