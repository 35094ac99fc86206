"""Errors a member may see. Each message is one line saying what was wrong and what is allowed."""

from __future__ import annotations

from bot.errors import (  # noqa: F401 - the server cog's errors, in one place
    NeedsManageServer,
    NeedsRole,
    UnknownStyle,
    UserFacingError,
    WrongChannel,
)


class NotYourStyle(UserFacingError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"Only the member who saved the style {name!r}, or someone with the Manage Server "
            "permission, can remove it."
        )


class NothingToChange(UserFacingError):
    def __init__(self) -> None:
        super().__init__(
            "Name at least one setting to change: max_size, default_quality, daily_limit or role."
        )
