"""The gateway WebSocket: HELLO, IDENTIFY/READY, heartbeats, RESUME with replay, dispatches."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from .routing import Address
from .state import State
from .world import PRIVILEGED_INTENTS

log = logging.getLogger(__name__)

TRACE = ['["gateway-emulator",{"micros":0}]']


@dataclass(eq=False)
class GatewaySession:
    """One identified session; it outlives connections so that a RESUME can replay from it."""

    id: str
    intents: int
    shard: list[int]
    seq: int = 0
    # Every dispatch of the session, kept so that a RESUME can replay what the client missed.
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list, repr=False)
    conn: Connection | None = None  # the connection dispatches go to; None while disconnected
    ready: bool = False  # READY and every GUILD_CREATE have been sent


class Connection:
    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.path = request.path
        self.query = dict(request.query)
        self._transport = request.transport
        self._lock = asyncio.Lock()
        self.session: GatewaySession | None = None

    async def send(self, message: dict[str, Any]) -> bool:
        """Send one frame; False when the connection is gone (the caller keeps the event)."""
        if self.ws.closed:
            return False
        try:
            async with self._lock:
                await self.ws.send_str(json.dumps(message))
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            return False
        return True

    async def close(self, code: int, reason: str = "") -> None:
        await self.ws.close(code=code, message=reason.encode())

    def abort(self) -> None:
        # Tearing the TCP connection down without a close frame is what a network failure looks
        # like to the client (close code 1006), which discord.py answers with a RESUME.
        if self._transport is not None:
            self._transport.abort()


class Gateway:
    """The bot's gateway session: its connections, what was dispatched on it, and the controls
    a test uses to break it."""

    def __init__(self, state: State, address: Address) -> None:
        self.state = state
        self.address = address
        self.session: GatewaySession | None = None
        self.connections: list[Connection] = []
        self.connect_count = 0
        self.identify_count = 0
        self.resume_count = 0
        self.presences: list[dict[str, Any]] = []  # every op 3 PRESENCE_UPDATE the bot sent
        self.later: list[tuple[str, dict[str, Any]]] = []  # see tell_later
        self._replay_seq: int | None = None  # see replay_from

    @property
    def ready(self) -> bool:
        session = self.session
        return session is not None and session.ready and session.conn is not None

    def intents(self) -> int:
        return self.session.intents if self.session is not None else 0

    def routes(self) -> list[web.AbstractRouteDef]:
        return [web.get("/gateway", self.handle), web.get("/gateway/resume", self.handle)]

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        conn = Connection(ws, request)
        self.connections.append(conn)
        self.connect_count += 1
        try:
            if request.query.get("encoding", "json") != "json":
                await conn.close(4002, "Error while decoding payload.")
                return ws
            interval_ms = int(self.state.app.heartbeat_interval * 1000)
            hello = {"heartbeat_interval": interval_ms, "_trace": TRACE}
            await conn.send({"op": 10, "s": None, "t": None, "d": hello})
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    await conn.close(4002, "Error while decoding payload.")
                    break
                try:
                    frame = json.loads(msg.data)
                except ValueError:
                    await conn.close(4002, "Error while decoding payload.")
                    break
                await self._on_frame(conn, frame)
        finally:
            self.connections.remove(conn)
            if conn.session is not None and conn.session.conn is conn:
                conn.session.conn = None
            self.state.changes.notify()
        return ws

    async def _on_frame(self, conn: Connection, frame: dict[str, Any]) -> None:
        op, d = frame.get("op"), frame.get("d")
        if op == 1:
            await conn.send({"op": 11, "s": None, "t": None, "d": None})
        elif op == 2:
            await self._identify(conn, d or {})
        elif op == 6:
            await self._resume(conn, d or {})
        elif op == 3:
            self.presences.append(d or {})
            self.state.changes.notify()
        elif op == 8:
            await self._request_members(conn, d or {})
        elif op == 4:
            pass  # voice state: the emulator has no voice
        else:
            await conn.close(4001, "Unknown opcode.")

    async def _identify(self, conn: Connection, d: dict[str, Any]) -> None:
        app = self.state.app
        if conn.session is not None:
            await conn.close(4005, "Already authenticated.")
            return
        if d.get("token") != app.token:
            await conn.close(4004, "Authentication failed.")
            return
        intents = d.get("intents")
        if not isinstance(intents, int):
            await conn.close(4013, "Invalid intent(s).")
            return
        if intents & PRIVILEGED_INTENTS & ~app.privileged_intents:
            await conn.close(4014, "Disallowed intent(s).")
            return
        self.identify_count += 1
        old = self.session
        if old is not None and old.conn is not None and old.conn is not conn:
            old.conn.abort()
        session = GatewaySession(
            id=secrets.token_hex(16), intents=intents, shard=d.get("shard") or [0, 1]
        )
        self.session = session
        session.conn = conn
        conn.session = session
        await self.dispatch("READY", self._ready_payload(session))
        for guild in self.state.guilds:
            await self.dispatch(
                "GUILD_CREATE", self.state.guilds.guild_create_payload(guild, intents)
            )
        session.ready = True
        self.state.changes.notify()

    def _ready_payload(self, session: GatewaySession) -> dict[str, Any]:
        app = self.state.app
        user = app.bot.payload() | {"verified": True, "mfa_enabled": False, "flags": 0}
        return {
            "v": 10,
            "user": user,
            "guilds": [{"id": str(g.id), "unavailable": True} for g in self.state.guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.address.resume_gateway_url,
            "shard": session.shard,
            "application": {"id": str(app.id), "flags": app.flags},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "user_settings": {},
            "geo_ordered_rtc_regions": ["loopback"],
            "auth": {},
            "_trace": TRACE,
        }

    async def _resume(self, conn: Connection, d: dict[str, Any]) -> None:
        if d.get("token") != self.state.app.token:
            await conn.close(4004, "Authentication failed.")
            return
        session = self.session
        seq = d.get("seq") or 0
        if session is not None and self._replay_seq is not None:
            seq, self._replay_seq = min(seq, self._replay_seq - 1), None
        if (
            session is None
            or conn.session is not None
            or d.get("session_id") != session.id
            or seq > session.seq
        ):
            await conn.send({"op": 9, "s": None, "t": None, "d": False})
            return
        if session.conn is not None and session.conn is not conn:
            session.conn.abort()
        session.conn = None
        conn.session = session
        index = next((i for i, e in enumerate(session.events) if e[0] > seq), len(session.events))
        # Events dispatched while the replay is being sent land in the buffer; the loop keeps
        # going until it has caught up, and only then do new dispatches go straight out.
        while index < len(session.events):
            s, event, data = session.events[index]
            if not await conn.send({"op": 0, "s": s, "t": event, "d": data}):
                return
            index += 1
        session.conn = conn
        self.resume_count += 1
        await self.dispatch("RESUMED", {"_trace": TRACE})
        self.state.changes.notify()

    async def _request_members(self, conn: Connection, d: dict[str, Any]) -> None:
        guild = self.state.guilds.find(d.get("guild_id"))
        if guild is None:
            return
        members = list(guild.members)
        if d.get("user_ids"):
            wanted = {int(u) for u in d["user_ids"]}
            members = [m for m in members if m.id in wanted]
        elif d.get("query"):
            members = [m for m in members if m.name.startswith(d["query"])]
        if d.get("limit"):
            members = members[: d["limit"]]
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": [m.payload() for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if d.get("nonce") is not None:
            chunk["nonce"] = d["nonce"]
        await self.dispatch("GUILD_MEMBERS_CHUNK", chunk)

    async def dispatch(
        self, event: str, data: dict[str, Any], *, intent: int | None = None
    ) -> int | None:
        """Send a dispatch (op 0) on the session, or keep it for the RESUME when disconnected;
        a test sends any dispatch the emulator has no helper for this way.

        Returns its sequence number, or None when the session's intents exclude it.
        """
        session = self.session
        if session is None:
            raise RuntimeError("the bot has no gateway session; await emu.wait_ready() first")
        while self.later:  # what happened in the world since, first, in order
            await self._send(session, *self.later.pop(0))
        if intent is not None and not session.intents & intent:
            return None
        return await self._send(session, event, data)

    def replay_from(self, interaction_id: int) -> None:
        """The next RESUME replays from this interaction's dispatch on, whatever sequence the
        client says it has seen (a gateway's replay after a RESUME may repeat events)."""
        session = self.session
        if session is None:
            raise RuntimeError("the bot has no gateway session")
        self._replay_seq = next(
            s
            for s, event, data in session.events
            if event == "INTERACTION_CREATE" and data.get("id") == str(interaction_id)
        )

    def tell_later(self, event: str, data: dict[str, Any]) -> None:
        """A dispatch for something that changed in a synchronous helper (a role made for a new
        member, say): it goes out before the next dispatch, as Discord would have sent it at
        once. Nothing, before the session's READY: GUILD_CREATE carries the world as it is."""
        if self.session is not None and self.session.ready:
            self.later.append((event, data))

    async def _send(self, session: Any, event: str, data: dict[str, Any]) -> int:
        session.seq += 1
        seq = session.seq
        session.events.append((seq, event, data))
        conn = session.conn
        if conn is not None:
            await conn.send({"op": 0, "s": seq, "t": event, "d": data})
        return seq

    async def send_op(self, op: int, d: Any) -> None:
        session = self.session
        if session is not None and session.conn is not None:
            await session.conn.send({"op": op, "s": None, "t": None, "d": d})

    async def send_reconnect(self) -> None:
        """Op 7 RECONNECT: Discord asks the client to reconnect and resume."""
        await self.send_op(7, None)

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        """Op 9 INVALID_SESSION; when not resumable, the client identifies anew."""
        await self.send_op(9, resumable)

    def drop(self) -> None:
        """Cut the gateway connection without a close frame, like a network failure."""
        for conn in list(self.connections):
            conn.abort()

    async def close(self, code: int = 4000, reason: str = "") -> None:
        """Close the gateway connection with ``code`` (4000: resumable; 4004: bad token...)."""
        for conn in list(self.connections):
            await conn.close(code, reason)
