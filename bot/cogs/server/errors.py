"""Errors a member may see. Each message is one line saying what was wrong and what is allowed."""

from __future__ import annotations

from collections.abc import Iterable

from bot.errors import UserFacingError


class NeedsManageServer(UserFacingError):
    def __init__(self, doing: str) -> None:
        super().__init__(f"Only members with the Manage Server permission can {doing}.")


class UnknownStyle(UserFacingError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"This server has no saved style called {name!r}; /styles list shows the ones it has."
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


class NeedsRole(UserFacingError):
    def __init__(self, role_id: int) -> None:
        super().__init__(
            f"In this server only members with the <@&{role_id}> role can use the bot."
        )


class WrongChannel(UserFacingError):
    def __init__(self, channels: Iterable[int]) -> None:
        shown = ", ".join(f"<#{c}>" for c in sorted(channels))
        super().__init__(f"In this server the bot can be used only in {shown}.")
