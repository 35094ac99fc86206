"""A /stylize request as the bot tracks it, from the command to the result."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Literal

import discord
import numpy as np

from bot.cogs.stylize.continuing import PARENT_KEY, UPSCALE_KEY, Continuing
from bot.cogs.stylize.errors import BadOption
from bot.cogs.stylize.lifecycle import RequestState
from bot.store import JobRecord
from nst_engine.backend import Handle
from nst_engine.clips import Clip

if TYPE_CHECKING:
    from bot.settings import Settings
    from bot.store import GuildSettings

Quality = Literal["fast", "balanced", "best"]
QUALITIES: tuple[Quality, ...] = ("fast", "balanced", "best")
# Discord's upload limit for a server without boosts, when the interaction does not say.
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
# The choices the Edit button's form shows and may change (Discord's forms hold five fields).
EDITABLE = ("strength", "quality", "size", "preserve_colors", "seed")
# The key of a re-run's button press, [result's job id, action], in its journaled params, so
# that a restart still refuses a second press of it while the job is on its way (`Claims`).
CLAIM_KEY = "claimed_by"
# How the form's "preserve colours" field is answered.
_YES_NO = {"yes": True, "no": False, "true": True, "false": False, "y": True, "n": False}


def size_cap(settings: Settings, rules: GuildSettings | None, *, upscale: bool = False) -> int:
    """The longest side a picture may have: the bot's cap (NST_MAX_UPSCALE_SIZE for an upscale,
    else NST_MAX_SIZE), or the server's if lower."""
    cap = settings.nst_max_upscale_size if upscale else settings.nst_max_size
    if rules is not None and rules.max_size:
        cap = min(cap, rules.max_size)
    return cap


@dataclass(frozen=True)
class Params:
    """The member's choices, as the command's options name them."""

    strength: float = 5.0
    quality: Quality = "balanced"
    size: int = 512
    preserve_colors: bool = False
    seed: int = 0
    private: bool = False
    # The share of the second artwork when there is one (0 = only the first, 1 = only it).
    blend: float = 0.5
    # The server's saved style used as the artwork, if one was named.
    style_name: str | None = None
    # What each artwork was (``saved:NAME`` or a hash of its bytes), for the picture's parameters.
    artworks: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> Params:
        """Choices as the journal keeps them (fields it doesn't know are ignored)."""
        known = {f.name for f in fields(cls)}
        kept = {k: v for k, v in values.items() if k in known}
        if "artworks" in kept:
            kept["artworks"] = tuple(kept["artworks"])  # type: ignore[arg-type]
        return cls(**kept)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def checked(self, *, max_size: int) -> Params:
        """These choices, with the size capped at ``max_size``; raises BadOption (one line)
        for a value Discord's own checks should have refused (a forged interaction). An
        upscale's cap may be above the command's 2048."""
        most = max(2048, max_size)
        _require(
            isinstance(self.strength, (int, float)) and 0 <= self.strength <= 10,
            "strength",
            self.strength,
            "a number from 0 to 10",
        )
        _require(self.quality in QUALITIES, "quality", self.quality, "fast, balanced or best")
        _require(
            isinstance(self.preserve_colors, bool),
            "preserve colours",
            self.preserve_colors,
            "yes or no",
        )
        _require(
            _whole(self.size) and 64 <= self.size <= most, "size", self.size, f"64 to {most} pixels"
        )
        _require(_whole(self.seed) and 0 <= self.seed < 2**31, "seed", self.seed, "0 to 2147483647")
        _require(
            isinstance(self.blend, (int, float)) and 0 <= self.blend <= 1,
            "blend",
            self.blend,
            "a number from 0 to 1",
        )
        return replace(
            self,
            strength=float(self.strength),
            blend=float(self.blend),
            size=min(self.size, max_size),
        )

    def edited(self, form: Mapping[str, str]) -> Params:
        """These choices with the Edit form's answers (text by field name, see `EDITABLE`):
        numbers and yes/no read as such, anything else kept as typed for `checked` to refuse."""
        read = {
            "strength": _number(float),
            "size": _number(int),
            "seed": _number(int),
            "preserve_colors": lambda text: _YES_NO.get(text.lower(), text),
            "quality": str.lower,
        }
        changed = {name: read[name](form[name].strip()) for name in EDITABLE if name in form}
        return replace(self, **changed)

    def nudged(self, delta: float) -> Params:
        """The same choices with the strength moved by ``delta`` (kept within 0–10)."""
        return replace(self, strength=min(10.0, max(0.0, self.strength + delta)))

    def resized(self, size: int) -> Params:
        """The same choices at another size: an upscale of the same picture."""
        return replace(self, size=size)

    def varied(self, seed: int) -> Params:
        """The same choices with another seed: a variation of the same picture."""
        return replace(self, seed=seed)


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
    # A second artwork, blended in by `params.blend`; None: one artwork.
    style2: np.ndarray | None = None
    # An animated content picture (then `content` is its first frame); None: a still photo.
    clip: Clip | None = None
    # The finished picture a Stronger, Weaker or Upscale goes on from; None: painted from the
    # photo.
    parent: Continuing | None = None
    # The button press that made this re-run: (the result's job id, the action); None for a
    # /stylize or an Edit.
    claimed_by: tuple[str, str] | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    # The one state field: only `Lifecycle.move` changes it.
    state: RequestState = RequestState.QUEUED
    # The engine's handle on its job while it paints.
    handle: Handle | None = None
    queued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    # Set by the Cancel button; the dispatcher and the runner both honour it.
    cancel_requested: bool = False
    # The status message ("queued…", "painting…"), once Discord has told us its id, so that it
    # can still be tidied through the channel after the interaction token has expired, or after
    # a restart (it is journaled). Public jobs only: an ephemeral message has no channel side.
    status_message_id: int | None = None
    # Recovered from the journal after a restart: its status says so, and is edited through
    # the channel.
    resumed: bool = False
    # Set when Discord refused the interaction token (401): answer in the channel from now on.
    token_refused: bool = False
    # The largest file Discord takes where the member asked (an animation is fitted to it).
    upload_limit: int = DEFAULT_UPLOAD_LIMIT
    # A line added to the result's message (e.g. an animation shortened to fit that limit).
    note: str | None = None
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
        style2: np.ndarray | None = None,
        clip: Clip | None = None,
        parent: Continuing | None = None,
        claimed_by: tuple[str, str] | None = None,
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
            style2=style2,
            clip=clip,
            parent=parent,
            claimed_by=claimed_by,
            upload_limit=getattr(interaction, "filesize_limit", None) or DEFAULT_UPLOAD_LIMIT,
        )

    @classmethod
    def from_record(
        cls,
        record: JobRecord,
        content: np.ndarray,
        style: np.ndarray,
        style2: np.ndarray | None = None,
        clip: Clip | None = None,
        parent: Continuing | None = None,
    ) -> Request:
        """A journaled job, recovered after a restart (no live interaction); ``parent``, the
        picture it goes on from, as found again (`continuing.journaled_parent`)."""
        return cls(
            None,
            Params.from_dict(record.params),
            content,
            style,
            user_id=record.user_id,
            channel_id=record.channel_id,
            guild_id=record.guild_id,
            application_id=record.application_id,
            token=record.interaction_token,
            created=record.interaction_created,
            style2=style2,
            clip=clip,
            parent=parent,
            claimed_by=_claim(record.params.get(CLAIM_KEY)),
            id=record.id,
            # A job that was running when the process stopped waits for a worker again.
            state=RequestState.DONE if record.state == RequestState.DONE else RequestState.QUEUED,
            status_message_id=record.status_message_id,
            resumed=True,
        )

    def to_record(self) -> JobRecord:
        """The journal row of a newly accepted job; a continuation's params name its parent,
        and a re-run's the press that made it."""
        params = self.params.to_dict()
        if self.claimed_by is not None:
            params[CLAIM_KEY] = list(self.claimed_by)
        if self.parent is not None:
            params[PARENT_KEY] = self.parent.job_id
            if self.parent.upscale:
                params[UPSCALE_KEY] = True
        return JobRecord(
            id=self.id,
            state="queued",
            user_id=self.user_id,
            channel_id=self.channel_id,
            guild_id=self.guild_id,
            application_id=self.application_id,
            interaction_token=self.token,
            interaction_created=self.created,
            params=params,
            attempts=0,
            created=time.time(),
        )

    @property
    def mention(self) -> str:
        return f"<@{self.user_id}>"


def _claim(journaled: object) -> tuple[str, str] | None:
    """A journaled `CLAIM_KEY`; None when there is none (a row from before it was kept)."""
    if not isinstance(journaled, list) or len(journaled) != 2:
        return None
    job_id, action = journaled
    return (job_id, action) if isinstance(job_id, str) and isinstance(action, str) else None


def _number(kind: type[float] | type[int]) -> Callable[[str], object]:
    """Reads a number of ``kind`` from text; text that is none is kept as it was typed."""

    def read(text: str) -> object:
        try:
            return kind(text)
        except ValueError:
            return text

    return read


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise BadOption(name, value, allowed)
