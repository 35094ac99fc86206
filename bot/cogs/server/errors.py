"""Errors a member may see. Each message is one line saying what was wrong and what is allowed."""

from __future__ import annotations

from bot.errors import (  # noqa: F401 - the server cog's errors, in one place
    NeedsManageServer,
    NeedsRole,
    UnknownStyle,
    UserFacingError,
    WrongChannel,
    shown,
)


class NotYourStyle(UserFacingError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"Only the member who saved the style {shown(name)}, or someone with the Manage Server "
            "permission, can remove it."
        )


class NothingToChange(UserFacingError):
    def __init__(self) -> None:
        super().__init__(
            "Name at least one setting to change: max_size, default_quality, daily_limit or role."
        )


class SavingTooFast(UserFacingError):
    def __init__(self, limit: int, wait: float) -> None:
        plural = "style" if limit == 1 else "styles"
        super().__init__(
            f"Slow down: you may save {limit} {plural} per minute; "
            f"try again in {max(1, round(wait))} s."
        )
