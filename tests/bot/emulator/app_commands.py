"""Application commands: what the bot synced, globally and per guild, and the routes that sync
them, checked by Discord's rules."""

from __future__ import annotations

import logging
import re
from typing import Any

from aiohttp import web

from . import errors
from .errors import DiscordError
from .messages import recorded_body
from .records import DEFAULT_TIMEOUT
from .routing import API_PREFIX, json_response
from .state import State
from .world import EmuGuild

log = logging.getLogger(__name__)

_COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")


class AppCommands:
    """The commands the bot synced: global ones, and each guild's own."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}

    def routes(self) -> list[web.AbstractRouteDef]:
        every = API_PREFIX + "/applications/{application_id}/commands"
        guild = API_PREFIX + "/applications/{application_id}/guilds/{guild_id}/commands"
        return [
            web.get(every, self.get_commands),
            web.put(every, self.put_commands),
            web.get(guild, self.get_commands),
            web.put(guild, self.put_commands),
        ]

    def commands_for(self, guild: EmuGuild | None = None) -> list[dict[str, Any]]:
        """The commands a member of ``guild`` sees: the guild's own, then the global ones.

        ``None`` means the global commands only.
        """
        if guild is None:
            return list(self.global_commands)
        return self.guild_commands.get(guild.id, []) + self.global_commands

    def command(self, name: str, *, guild: EmuGuild | None = None) -> dict[str, Any]:
        """A synced chat-input command by top-level name, as the bot synced it."""
        guild = guild or self.state.guilds.default
        for command in self.commands_for(guild):
            if command["name"] == name and command.get("type", 1) == 1:
                return command
        synced = sorted(c["name"] for c in self.commands_for(guild))
        raise LookupError(f"no slash command {name!r} synced for {guild.name!r}; synced: {synced}")

    def message_command(self, name: str, guild: EmuGuild) -> dict[str, Any]:
        """A synced message command (context menu) by name."""
        command = next(
            (c for c in self.commands_for(guild) if c["name"] == name and c.get("type") == 3),
            None,
        )
        if command is None:
            raise LookupError(f"no message command {name!r} synced for {guild.name!r}")
        return command

    async def wait_for_commands(
        self, *names: str, guild: EmuGuild | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> list[dict[str, Any]]:
        """Until the bot has synced commands (at least ``names``) visible in ``guild``."""

        def synced() -> list[dict[str, Any]] | None:
            commands = self.commands_for(guild or self.state.guilds.default)
            have = {c["name"] for c in commands}
            return commands if commands and have.issuperset(names) else None

        return await self.state.changes.wait_until(
            synced, timeout=timeout, describe=lambda: f"commands {names or ''} to be synced"
        )

    # -- routes -------------------------------------------------------------------------------

    def _scope(self, request: web.Request) -> int | None:
        if request.match_info["application_id"] != str(self.state.app.id):
            raise DiscordError(403, 20012, "You are not authorized to perform this action")
        guild_id = request.match_info.get("guild_id")
        if guild_id is None:
            return None
        if self.state.guilds.find(guild_id) is None:
            raise errors.missing_access()
        return int(guild_id)

    async def get_commands(self, request: web.Request) -> web.StreamResponse:
        guild_id = self._scope(request)
        if guild_id is None:
            return json_response(self.global_commands)
        return json_response(self.guild_commands.get(guild_id, []))

    async def put_commands(self, request: web.Request) -> web.StreamResponse:
        guild_id = self._scope(request)
        body, _ = await recorded_body(request)
        if not isinstance(body, list):
            raise errors.invalid_form({"_": "BASE_TYPE_ARRAY: Must be an array."})
        if guild_id is None:
            self.global_commands = self._stored(body, self.global_commands, None)
            return json_response(self.global_commands)
        previous = self.guild_commands.get(guild_id, [])
        self.guild_commands[guild_id] = self._stored(body, previous, guild_id)
        return json_response(self.guild_commands[guild_id])

    def _stored(
        self, body: list[dict[str, Any]], previous: list[dict[str, Any]], guild_id: int | None
    ) -> list[dict[str, Any]]:
        app = self.state.app
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
                "id": ids.get(key) or str(self.state.snowflakes.next()),
                "application_id": str(app.id),
                "version": str(self.state.snowflakes.next()),
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
