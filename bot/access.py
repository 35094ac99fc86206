"""Who may do what: Manage Server for a server's settings and for others' styles, and the
server's own role and channel allow-list for using the bot.

Commands that change a server also carry ``default_permissions``, but a server's admins can
override those for any role or channel, so every such command checks again here.
"""

from __future__ import annotations

import discord

from bot.errors import NeedsManageServer, NeedsRole, WrongChannel
from bot.store import GuildSettings


def manages_server(interaction: discord.Interaction) -> bool:
    """Whether the member has Manage Server (administrators have every permission)."""
    return interaction.permissions.manage_guild


def require_manage_server(interaction: discord.Interaction, doing: str) -> None:
    """Raises NeedsManageServer (one line, naming what was refused) unless the member has it."""
    if not manages_server(interaction):
        raise NeedsManageServer(doing)


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
