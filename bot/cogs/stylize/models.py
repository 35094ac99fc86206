"""A /stylize request as the bot tracks it, from the command to the result."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Literal

import discord
import numpy as np

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
    """One job a member asked for; the interaction is how we answer them."""

    interaction: discord.Interaction
    params: Params
    content: np.ndarray
    style: np.ndarray
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    state: State = "queued"
    handle: JobHandle | None = None
    queued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    # Set by the Cancel button; the dispatcher and the runner both honour it.
    cancel_requested: bool = False
    # Percent done while running, for /queue.
    percent: int = 0

    @property
    def user(self) -> discord.abc.User:
        return self.interaction.user

    @property
    def created(self) -> float:
        """When the interaction was created (its token lasts 15 minutes from then)."""
        return self.interaction.created_at.timestamp()
