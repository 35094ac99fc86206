"""The engine's exceptions. Their messages are written to be shown to a member of the public."""


class NSTError(Exception):
    """Base of every error the engine raises on purpose; ``str(err)`` is one safe, readable line."""


class ImageError(NSTError):
    """An input is not an image we can use (unreadable, hostile, or over a limit)."""


class WeightsError(NSTError):
    """The VGG19 weights could not be obtained or read."""


class OutOfMemory(NSTError):
    """The picture needs more memory than this machine (or this worker) may use."""

    MESSAGE = "this picture needs more memory than the server has; try a smaller size"

    # The message is an argument so that the error pickles across processes.
    def __init__(self, message: str = MESSAGE) -> None:
        super().__init__(message)
