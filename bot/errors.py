"""The base of every error a member may see; it lives outside the extensions so that the
client's error ladder still knows it after an extension is reloaded."""

from __future__ import annotations


class UserFacingError(Exception):
    """Shown to the member as it is (ephemerally); never logged with a traceback."""


class BadOption(UserFacingError):
    """A command option Discord's own checks should have refused (a forged interaction)."""

    def __init__(self, name: str, value: object, allowed: str) -> None:
        super().__init__(f"The {name} option can't be {value!r}; it must be {allowed}.")
