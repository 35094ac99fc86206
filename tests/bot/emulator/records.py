"""What the emulator saw the bot do: requests, messages (with every edit), interaction callbacks;
and the one notifier every wait listens to."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

EPHEMERAL = 1 << 6
LOADING = 1 << 7

DEFAULT_TIMEOUT = 5.0
POLL_INTERVAL = 0.05


def loop_time() -> float:
    """The event loop's clock, which every record's times are on."""
    return asyncio.get_running_loop().time()


class EmulatorTimeout(AssertionError):
    """A wait on the emulator ran out; the message says what had happened by then."""


class Changes:
    """Wakes every waiter whenever anything in the emulator changes.

    Waiters re-check their own condition, so one notifier serves every kind of wait and nobody
    can miss a change that happened between their check and their wait.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(
        self, check: Callable[[], T], *, timeout: float, describe: Callable[[], str]
    ) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = check()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise EmulatorTimeout(f"timed out after {timeout}s waiting for {describe()}")
            event = self._event
            # Also wake now and then: a predicate may read the client's state, which the
            # emulator hears nothing about.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, POLL_INTERVAL))


@dataclass(frozen=True, eq=False)
class SentFile:
    """A file the bot uploaded (or a test registered), with its bytes."""

    id: int
    filename: str
    data: bytes
    content_type: str
    description: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True, eq=False)
class MessageVersion:
    """One state of a message: as created, or after one edit."""

    at: float  # event-loop time it took this state
    payload: dict[str, Any]  # the message as the API returned it at that moment
    files: tuple[SentFile, ...]  # the attachments it had then, with their bytes

    @property
    def content(self) -> str:
        return self.payload["content"]

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return self.payload["embeds"]

    @property
    def components(self) -> list[dict[str, Any]]:
        return self.payload["components"]

    @property
    def flags(self) -> int:
        return self.payload["flags"]

    @property
    def loading(self) -> bool:
        """The "Bot is thinking…" state a deferred response shows until its first edit."""
        return bool(self.flags & LOADING)


Via = Literal["response", "followup", "channel", "user"]


@dataclass(eq=False)
class MessageRecord:
    """A message and its whole history; the properties read its latest version."""

    id: int
    channel_id: int
    via: Via  # how it was made: interaction response, follow-up, channel endpoint, or a test user
    interaction_id: int | None  # the interaction it answers, if any
    history: list[MessageVersion] = field(default_factory=list)
    deleted: bool = False

    @property
    def latest(self) -> MessageVersion:
        return self.history[-1]

    @property
    def payload(self) -> dict[str, Any]:
        return self.latest.payload

    @property
    def content(self) -> str:
        return self.latest.content

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return self.latest.embeds

    @property
    def components(self) -> list[dict[str, Any]]:
        return self.latest.components

    @property
    def files(self) -> tuple[SentFile, ...]:
        return self.latest.files

    @property
    def flags(self) -> int:
        return self.latest.flags

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        return self.latest.loading

    @property
    def edits(self) -> int:
        return len(self.history) - 1

    def file(self, filename: str) -> SentFile:
        for sent in self.files:
            if sent.filename == filename:
                return sent
        names = [f.filename for f in self.files]
        raise LookupError(f"message {self.id} has no file {filename!r}; it has {names}")

    def iter_components(self) -> Iterator[dict[str, Any]]:
        """Every component, depth first (action rows, containers and sections included)."""
        stack = list(reversed(self.components))
        while stack:
            component = stack.pop()
            yield component
            children = list(component.get("components", []))
            if "accessory" in component:
                children.append(component["accessory"])
            stack.extend(reversed(children))

    def buttons(self) -> list[dict[str, Any]]:
        return [c for c in self.iter_components() if c.get("type") == 2]

    def component(self, custom_id: str) -> dict[str, Any] | None:
        return next((c for c in self.iter_components() if c.get("custom_id") == custom_id), None)

    def push(self, at: float, payload: dict[str, Any], files: tuple[SentFile, ...]) -> None:
        """Add the message's next version (as created, or after an edit)."""
        self.history.append(MessageVersion(at=at, payload=copy.deepcopy(payload), files=files))

    def summary(self) -> str:
        names = ", ".join(f.filename for f in self.files)
        state = " deleted" if self.deleted else ""
        return (
            f"<message {self.id} via {self.via}{state} flags={self.flags} edits={self.edits} "
            f"content={self.content!r} embeds={len(self.embeds)} files=[{names}]>"
        )


@dataclass(eq=False)
class RequestRecord:
    """One HTTP request the emulator answered."""

    method: str
    path: str  # below /api/v10 for API calls, e.g. "/channels/1/messages"; "/cdn/..." for the CDN
    route: str  # the route template, e.g. "/channels/{channel_id}/messages"; "" when unknown
    at: float  # event-loop time it arrived
    status: int = 0
    body: Any = None  # the JSON body (or payload_json of a multipart body)
    files: int = 0  # how many files were uploaded with it
    error_code: int | None = None  # Discord's JSON error code, for answers that carry one
    interaction_id: int | None = None  # the interaction whose callback or webhook it used
    fault: str | None = None  # the pattern of the injected fault that answered it, if any

    def summary(self) -> str:
        code = f" code={self.error_code}" if self.error_code is not None else ""
        fault = f" (injected {self.fault})" if self.fault else ""
        return f"{self.method} {self.path} -> {self.status}{code}{fault}"


@dataclass(frozen=True, eq=False)
class CallbackRecord:
    """The bot's one response to an interaction (``POST /interactions/{id}/{token}/callback``)."""

    type: int  # 4 message, 5 deferred message, 6 deferred update, 7 update message, 9 modal
    data: dict[str, Any]  # the callback's ``data`` ({} when it had none)
    after: float  # seconds between the INTERACTION_CREATE dispatch and the callback's arrival
    files: tuple[SentFile, ...] = ()

    @property
    def ephemeral(self) -> bool:
        return bool(self.data.get("flags", 0) & EPHEMERAL)
