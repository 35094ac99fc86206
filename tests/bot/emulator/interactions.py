"""Interactions: what members do that reaches the bot as INTERACTION_CREATE (slash and message
commands, autocomplete, buttons, selects), and the record of what the bot did for each."""

from __future__ import annotations

import copy
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self

from . import errors
from .app_commands import AppCommands
from .cdn import Cdn
from .gateway import Gateway
from .options import slash_data
from .records import (
    DEFAULT_TIMEOUT,
    CallbackRecord,
    Changes,
    MessageRecord,
    RequestRecord,
    loop_time,
)
from .state import State
from .world import EmuChannel, EmuMember

log = logging.getLogger(__name__)


class InteractionRecord:
    """Everything the bot did for one interaction the emulator dispatched.

    ``original`` is the message behind ``@original``: the response message for callbacks 4 and 5,
    the message the component sits on for callbacks 6 and 7 (and for component interactions
    before any callback). ``followups`` are messages made through the interaction webhook. After a
    deferred (type 5) callback, Discord turns the first follow-up into the original response, so
    then ``followups[0] is original``.
    """

    def __init__(
        self,
        *,
        id: int,
        token: str,
        type: int,
        payload: dict[str, Any],
        user: EmuMember,
        channel: EmuChannel,
        source: MessageRecord | None,
        changes: Changes,
    ) -> None:
        self.id = id
        self.token = token
        self.type = type  # 2 application command, 3 component, 5 modal submit
        self.payload = payload  # the INTERACTION_CREATE body
        self.user = user
        self.channel = channel
        self.source = source  # the message a pressed component sits on
        self.dispatched_at: float = 0.0  # event-loop time of the dispatch
        self.callback: CallbackRecord | None = None
        self.original: MessageRecord | None = source
        self.followups: list[MessageRecord] = []
        self.requests: list[RequestRecord] = []  # every callback and webhook request it received
        self.expired = False
        self._changes = changes

    def __repr__(self) -> str:
        return f"<InteractionRecord {self.summary()}>"

    @property
    def name(self) -> str | None:
        """The command name (``group sub`` for subcommands), or the component's custom_id."""
        data = self.payload.get("data", {})
        if self.type == 2:
            parts = [data["name"]]
            options = data.get("options", [])
            while options and options[0]["type"] in (1, 2):
                parts.append(options[0]["name"])
                options = options[0].get("options", [])
            return " ".join(parts)
        return data.get("custom_id")

    @property
    def responded(self) -> bool:
        return self.callback is not None

    @property
    def deferred(self) -> bool:
        return self.callback is not None and self.callback.type in (5, 6)

    @property
    def modal(self) -> dict[str, Any] | None:
        """The modal the bot answered with (callback type 9): ``custom_id``, ``title`` and
        ``components``; None for any other answer."""
        if self.callback is None or self.callback.type != 9:
            return None
        return self.callback.data

    def fields(self) -> dict[str, str]:
        """The text inputs of the modal the bot answered with: their values as filled in, by
        custom_id."""
        if self.modal is None:
            raise LookupError(f"no modal was opened for {self.summary()}")
        return {
            field["custom_id"]: field.get("value") or ""
            for row in self.modal["components"]
            for field in row["components"]
        }

    @property
    def ephemeral(self) -> bool:
        """Whether the response the user sees is ephemeral."""
        if self.callback is not None and self.callback.type in (4, 5):
            return self.original is not None and self.original.ephemeral
        return False

    @property
    def messages(self) -> list[MessageRecord]:
        """The original response (when this interaction made one) and the follow-ups, in order."""
        out: list[MessageRecord] = []
        if self.original is not None and self.original is not self.source:
            out.append(self.original)
        out.extend(m for m in self.followups if m is not self.original)
        return out

    @property
    def errors(self) -> list[RequestRecord]:
        """The bot's callback and webhook requests that Discord refused."""
        return [r for r in self.requests if r.status >= 400]

    def expire(self) -> None:
        """Make the token stale, as 15 minutes on: webhook calls now get 401 Invalid Webhook
        Token, and a late callback gets 404 Unknown interaction."""
        self.expired = True
        self._changes.notify()

    async def wait_for(
        self, predicate: Callable[[InteractionRecord], object], *, timeout: float = DEFAULT_TIMEOUT
    ) -> Self:
        await self._changes.wait_until(
            lambda: bool(predicate(self)), timeout=timeout, describe=self._describe("a condition")
        )
        return self

    async def wait_for_callback(self, *, timeout: float = DEFAULT_TIMEOUT) -> CallbackRecord:
        return await self._changes.wait_until(
            lambda: self.callback, timeout=timeout, describe=self._describe("the callback")
        )

    async def wait_for_original(
        self,
        predicate: Callable[[MessageRecord], object] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> MessageRecord:
        """The original response once ``predicate`` holds; by default once it has content
        (that is, it is no longer the deferred "thinking" state)."""
        check = predicate or (lambda m: not m.loading)

        def ready() -> MessageRecord | None:
            if self.callback is None or self.original is None:
                return None
            return self.original if check(self.original) else None

        return await self._changes.wait_until(
            ready, timeout=timeout, describe=self._describe("the original response")
        )

    async def wait_for_followups(
        self, count: int = 1, *, timeout: float = DEFAULT_TIMEOUT
    ) -> list[MessageRecord]:
        def enough() -> list[MessageRecord] | None:
            return self.followups if len(self.followups) >= count else None

        return await self._changes.wait_until(
            enough, timeout=timeout, describe=self._describe(f"{count} follow-up(s)")
        )

    def _describe(self, what: str) -> Callable[[], str]:
        return lambda: f"{what} of {self.summary()}"

    def summary(self) -> str:
        lines = [f"interaction {self.id} ({self.name!r}, type {self.type}) by {self.user.name}"]
        if self.callback is None:
            lines.append("  no callback")
        else:
            lines.append(f"  callback type {self.callback.type} after {self.callback.after:.3f}s")
        if self.original is not None:
            lines.append(f"  original: {self.original.summary()}")
        lines += [f"  follow-up: {m.summary()}" for m in self.followups]
        lines += [f"  request: {r.summary()}" for r in self.requests]
        return "\n".join(lines)


class Interactions:
    """Every interaction dispatched to the bot, by id and by token; members act through here."""

    def __init__(self, state: State, commands: AppCommands, cdn: Cdn, gateway: Gateway) -> None:
        self.state = state
        self.commands = commands
        self.cdn = cdn
        self.gateway = gateway
        self.records: list[InteractionRecord] = []
        self._by_id: dict[int, InteractionRecord] = {}
        self._by_token: dict[str, InteractionRecord] = {}

    def get(self, interaction_id: int) -> InteractionRecord | None:
        return self._by_id.get(interaction_id)

    def by_token(self, token: str) -> InteractionRecord | None:
        return self._by_token.get(token)

    def for_webhook(self, application_id: str, token: str) -> InteractionRecord:
        """The interaction whose webhook this is; Discord's 10015 Unknown Webhook if none."""
        record = self._by_token.get(token)
        if record is None or application_id != str(self.state.app.id):
            raise errors.unknown_webhook()
        return record

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
        channel = channel or self.state.defaults.channel
        guild = self.state.guilds.guild_of(channel)
        user = user or self.state.defaults.actor(guild)
        values: dict[str, Any] = dict(options or {}) | dict(attachments or {})
        command = self.commands.command(name.split()[0], guild=guild)
        data = slash_data(command, name, values, guild, validate=validate, files=self.cdn.files)
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
        channel = channel or self.state.guilds.channel(message.channel_id)
        guild = self.state.guilds.guild_of(channel)
        user = user or self.state.defaults.actor(guild)
        command = self.commands.message_command(name, guild)
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
        channel = channel or self.state.defaults.channel
        guild = self.state.guilds.guild_of(channel)
        user = user or self.state.defaults.actor(guild)
        command = self.commands.command(name, guild=guild)
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

    async def submit_modal(
        self,
        opened: InteractionRecord,
        values: Mapping[str, str] | None = None,
        *,
        craft: Callable[[dict[str, Any]], None] | None = None,
    ) -> InteractionRecord:
        """Submit the modal the bot opened in answer to ``opened`` (MODAL_SUBMIT, type 5), as the
        member who saw it: each text input's value as filled in, or as ``values`` (by custom_id)
        retyped it. Refuses what Discord's client would not send: an unknown field, or a value
        outside the input's required, min_length and max_length."""
        if opened.modal is None:
            raise ValueError(f"no modal was opened for {opened.summary()}")
        filled = opened.fields()
        unknown = set(values or {}) - set(filled)
        if unknown:
            raise LookupError(f"the modal has no field {sorted(unknown)}; it has {list(filled)}")
        filled |= dict(values or {})
        rows = []
        for row in opened.modal["components"]:
            spec = row["components"][0]
            value = filled[spec["custom_id"]]
            required = spec.get("required", True)
            low = max(spec.get("min_length") or 0, 1 if required else 0)
            high = spec.get("max_length") or 4000
            if (value or required) and not low <= len(value) <= high:
                raise ValueError(f"{spec['custom_id']!r} takes {low} to {high} characters")
            rows.append(
                {
                    "type": 1,
                    "components": [{"type": 4, "custom_id": spec["custom_id"], "value": value}],
                }
            )
        data = {"custom_id": opened.modal["custom_id"], "components": rows}
        return await self._interact(
            5,
            data,
            user=opened.user,
            channel=opened.channel,
            source=opened.source,
            craft=craft,
        )

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
            if (user or self.state.defaults.member) is not owner:
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
        channel = self.state.guilds.channel(message.channel_id)
        guild = self.state.guilds.guild_of(channel)
        if message.interaction_id is not None and user is None:
            user = self._by_id[message.interaction_id].user
        user = user or self.state.defaults.actor(guild)
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
        guild = self.state.guilds.guild_of(channel)
        if user.guild is not guild:
            raise ValueError(f"{user.name} is not a member of {guild.name!r}")
        interaction_id = self.state.snowflakes.next()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.state.app.id),
            "type": type_,
            "data": data,
            "guild": guild.partial_payload(),
            "guild_id": str(guild.id),
            "channel": channel.payload() | {"permissions": str(user.permissions)},
            "channel_id": str(channel.id),
            "member": user.payload(with_permissions=True),
            "token": token,
            "version": 1,
            "app_permissions": str(self.state.guilds.bot_member(guild).permissions),
            "locale": locale,
            "guild_locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": self.state.app.upload_limit,
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
            changes=self.state.changes,
        )
        if self.gateway.session is None:
            raise RuntimeError("the bot has no gateway session; await emu.wait_ready() first")
        self.records.append(record)
        self._by_id[interaction_id] = record
        self._by_token[token] = record
        record.dispatched_at = loop_time()
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        self.state.changes.notify()
        return record
