"""The command tree: one error ladder for every app command, and a first look at each
interaction's raw options, so that even a malformed one gets a one-line answer."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import discord
from discord import app_commands

from bot.errors import BadOption, UserFacingError
from nst_engine.errors import NSTError

log = logging.getLogger(__name__)

# Discord's option types, and what their values must look like in a payload.
_WHOLE, _NUMBER, _BOOLEAN = 4, 10, 5
_SNOWFLAKES = frozenset({6, 7, 8, 9, 11})  # user, channel, role, mentionable, attachment
_GROUPS = frozenset({1, 2})  # sub-command, sub-command group


class StyleTree(app_commands.CommandTree):
    """discord.py's tree, plus: malformed options refused in one line (discord.py would raise
    while parsing them and leave the member with "This interaction failed"), and known errors
    shown as they are while anything else is logged with an id the member can quote."""

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        data: Any = interaction.data or {}
        try:
            _check_options(data.get("options") or [])
        except BadOption as err:
            log.warning("refused a malformed interaction: %s", err)
            await _answer(interaction, str(err))
            return False
        return True

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if isinstance(cause, (UserFacingError, NSTError)):
            message = str(cause)
        elif isinstance(cause, app_commands.CheckFailure):
            message = "You can't use this command here."
        else:
            error_id = uuid.uuid4().hex[:8]
            log.error("command failed (error id %s)", error_id, exc_info=cause)
            message = f"Something went wrong on our side (error id `{error_id}`); please try again."
        await _answer(interaction, message)


def _check_options(options: list[dict[str, Any]]) -> None:
    for option in options:
        kind, name, value = option.get("type"), option.get("name", "?"), option.get("value")
        if kind in _GROUPS:
            _check_options(option.get("options") or [])
        elif kind == _WHOLE and (isinstance(value, bool) or not isinstance(value, int)):
            raise BadOption(name, value, "a whole number")
        elif kind == _NUMBER and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise BadOption(name, value, "a number")
        elif kind == _BOOLEAN and not isinstance(value, bool):
            raise BadOption(name, value, "true or false")
        elif kind in _SNOWFLAKES and not str(value).isdigit():
            raise BadOption(name, value, "a Discord id")


async def _answer(interaction: discord.Interaction, message: str) -> None:
    """An ephemeral line, whether or not the interaction was answered already."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(message, ephemeral=True)
        else:
            await interaction.response.send_message(message, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not tell the member about an error: %s", message)
