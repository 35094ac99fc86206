"""Numbers as people read them: file sizes and times left, for the CLI and the bot alike, and
the CLI's progress bar."""

from __future__ import annotations

import math


def format_bytes(count: int, *, up: bool = True) -> str:
    """'31.2 MB', '900 KB', '12 bytes'. Round file sizes up and limits down, so that a file
    just over the limit never reads as the same number."""
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if count >= size:
            return f"{_one_decimal(count / size, up=up)} {unit}"
    return f"{count} bytes"


def clock(seconds: float | None) -> str:
    """``m:ss`` for a time left, or ``--:--`` when it is not known yet."""
    if seconds is None:
        return "--:--"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    return f"{minutes}:{secs:02d}"


def _one_decimal(value: float, *, up: bool) -> str:
    tenths = math.ceil(value * 10 - 1e-9) if up else math.floor(value * 10 + 1e-9)
    whole, frac = divmod(tenths, 10)
    return f"{whole}" if frac == 0 else f"{whole}.{frac}"


class ProgressBar:
    """A one-line progress bar with the losses and an ETA; plain lines when not on a terminal."""

    def __init__(self, stream, width: int = 24) -> None:
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self._last_tenth = -1

    def update(self, progress) -> None:
        fraction = progress.step / progress.total
        eta = progress.eta
        losses = progress.losses
        frames = getattr(progress, "frames", 1)
        frame = f"frame {progress.frame}/{frames} " if frames > 1 else ""
        # An animation's later frames hold to the previous one: its term is part of the total.
        temporal = f", temporal {losses.temporal:.3g}" if frames > 1 else ""
        text = (
            f"{fraction:4.0%} {frame}step {progress.step}/{progress.total} "
            f"loss {losses.total:.3g} (content {losses.content:.3g}, style {losses.style:.3g}, "
            f"tv {losses.tv:.3g}{temporal}) ETA {clock(eta)}"
        )
        if self.tty:
            filled = int(fraction * self.width)
            bar = "#" * filled + "." * (self.width - filled)
            self.stream.write(f"\r[{bar}] {text}\033[K")
            self.stream.flush()
        elif int(fraction * 10) != self._last_tenth:
            self._last_tenth = int(fraction * 10)
            self.stream.write(text + "\n")

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
