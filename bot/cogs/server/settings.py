"""/settings view, set, reset and channels: what a server chooses for the bot, under the caps
the operator sets in the environment (those stay the ceiling)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot import access
from bot.cogs.server.errors import NothingToChange
from bot.errors import BadOption, channel_list
from bot.store import MAX_STYLES, GuildSettings

if TYPE_CHECKING:
    from bot.client import StyleBot
    from bot.settings import Settings

log = logging.getLogger(__name__)

Quality = Literal["fast", "balanced", "best"]
QUALITIES = ("fast", "balanced", "best")
# The quality /stylize uses when neither the member nor the server chose one.
BOT_DEFAULT_QUALITY = "balanced"
# What /settings set accepts (Discord enforces these too; a forged value is refused in one line).
MIN_SIZE, MAX_SIZE = 64, 2048
MAX_DAILY_LIMIT = 1000
Resettable = Literal["max_size", "default_quality", "daily_limit", "role", "channels", "all"]

NO_PINGS = discord.AllowedMentions.none()
MANAGE = "change this server's bot settings"


class SettingsCog(commands.Cog, name="Server settings"):
    """What a server chooses for the bot: sizes, quality, limits, a role and channels."""

    def __init__(self, bot: StyleBot) -> None:
        self.bot = bot

    settings = app_commands.Group(
        name="settings",
        description="This server's choices for the bot (Manage Server)",
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
        allowed_contexts=access.SERVER_ONLY,
    )
    channels = app_commands.Group(
        name="channels", description="Channels the bot may be used in", parent=settings
    )

    @settings.command(name="view")
    @access.admin_only("see this server's bot settings")
    async def settings_view(self, interaction: discord.Interaction) -> None:
        """Show this server's settings beside the bot-wide caps."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self._show(interaction, "")

    @settings.command(name="set")
    @access.admin_only(MANAGE)
    @app_commands.describe(
        max_size=f"Longest side of results in pixels, {MIN_SIZE}–{MAX_SIZE} (the bot's cap wins)",
        default_quality="Quality when a member doesn't choose: fast, balanced or best",
        daily_limit=f"Pictures per member per UTC day, 1–{MAX_DAILY_LIMIT}; 0 = no limit",
        role="Only members with this role may use the bot (@everyone = anyone)",
    )
    async def settings_set(
        self,
        interaction: discord.Interaction,
        max_size: app_commands.Range[int, MIN_SIZE, MAX_SIZE] | None = None,
        default_quality: Quality | None = None,
        daily_limit: app_commands.Range[int, 0, MAX_DAILY_LIMIT] | None = None,
        role: discord.Role | None = None,
    ) -> None:
        """Change this server's settings; options left out stay as they are."""
        changes: dict[str, object] = {}
        if max_size is not None:
            _require(_whole(max_size) and MIN_SIZE <= max_size <= MAX_SIZE, "max_size", max_size)
            changes["max_size"] = max_size
        if default_quality is not None:
            _require(default_quality in QUALITIES, "default_quality", default_quality)
            changes["default_quality"] = default_quality
        if daily_limit is not None:
            _require(
                _whole(daily_limit) and 0 <= daily_limit <= MAX_DAILY_LIMIT,
                "daily_limit",
                daily_limit,
            )
            changes["daily_limit"] = daily_limit or None  # 0: no limit
        if role is not None:
            if role.managed:
                raise BadOption("role", role.name, "a role members can be given, not a bot's")
            changes["role_id"] = None if role.is_default() else role.id  # @everyone: anyone
        if not changes:
            raise NothingToChange()
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.bot.store.update_guild_settings(interaction.guild_id, **changes)
        log.info(
            "guild %s: user %s changed settings %s",
            interaction.guild_id,
            interaction.user.id,
            changes,
        )
        await self._show(interaction, "Saved.")

    @settings.command(name="reset")
    @access.admin_only(MANAGE)
    @app_commands.describe(setting="Which setting to return to the bot's default")
    async def settings_reset(self, interaction: discord.Interaction, setting: Resettable) -> None:
        """Return a setting (or all of them) to the bot's default."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        store, guild_id = self.bot.store, interaction.guild_id
        names = {"role": "role_id"}
        if setting in ("channels", "all"):
            for channel_id in (await store.guild_settings(guild_id)).channels:
                await store.remove_channel(guild_id, channel_id)
        if setting == "all":
            await store.update_guild_settings(
                guild_id, max_size=None, default_quality=None, daily_limit=None, role_id=None
            )
        elif setting != "channels":
            await store.update_guild_settings(guild_id, **{names.get(setting, setting): None})
        log.info("guild %s: user %s reset %s", guild_id, interaction.user.id, setting)
        await self._show(interaction, f"Reset {'everything' if setting == 'all' else setting}.")

    @channels.command(name="add")
    @access.admin_only(MANAGE)
    @app_commands.describe(channel="A channel the bot may be used in")
    async def channels_add(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        """Allow the bot in a channel (once any is listed, only listed ones)."""
        await self._change_channels(
            interaction,
            self.bot.store.add_channel,
            channel,
            f"The bot can now be used in {channel.mention}.",
            f"{channel.mention} was already on the list.",
        )

    @channels.command(name="remove")
    @access.admin_only(MANAGE)
    @app_commands.describe(channel="A channel to take off the list")
    async def channels_remove(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        """Take a channel off the list (an empty list means every channel)."""
        await self._change_channels(
            interaction,
            self.bot.store.remove_channel,
            channel,
            f"{channel.mention} is off the list.",
            f"{channel.mention} was not on the list.",
        )

    async def _change_channels(self, interaction, change, channel, changed: str, same: str):
        """Add a channel to the allow-list or take one off, and show the list."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        done = await change(interaction.guild_id, channel.id)
        allowed = (await self.bot.store.guild_settings(interaction.guild_id)).channels
        await interaction.followup.send(
            f"{changed if done else same} Allowed: {_channels(allowed)}.",
            ephemeral=True,
            allowed_mentions=NO_PINGS,
        )

    async def _show(self, interaction: discord.Interaction, first: str) -> None:
        store, guild_id = self.bot.store, interaction.guild_id
        chosen = await store.guild_settings(guild_id)
        gallery = await store.gallery_channel(guild_id) or self.bot.settings.nst_gallery_channel
        saved = len(await store.style_names(guild_id))
        lines = describe(chosen, self.bot.settings, gallery=gallery, saved_styles=saved)
        await interaction.followup.send(
            "\n".join(([first] if first else []) + lines),
            ephemeral=True,
            allowed_mentions=NO_PINGS,
        )


def describe(
    chosen: GuildSettings, caps: Settings, *, gallery: int | None, saved_styles: int
) -> list[str]:
    """The lines of /settings view: each server setting and, beside it, the bot-wide cap."""
    if chosen.max_size is None:
        size = f"not set: {caps.nst_max_size} px"
    elif chosen.max_size > caps.nst_max_size:
        size = f"{chosen.max_size} px, so {caps.nst_max_size} px applies"
    else:
        size = f"{chosen.max_size} px"
    quality = chosen.default_quality or f"not set: {BOT_DEFAULT_QUALITY}"
    daily = (
        f"{chosen.daily_limit} pictures per member per UTC day" if chosen.daily_limit else "none"
    )
    role = f"<@&{chosen.role_id}>" if chosen.role_id else "none: anyone may use the bot"
    return [
        "**This server's settings** (the operator's caps stay the ceiling)",
        f"• Max size: {size} · bot cap {caps.nst_max_size} px (NST_MAX_SIZE)",
        f"• Default quality: {quality} · steps capped at {caps.nst_max_steps} (NST_MAX_STEPS)",
        f"• Daily limit: {daily} · bot-wide: {caps.nst_user_limit} at once per member "
        f"(NST_USER_LIMIT), {_rate(caps.nst_member_rate)} per member (NST_MEMBER_RATE)",
        f"• Role required: {role}",
        f"• Channels: {_channels(chosen.channels)}",
        f"• Gallery: {f'<#{gallery}>' if gallery else 'none'} (/gallery set)",
        f"• Saved styles: {saved_styles} of {MAX_STYLES} (/styles)",
    ]


def _channels(channels: frozenset[int]) -> str:
    return channel_list(channels) if channels else "every channel"


def _rate(per_minute: int) -> str:
    return f"{per_minute} per minute" if per_minute else "no rate limit"


def _require(ok: bool, name: str, value: object) -> None:
    allowed = {
        "max_size": f"{MIN_SIZE} to {MAX_SIZE} pixels",
        "default_quality": "fast, balanced or best",
        "daily_limit": f"0 to {MAX_DAILY_LIMIT}",
    }
    if not ok:
        raise BadOption(name, value, allowed[name])


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
