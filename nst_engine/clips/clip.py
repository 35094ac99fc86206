"""The clip: an animated picture's frames and how they play, and the limits a clip from a stranger
must keep (checked from the file's structure before a frame is decoded)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction

import numpy as np

from nst_engine.errors import ImageError
from nst_engine.images import (
    CORRUPT_MESSAGE,
    check_aspect,
    check_rgb_array,
    format_megapixels,
    output_size,
    resize,
)

# At most this many frames in a clip (NST_MAX_FRAMES in the bot, --max-frames in the CLI).
DEFAULT_MAX_FRAMES = 48
# At most this many decoded pixels in all frames together (600 MB as uint8 RGB), unless the
# frames are shrunk while decoding (``max_side``), when it applies to the shrunk frames.
DEFAULT_MAX_CLIP_PIXELS = 200_000_000
# Browsers play GIF and WebP frames shorter than this (0 and 10 ms are common) at 100 ms.
MIN_PLAYED_DURATION_MS = 20
PLAYED_DURATION_FOR_SHORT_MS = 100


@dataclass(frozen=True)
class Clip:
    """An animated picture: its frames and how they play."""

    # uint8 H×W×3 RGB arrays, all of one size.
    frames: tuple[np.ndarray, ...] = field(repr=False)
    # Milliseconds each frame shows, as the file says (a GIF keeps 10 ms steps; 0 is common and
    # browsers play it as 100 ms, see `played_durations`).
    durations: tuple[int, ...]
    # GIF: the NETSCAPE loop count (0: forever), None when the file has none (plays once).
    # WebP: the ANIM loop count (0: forever). Video: None.
    loop: int | None = 0
    # Where it came from or is going: "gif", "webp", "mp4", "webm", or a still format.
    format: str = "gif"
    # A video's frame rate (frames per second), kept to write it back exactly; None otherwise.
    rate: Fraction | None = None
    # A video's first audio track, as an audio-only Matroska file (stream-copied), carried into
    # an MP4 result; None otherwise.
    audio: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.frames:
            raise ValueError("a clip needs at least one frame")
        if len(self.durations) != len(self.frames):
            raise ValueError(f"{len(self.durations)} durations for {len(self.frames)} frames")
        shape = self.frames[0].shape
        for frame in self.frames:
            check_rgb_array(frame)
            if frame.shape != shape:
                raise ValueError(f"frames differ in size: {frame.shape} and {shape}")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of every frame."""
        return self.frames[0].shape[1], self.frames[0].shape[0]

    @property
    def played_durations(self) -> tuple[int, ...]:
        """Milliseconds each frame shows in a browser (below 20 ms counts as 100 ms)."""
        return tuple(
            PLAYED_DURATION_FOR_SHORT_MS if d < MIN_PLAYED_DURATION_MS else d
            for d in self.durations
        )

    def every(self, step: int) -> Clip:
        """Every ``step``-th frame, each shown for the frames it stands for (same length in
        all, same loop, a video's frame rate divided by ``step``): a smaller file when a result
        is over an upload limit."""
        if step < 1:
            raise ValueError(f"step must be at least 1, not {step}")
        played = self.played_durations
        durations = tuple(sum(played[i : i + step]) for i in range(0, len(self.frames), step))
        rate = None if self.rate is None else self.rate / step
        return replace(self, frames=self.frames[::step], durations=durations, rate=rate)

    def resized(self, max_side: int) -> Clip:
        """Every frame shrunk so that its longest side is at most ``max_side`` (the engine's
        `output_size` rule: never enlarged but to a shortest side of 32)."""
        width, height = output_size(*self.size, max_side)
        return replace(self, frames=tuple(resize(f, width, height) for f in self.frames))

    def with_frames(self, frames: Sequence[np.ndarray]) -> Clip:
        """The same timing with other frames (of any one size), e.g. the stylized ones."""
        if len(frames) != len(self.frames):
            raise ValueError(f"{len(frames)} frames for a clip of {len(self.frames)}")
        return replace(self, frames=tuple(frames))


@dataclass(frozen=True)
class Limits:
    """What a clip from a stranger may hold (the keywords of `decode_clip`)."""

    # Pixels of one frame, judged from the header.
    max_pixels: int
    # Frames, counted before decoding.
    max_frames: int
    # Pixels of all frames together, after shrinking to `max_side`.
    max_clip_pixels: int
    # Each frame is shrunk while decoding so that its longest side is at most this; None: kept.
    max_side: int | None

    def check(self, frames: int, size: tuple[int, int]) -> None:
        """Refuse from the header: too many frames, frames too big, too many pixels in all."""
        width, height = size
        if frames < 1 or width < 1 or height < 1:
            raise ImageError(CORRUPT_MESSAGE)
        if frames > self.max_frames:
            raise ImageError(f"the animation has {frames} frames; the limit is {self.max_frames}")
        if width * height > self.max_pixels:
            raise ImageError(
                f"its frames are {width}×{height}; "
                f"the limit is {format_megapixels(self.max_pixels)} megapixels"
            )
        check_aspect(size)
        kept_w, kept_h = self.kept_size(size)
        if frames * kept_w * kept_h > self.max_clip_pixels:
            raise ImageError(
                f"the animation is {frames} frames of {kept_w}×{kept_h}; the limit is "
                f"{format_megapixels(self.max_clip_pixels)} megapixels in all frames"
            )

    def kept_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) a frame of ``size`` has once decoded (shrunk to `max_side`)."""
        if self.max_side is None:
            return size
        return output_size(size[0], size[1], self.max_side)


def fit_to_screen(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Crop or pad (white) a frame to ``size``: Pillow grows a GIF's canvas when a frame reaches
    past the logical screen, while browsers show the screen only."""
    width, height = size
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    out = np.full((height, width, 3), 255, np.uint8)
    h, w = min(height, frame.shape[0]), min(width, frame.shape[1])
    out[:h, :w] = frame[:h, :w]
    return out
