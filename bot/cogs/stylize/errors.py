"""Errors a member may see. Each message is one line saying what was wrong and what is allowed."""

from __future__ import annotations

from bot.errors import BadAttachment, BadOption, UnknownStyle, UserFacingError

__all__ = ["BadAttachment", "BadOption", "UnknownStyle", "UserFacingError"]


class MemberQueueFull(UserFacingError):
    def __init__(self, limit: int) -> None:
        plural = "job" if limit == 1 else "jobs"
        super().__init__(
            f"You already have {limit} {plural} queued or running; the limit is {limit}. "
            "Wait for one to finish or cancel it."
        )


class QueueFull(UserFacingError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"The queue is full ({limit} jobs); please try again in a few minutes.")


class NotYours(UserFacingError):
    def __init__(self, action: str) -> None:
        super().__init__(f"Only the member who asked for this picture can {action} it.")


class Gone(UserFacingError):
    def __init__(self) -> None:
        super().__init__(
            "This picture's inputs are no longer kept; run /stylize again with the images."
        )


class ShuttingDown(UserFacingError):
    def __init__(self) -> None:
        super().__init__("The bot is restarting; please try again in a minute.")


class TooFast(UserFacingError):
    def __init__(self, who: str, limit: int, per: str, wait: float) -> None:
        super().__init__(
            f"Slow down: {who} may start {limit} pictures per {per}; "
            f"try again in {max(1, round(wait))} s."
        )


class TooLate(UserFacingError):
    def __init__(self) -> None:
        super().__init__("Too late to cancel: the picture is finished and on its way.")


class GalleryGone(UserFacingError):
    def __init__(self) -> None:
        super().__init__(
            "This server's gallery channel is gone or closed to the bot; "
            "an admin can choose another with /gallery set."
        )


class NoGallery(UserFacingError):
    def __init__(self) -> None:
        super().__init__(
            "This server has no gallery channel; an admin can set one with /gallery set."
        )


class DailyLimit(UserFacingError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"You have made {limit} pictures today, this server's daily limit; "
            "try again after 00:00 UTC."
        )


class ArtworkChoice(UserFacingError):
    def __init__(self) -> None:
        super().__init__(
            "Give exactly one artwork: either style (an image) or style_name (a saved style)."
        )


class NoImage(UserFacingError):
    def __init__(self) -> None:
        super().__init__("That message has no image; Stylize needs a photo (and an artwork).")


class NoSavedStyles(UserFacingError):
    def __init__(self) -> None:
        super().__init__(
            "That message has one image and this server has no saved styles yet: post the photo "
            "and the artwork together, or save an artwork with /styles add."
        )


class BadPick(UserFacingError):
    """A pick from the Stylize menu that its options could not have sent (a forged interaction)."""

    def __init__(self) -> None:
        super().__init__("That pick is not one of the styles this menu offers; pick one from it.")


class AtUpscaleCap(UserFacingError):
    def __init__(self, cap: int) -> None:
        super().__init__(
            f"This picture is at the largest size an upscale may have here ({cap} px) already."
        )


class NotUpscalable(UserFacingError):
    def __init__(self) -> None:
        super().__init__(
            "This picture can't be upscaled (it is no longer kept, or was sent as a smaller "
            "file); run /stylize again at a larger size."
        )


class StillPainting(UserFacingError):
    """A second press of a button whose first press's picture is still on its way."""

    def __init__(self, button: str) -> None:
        super().__init__(
            f"This picture's {button} is already queued or painting; it will be posted here."
        )


class Unchanged(UserFacingError):
    def __init__(self) -> None:
        super().__init__(
            "Nothing was changed, so that would be the same picture; change a value to paint "
            "another."
        )
