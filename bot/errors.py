"""The base of every error a member may see; it lives outside the extensions so that the
client's error ladder still knows it after an extension is reloaded."""

from __future__ import annotations

from collections.abc import Iterable


class UserFacingError(Exception):
    """Shown to the member as it is (ephemerally); never logged with a traceback."""


class BadOption(UserFacingError):
    """A command option Discord's own checks should have refused (a forged interaction)."""

    def __init__(self, name: str, value: object, allowed: str) -> None:
        super().__init__(f"The {name} option can't be {value!r}; it must be {allowed}.")


class NeedsManageServer(UserFacingError):
    def __init__(self, doing: str) -> None:
        super().__init__(f"Only members with the Manage Server permission can {doing}.")


class NeedsRole(UserFacingError):
    def __init__(self, role_id: int) -> None:
        super().__init__(
            f"In this server only members with the <@&{role_id}> role can use the bot."
        )


class WrongChannel(UserFacingError):
    def __init__(self, channels: Iterable[int]) -> None:
        shown = ", ".join(f"<#{c}>" for c in sorted(channels))
        super().__init__(f"In this server the bot can be used only in {shown}.")


class UnknownStyle(UserFacingError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"This server has no saved style called {name!r}; /styles list shows the ones it has."
        )
