"""A /stylize request as the bot tracks it, from the command to the result."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Literal

import discord
import numpy as np

from bot.store import JobRecord
from nst_engine.pool import JobHandle

Quality = Literal["fast", "balanced", "best"]
State = Literal["queued", "running", "done", "failed", "cancelled"]


@dataclass(frozen=True)
class Params:
    """The member's choices, as the command's options name them."""

    strength: float = 5.0
    quality: Quality = "balanced"
    size: int = 512
    preserve_colors: bool = False
    seed: int = 0
    private: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(eq=False)
class Request:
    """One job a member asked for, and how to answer them.

    A live request has its interaction; one recovered from the journal after a restart has only
    the interaction's token (valid 15 minutes from ``created``) and the channel.
    """

    interaction: discord.Interaction | None
    params: Params
    content: np.ndarray
    style: np.ndarray
    user_id: int
    channel_id: int | None
    guild_id: int | None
    application_id: int | None
    token: str | None
    # When the interaction was created (epoch seconds).
    created: float
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    state: State = "queued"
    handle: JobHandle | None = None
    queued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    # Set by the Cancel button; the dispatcher and the runner both honour it.
    cancel_requested: bool = False
    # Percent done while running, for /queue.
    percent: int = 0
    # The queue position the member was last shown (edits only when it changes).
    shown_position: int | None = None
    # Status edits of this request go one at a time, so a late "queued at position …" can't
    # land after "painting…".
    edit_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False, compare=False)

    @classmethod
    def from_interaction(
        cls,
        interaction: discord.Interaction,
        params: Params,
        content: np.ndarray,
        style: np.ndarray,
    ) -> Request:
        return cls(
            interaction,
            params,
            content,
            style,
            user_id=interaction.user.id,
            channel_id=interaction.channel_id,
            guild_id=interaction.guild_id,
            application_id=interaction.application_id,
            token=interaction.token,
            created=interaction.created_at.timestamp(),
        )

    @classmethod
    def from_record(cls, record: JobRecord, content: np.ndarray, style: np.ndarray) -> Request:
        """A journaled job, recovered after a restart (no live interaction)."""
        return cls(
            None,
            Params(**record.params),
            content,
            style,
            user_id=record.user_id,
            channel_id=record.channel_id,
            guild_id=record.guild_id,
            application_id=record.application_id,
            token=record.interaction_token,
            created=record.interaction_created,
            id=record.id,
        )

    def to_record(self) -> JobRecord:
        """The journal row of a newly accepted job."""
        return JobRecord(
            id=self.id,
            state="queued",
            user_id=self.user_id,
            channel_id=self.channel_id,
            guild_id=self.guild_id,
            application_id=self.application_id,
            interaction_token=self.token,
            interaction_created=self.created,
            params=self.params.to_dict(),
            attempts=0,
            created=time.time(),
        )

    @property
    def mention(self) -> str:
        return f"<@{self.user_id}>"
