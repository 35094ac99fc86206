"""The base of every error a member may see; it lives outside the extensions so that the
client's error ladder still knows it after an extension is reloaded."""

from __future__ import annotations

from collections.abc import Iterable

from discord import app_commands

from bot.markdown import literal

# Discord refuses a message over this many characters: every answer is cut to fit.
MESSAGE_LIMIT = 2000
# Member-supplied text quoted inside an answer is cut to this many characters.
QUOTE_LIMIT = 40


class UserFacingError(Exception):
    """Shown to the member as it is (ephemerally); never logged with a traceback."""


def shown(value: object, limit: int = QUOTE_LIMIT) -> str:
    """A value a member sent, as an answer quotes it: ``repr`` for text and numbers, cut to
    ``limit`` characters, markdown escaped; a word for what Discord would never send as one."""
    if value is None:
        return "empty"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if not isinstance(value, str):
        return repr(value)
    if len(value) > limit:
        return literal(repr(value[:limit])) + "…"
    return literal(repr(value))


def channel_list(channels: Iterable[int], limit: int = 20) -> str:
    """Channel mentions, at most ``limit`` of them (an allow-list has no cap of its own)."""
    ordered = sorted(channels)
    listed = ", ".join(f"<#{c}>" for c in ordered[:limit])
    return listed + (f" and {len(ordered) - limit} more" if len(ordered) > limit else "")


def fit(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """``message`` cut to Discord's limit on a message's length."""
    return message if len(message) <= limit else message[: limit - 1] + "…"


class BadOption(UserFacingError):
    """A command option Discord's own checks should have refused (a forged interaction)."""

    def __init__(self, name: str, value: object, allowed: str) -> None:
        super().__init__(f"The {name} option can't be {shown(value)}; it must be {allowed}.")


class BadAttachment(UserFacingError):
    """An attachment that won't do (a /stylize input or a style to save)."""

    def __init__(self, which: str, problem: str) -> None:
        super().__init__(f"The {which} attachment won't do: {problem}.")


class BadLength(UserFacingError):
    """A text option longer or shorter than the command declares (a forged interaction)."""

    def __init__(self, name: str, low: int, high: int, length: int) -> None:
        super().__init__(f"The {name} option must be {low} to {high} characters, not {length}.")


class UnknownOption(UserFacingError):
    def __init__(self, name: object) -> None:
        super().__init__(f"This command has no option called {shown(name)}.")


class MissingOption(UserFacingError):
    def __init__(self, name: str) -> None:
        super().__init__(f"The {name} option is required.")


class ServerOnly(UserFacingError, app_commands.CheckFailure):
    def __init__(self) -> None:
        super().__init__("This command can be used only in a server.")


class NeedsManageServer(UserFacingError, app_commands.CheckFailure):
    """Also a check failure: the shared admin check raises it before the command runs."""

    def __init__(self, doing: str) -> None:
        super().__init__(f"Only members with the Manage Server permission can {doing}.")


class NeedsRole(UserFacingError):
    def __init__(self, role_id: int) -> None:
        super().__init__(
            f"In this server only members with the <@&{role_id}> role can use the bot."
        )


class WrongChannel(UserFacingError):
    def __init__(self, channels: Iterable[int]) -> None:
        super().__init__(f"In this server the bot can be used only in {channel_list(channels)}.")


class UnknownStyle(UserFacingError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"This server has no saved style called {shown(name)}; /styles list shows the ones "
            "it has."
        )
