"""Who may do what: Manage Server for a server's settings and for others' styles, and the
server's own role and channel allow-list for using the bot.

Commands that change a server also carry ``default_permissions``, but a server's admins can
override those for any role or channel, so every such command checks again when it runs, with
the one check `admin_only`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import discord
from discord import app_commands

from bot.errors import NeedsManageServer, NeedsRole, WrongChannel
from bot.store import GuildSettings


def manages_server(interaction: discord.Interaction) -> bool:
    """Whether the member has Manage Server (administrators have every permission)."""
    return interaction.permissions.manage_guild


def require_manage_server(interaction: discord.Interaction, doing: str) -> None:
    """Raises NeedsManageServer (one line, naming what was refused) unless the member has it."""
    if not manages_server(interaction):
        raise NeedsManageServer(doing)


_T = TypeVar("_T")

# What server-only commands declare (Discord then offers them only in servers); the tree
# answers one that arrives elsewhere anyway in one line.
SERVER_ONLY = app_commands.AppCommandContext(guild=True)


def admin_only(doing: str) -> Callable[[_T], _T]:
    """The check of every admin command: Manage Server, checked when the command runs (before
    its options are converted), refused in one line naming ``doing``."""

    def predicate(interaction: discord.Interaction) -> bool:
        require_manage_server(interaction, doing)
        return True

    return app_commands.check(predicate)


def require_may_use(interaction: discord.Interaction, settings: GuildSettings) -> None:
    """Raises NeedsRole or WrongChannel when the server's role or channel allow-list keeps the
    member out; those who manage the server are never kept out of it."""
    if manages_server(interaction):
        return
    member = interaction.user
    if settings.role_id is not None and (
        not isinstance(member, discord.Member) or member.get_role(settings.role_id) is None
    ):
        raise NeedsRole(settings.role_id)
    if settings.channels and not in_channels(interaction.channel, settings.channels):
        raise WrongChannel(settings.channels)


def in_channels(channel: object, channels: frozenset[int]) -> bool:
    """Whether ``channel`` is one of ``channels``, or a thread in one of them."""
    if getattr(channel, "id", None) in channels:
        return True
    return isinstance(channel, discord.Thread) and channel.parent_id in channels
