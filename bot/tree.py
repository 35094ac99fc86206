"""The command tree: one error ladder for every app command, and a first look at each
interaction: a copy the gateway delivered again is ignored, a server-only command outside a
server is refused, and every raw option is checked against what the command declares, so that
even a forged interaction gets a one-line answer."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import discord
from discord import app_commands
from discord.enums import AppCommandOptionType as Kind

from bot.errors import (
    BadLength,
    BadOption,
    MissingOption,
    ServerOnly,
    UnknownOption,
    UserFacingError,
    fit,
)
from nst_engine.errors import NSTError

log = logging.getLogger(__name__)

_GROUPS = frozenset({Kind.subcommand.value, Kind.subcommand_group.value})
# What a member reads an option's kind as, and where a payload resolves its snowflakes.
_WORDS = {
    Kind.string: "text",
    Kind.integer: "a whole number",
    Kind.number: "a number",
    Kind.boolean: "true or false",
    Kind.user: "a member",
    Kind.channel: "a channel of this server",
    Kind.role: "a role of this server",
    Kind.mentionable: "a member or a role",
    Kind.attachment: "an attachment sent with the command",
}
_RESOLVED = {
    Kind.user: ("users",),
    Kind.channel: ("channels",),
    Kind.role: ("roles",),
    Kind.mentionable: ("users", "roles"),
    Kind.attachment: ("attachments",),
}


class StyleTree(app_commands.CommandTree):
    """discord.py's tree, plus: replays ignored, server-only commands kept to servers, malformed
    options refused in one line (discord.py would raise while parsing them and leave the member
    with "This interaction failed"), and known errors shown as they are while anything else is
    logged with an id the member can quote."""

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        first_delivery = getattr(self.client, "first_delivery", None)
        if first_delivery is not None and not first_delivery(interaction):
            return False
        suggesting = interaction.type is discord.InteractionType.autocomplete
        try:
            _check_context(interaction)
            _check_options(interaction, suggesting=suggesting)
        except UserFacingError as err:
            log.warning("refused a malformed interaction: %s", err)
            if suggesting:
                await _suggest_nothing(interaction)
            else:
                await _answer(interaction, str(err))
            return False
        return True

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if isinstance(cause, (UserFacingError, NSTError)):
            message = str(cause)
        elif isinstance(cause, app_commands.TransformerError):
            # The raw check refuses what it knows; this is for what the cache alone can tell.
            message = f"That {cause.type.name} can't be used here."
        elif isinstance(cause, app_commands.CommandNotFound):
            message = "This command is not known here; it may have been removed."
        elif isinstance(cause, app_commands.CheckFailure):
            message = "You can't use this command here."
        else:
            error_id = uuid.uuid4().hex[:8]
            log.error("command failed (error id %s)", error_id, exc_info=cause)
            message = f"Something went wrong on our side (error id `{error_id}`); please try again."
        await _answer(interaction, message)


def _check_context(interaction: discord.Interaction) -> None:
    """ServerOnly for a command declared for servers that arrives anywhere else."""
    command = interaction.command
    if command is None or interaction.guild_id is not None:
        return
    root = getattr(command, "root_parent", None) or command
    contexts = root.allowed_contexts
    if root.guild_only or (
        contexts is not None and not (contexts.dm_channel or contexts.private_channel)
    ):
        raise ServerOnly()


def _check_options(interaction: discord.Interaction, *, suggesting: bool) -> None:
    """Every raw option against the command's declared options: names, types, choices, text
    lengths, required ones, and snowflakes that the payload resolves (channels and roles of
    this server). Ranges of numbers stay with the commands, which word them for members."""
    data: Any = interaction.data or {}
    options = _leaf(data.get("options") or [])
    resolved = data.get("resolved") if isinstance(data.get("resolved"), dict) else {}
    command = interaction.command
    if isinstance(command, app_commands.ContextMenu):
        target = str(data.get("target_id"))
        if not any(target in (resolved.get(k) or {}) for k in ("messages", "users")):
            raise BadOption("target", data.get("target_id"), "a message or member Discord sent")
        return
    declared = (
        {p.name: p for p in command.parameters} if isinstance(command, app_commands.Command) else {}
    )
    sent = set()
    for option in options:
        if not isinstance(option, dict):
            raise UnknownOption(option)
        name = option.get("name")
        param = declared.get(name) if isinstance(name, str) else None
        if param is None:
            if command is not None:
                raise UnknownOption(name)
            continue  # an unknown command: the tree says so
        sent.add(name)
        focused = suggesting and option.get("focused")
        value = option.get("value")
        _check_value(interaction, param, value, resolved, loose=suggesting, focused=focused)
    if not suggesting:
        for param in declared.values():
            if param.required and param.name not in sent:
                raise MissingOption(param.name)


def _leaf(options: Any) -> list[Any]:
    """The options of the sub-command that runs (inside its group and sub-command)."""
    if not isinstance(options, list):
        raise UnknownOption(options)
    while options and isinstance(options[0], dict) and options[0].get("type") in _GROUPS:
        options = options[0].get("options") or []
        if not isinstance(options, list):
            raise UnknownOption(options)
    return options


def _check_value(
    interaction: discord.Interaction,
    param: app_commands.Parameter,
    value: Any,
    resolved: dict[str, Any],
    *,
    loose: bool,
    focused: bool,
) -> None:
    """BadOption (or BadLength) unless ``value`` is what ``param`` declares. ``loose``: an
    autocomplete, whose options are still being typed (only their types are checked)."""
    kind, name = param.type, param.name
    allowed = _WORDS.get(kind, "what the command declares")
    if kind is Kind.string:
        if not isinstance(value, str):
            raise BadOption(name, value, allowed)
        low, high = int(param.min_value or 0), int(param.max_value or 6000)
        if not loose and not low <= len(value) <= high:
            raise BadLength(name, low, high, len(value))
    elif kind is Kind.integer:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadOption(name, value, allowed)
    elif kind is Kind.number:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadOption(name, value, allowed)
    elif kind is Kind.boolean:
        if not isinstance(value, bool):
            raise BadOption(name, value, allowed)
    elif kind in _RESOLVED:
        _check_snowflake(interaction, param, value, resolved, allowed)
    if loose or focused or param.autocomplete or not param.choices:
        return
    offered = [choice.value for choice in param.choices]
    if value not in offered:
        raise BadOption(name, value, "one of " + ", ".join(str(v) for v in offered))


def _check_snowflake(
    interaction: discord.Interaction,
    param: app_commands.Parameter,
    value: Any,
    resolved: dict[str, Any],
    allowed: str,
) -> None:
    kind, name = param.type, param.name
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).isdigit():
        raise BadOption(name, value, allowed)
    key = str(value)
    entry = next(
        (
            (resolved.get(section) or {}).get(key)
            for section in _RESOLVED[kind]
            if key in (resolved.get(section) or {})
        ),
        None,
    )
    if not isinstance(entry, dict):
        raise BadOption(name, _mention(kind, key), allowed)
    guild = interaction.guild
    if kind is Kind.channel:
        types = [t.value for t in param.channel_types]
        if types and entry.get("type") not in types:
            raise BadOption(name, _mention(kind, key), allowed)
        if guild is not None and guild.get_channel_or_thread(int(key)) is None:
            raise BadOption(name, _mention(kind, key), allowed)
    elif kind is Kind.role and guild is not None and guild.get_role(int(key)) is None:
        raise BadOption(name, _mention(kind, key), allowed)


class _Mention(str):
    """A snowflake shown as Discord shows it (``<#id>``), not quoted."""

    def __repr__(self) -> str:
        return str(self)


def _mention(kind: Kind, key: str) -> object:
    if kind is Kind.channel:
        return _Mention(f"<#{key}>")
    if kind is Kind.role:
        return _Mention(f"<@&{key}>")
    return key


async def _suggest_nothing(interaction: discord.Interaction) -> None:
    try:
        await interaction.response.autocomplete([])
    except discord.HTTPException:
        log.debug("could not answer a refused autocomplete")


async def _answer(interaction: discord.Interaction, message: str) -> None:
    """An ephemeral line, whether or not the interaction was answered already; never more than
    Discord takes in one message."""
    message = fit(message)
    try:
        if interaction.response.is_done():
            await interaction.followup.send(message, ephemeral=True)
        else:
            await interaction.response.send_message(message, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not tell the member about an error: %s", message)
