"""``DiscordEmulator``: a small Discord served on loopback to a real discord.py, as one facade over
its parts: the guilds (`guilds`), the CDN (`cdn`), application commands (`app_commands`), the
gateway (`gateway`), interactions (`interactions`), messages (`channels`), the interaction
callback and webhooks (`webhooks`), injected faults (`faults`) and the REST front (`rest`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Self

import discord
from aiohttp import web

from .app_commands import AppCommands
from .cdn import Cdn
from .channels import ChannelRoutes, MessageBoard
from .faults import Faults, RateLimiter
from .gateway import Gateway
from .guilds import Defaults, Guilds
from .interactions import InteractionRecord, Interactions
from .records import DEFAULT_TIMEOUT, Changes, MessageRecord, RequestRecord
from .rest import RestApi
from .routing import Address
from .state import State
from .webhooks import InteractionRoutes
from .world import (
    BOT_PERMISSIONS,
    PRIVILEGED_INTENTS,
    Application,
    EmuChannel,
    EmuGuild,
    EmuMember,
    EmuUser,
    Snowflakes,
    permission_value,
)

log = logging.getLogger(__name__)

DEFAULT_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.emulator.not-a-real-token"
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # what Discord lets a bot upload in a boost-less guild


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
        self.strict = strict
        self.address = Address(host)
        snowflakes = Snowflakes()
        application_id = application_id or snowflakes.next()
        self.app = Application(
            id=application_id,
            token=token,
            bot=EmuUser(application_id, bot_name, bot=True),
            owner=EmuUser(snowflakes.next(), "olivia"),
            privileged_intents=privileged_intents,
            heartbeat_interval=heartbeat_interval,
            callback_deadline=callback_deadline,
            upload_limit=upload_limit,
        )
        self.changes = Changes()
        permissions = permission_value(bot_permissions)
        self.guilds = Guilds(self.app, snowflakes, permissions, announce=self._tell_later)
        for name in guild_names:
            self.guilds.add_guild(name)
        guild = self.guilds.default
        self.defaults = Defaults(guild, guild.channel("general"), guild.member("alice"))
        state = State(self.app, snowflakes, self.guilds, self.defaults, self.changes)
        self.cdn = Cdn(self.address, snowflakes)
        self.app_commands = AppCommands(state)
        self.gateway = Gateway(state, self.address)
        self.interactions = Interactions(state, self.app_commands, self.cdn, self.gateway)
        self.board = MessageBoard(state, self.cdn, self.gateway)
        self.faults = Faults()
        routes = (
            self.app_commands,
            InteractionRoutes(state, self.interactions, self.board),
            ChannelRoutes(state, self.board),
            self.cdn,
        )
        limiter = RateLimiter(rate_limit, rate_limit_per)
        self.rest = RestApi(
            state, self.address, self.gateway, self.interactions, self.faults, limiter, routes
        )
        self._runner: web.AppRunner | None = None

        # What tests do, done by the part that does it.
        self.add_guild = self.guilds.add_guild
        self.make_member = self.guilds.make_member
        self.make_channel = self.guilds.make_channel
        self.set_bot_permissions = self.guilds.set_bot_permissions
        self.add_attachment = self.cdn.add_attachment
        self.commands_for = self.app_commands.commands_for
        self.command = self.app_commands.command
        self.invoke_slash = self.interactions.invoke_slash
        self.invoke_message_command = self.interactions.invoke_message_command
        self.autocomplete = self.interactions.autocomplete
        self.press_button = self.interactions.press_button
        self.choose = self.interactions.choose
        self.submit_modal = self.interactions.submit_modal
        self.post_as = self.board.post_as
        self.fail_next = self.faults.fail_next
        self.hang_next = self.faults.hang_next
        self.delay_next = self.faults.delay_next
        self.clear_faults = self.faults.clear_faults
        self.drop_gateway = self.gateway.drop
        self.close_gateway = self.gateway.close
        self.send_reconnect = self.gateway.send_reconnect
        self.invalidate_session = self.gateway.invalidate_session
        self.dispatch = self.gateway.dispatch
        self.wait_for_commands = self.app_commands.wait_for_commands
        self.wait_for_message = self.board.wait_for_message
        self.requests_to = self.rest.requests_to
        self.assert_no_unexpected = self.rest.assert_no_unexpected
        self.summary = self.rest.summary

    def _tell_later(self, event: str, data: dict[str, Any]) -> None:
        self.gateway.tell_later(event, data)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(
            middlewares=[self.rest.middleware], client_max_size=self.upload_limit * 11
        )
        app.add_routes(self.gateway.routes())
        app.add_routes(self.rest.routes())
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.address.host, 0)
        await site.start()
        self.address.port = self._runner.addresses[0][1]
        log.info("Discord emulator on %s", self.base_url)

    async def close(self) -> None:
        self.faults.closing.set()  # hanging faults return, so shutdown does not wait on them
        if self._runner is not None:
            await self.gateway.close(1001, "Emulator shutting down")
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        await self.close()
        if exc_type is None and self.strict:
            self.assert_no_unexpected()

    # -- what tests read ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.address.port

    @property
    def base_url(self) -> str:
        return self.address.base_url

    @property
    def api_base(self) -> str:
        """What ``bot.api_base.use_api_base`` takes: ``http://127.0.0.1:PORT/api/v10``."""
        return self.address.api_base

    @property
    def application_id(self) -> int:
        return self.app.id

    @property
    def bot(self) -> EmuUser:
        return self.app.bot

    @property
    def upload_limit(self) -> int:
        """Bytes per file the bot may upload; a test may lower it for a while."""
        return self.app.upload_limit

    @upload_limit.setter
    def upload_limit(self, limit: int) -> None:
        self.app.upload_limit = limit

    @property
    def guild(self) -> EmuGuild:
        return self.defaults.guild

    @property
    def channel(self) -> EmuChannel:
        return self.defaults.channel

    @property
    def member(self) -> EmuMember:
        """Who invokes commands unless told otherwise."""
        return self.defaults.member

    @property
    def users(self) -> dict[str, EmuMember]:
        """The default guild's members by username (the bot included)."""
        return {m.name: m for m in self.guild.members}

    @property
    def global_commands(self) -> list[dict[str, Any]]:
        return self.app_commands.global_commands

    @property
    def requests(self) -> list[RequestRecord]:
        return self.rest.requests

    @property
    def unexpected(self) -> list[RequestRecord]:
        """Requests to routes the emulator does not know."""
        return self.rest.unexpected

    @property
    def messages(self) -> dict[int, MessageRecord]:
        return self.board.messages

    @property
    def downloads(self) -> dict[int, int]:
        """Attachment id -> CDN downloads."""
        return self.cdn.downloads

    @property
    def identify_count(self) -> int:
        return self.gateway.identify_count

    @property
    def resume_count(self) -> int:
        return self.gateway.resume_count

    @property
    def gateway_paths(self) -> list[str]:
        """The path of each open gateway connection (``/gateway`` or ``/gateway/resume``)."""
        return [c.path for c in self.gateway.connections]

    def guild_create_payload(self, guild: EmuGuild) -> dict[str, Any]:
        """The GUILD_CREATE the bot's session gets for ``guild``."""
        return self.guilds.guild_create_payload(guild, self.gateway.intents())

    # -- waiting ------------------------------------------------------------------------------

    async def wait_until(
        self, predicate: Callable[[], object], *, timeout: float = DEFAULT_TIMEOUT, what: str = ""
    ) -> None:
        await self.changes.wait_until(
            lambda: bool(predicate()),
            timeout=timeout,
            describe=lambda: (what or "a condition") + "\n" + self.summary(),
        )

    async def wait_ready(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Until READY and every GUILD_CREATE went out on a live connection.

        The client fires ``on_ready`` a little later: after ``guild_ready_timeout`` (2 s by
        default; tests should pass a small one to the client).
        """
        await self.wait_until(lambda: self.gateway.ready, timeout=timeout, what="READY")

    async def replay(self, interaction: InteractionRecord) -> None:
        """Deliver ``interaction`` again, as a gateway does when a RESUME replays from a sequence
        the client had in fact seen: the connection drops, the client resumes, and the replay
        starts at that interaction's INTERACTION_CREATE (and goes on with what came after)."""
        self.gateway.replay_from(interaction.id)
        resumed = self.resume_count
        self.gateway.drop()
        await self.wait_until(lambda: self.resume_count > resumed, what="the RESUME")
