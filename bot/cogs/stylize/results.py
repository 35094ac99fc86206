"""A painted result: its size and cost, the line when it was cancelled, and the file to post,
fitted to Discord's upload limit where the member asked."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bot.cogs.stylize.request import Request
from nst_engine.animation import AnimationResult
from nst_engine.clips import Clip, encode_clip
from nst_engine.images import encode_image, output_size, resize
from nst_engine.options import StyleOptions, StyleResult
from nst_engine.text import format_bytes


def fit_upload(clip: Clip, encode, limit: int) -> tuple[bytes, Clip]:
    """The animation encoded within ``limit`` bytes: every other frame (same length) while
    there are more than two, then smaller frames; the clip it became."""
    data = encode(clip)
    while len(data) > limit and (len(clip.frames) > 2 or max(clip.size) > 32):
        if len(clip.frames) > 2:
            clip = clip.every(2)
        else:
            clip = clip.resized(max(32, int(max(clip.size) * 0.7)))
        data = encode(clip)
    return data, clip


@dataclass(frozen=True)
class Figures:
    """A result's size and cost, whether a picture or an animation."""

    width: int
    height: int
    steps: int
    seconds: float
    frames: int = 1


def figures(result: StyleResult | AnimationResult) -> Figures:
    if isinstance(result, AnimationResult):
        h, w = result.frames[0].shape[:2]
        return Figures(w, h, sum(result.steps), result.total_seconds, len(result.frames))
    h, w = result.image.shape[:2]
    return Figures(w, h, result.steps, result.seconds)


# Still pictures too large for the upload limit as PNG try these, the smallest that fits.
_STILL_FORMATS = {"webp": "WebP", "jpeg": "JPEG"}
# A still is never shrunk below this longest side to fit (a thumbnail still shows the picture).
_SMALLEST_STILL = 16


def fit_still(image: np.ndarray, parameters: dict, limit: int) -> tuple[bytes, str | None]:
    """The picture encoded within ``limit`` bytes: a PNG (with its parameters) if it fits, else
    a WebP or JPEG, else a smaller one; and what was done, for the member."""
    png = encode_image(image, "png", parameters=parameters)
    if len(png) <= limit:
        return png, None
    for fmt, label in _STILL_FORMATS.items():
        data = encode_image(image, fmt, quality=90)
        if len(data) <= limit:
            return data, f"(sent as {label} to fit Discord's upload limit here, {_mb(limit)})"
    height, width = image.shape[:2]
    formats = _STILL_FORMATS.items()
    while True:
        side = max(_SMALLEST_STILL, int(max(width, height) * 0.7))
        smaller = output_size(width, height, side, min_side=min(side, _SMALLEST_STILL))
        if smaller == (width, height):
            break  # as small as it goes: Discord will say whether it fits
        width, height = smaller
        small = resize(image, width, height)
        tries = [(label, encode_image(small, fmt, quality=85)) for fmt, label in formats]
        label, data = min(tries, key=lambda pair: len(pair[1]))
        if len(data) <= limit:
            break
    return data, (
        f"(sent as a {width}×{height} {label} to fit Discord's upload limit here, {_mb(limit)})"
    )


def _mb(limit: int) -> str:
    return format_bytes(limit, up=False)


def encode_result(
    request: Request, result: StyleResult | AnimationResult, parameters: dict
) -> tuple[bytes, str | None]:
    """The file to post, fitted to the upload limit where the member asked (a PNG, or else a
    smaller file; an animation in its own format), and a line for the member if it had to be
    changed to fit."""
    if not isinstance(result, AnimationResult):
        return fit_still(result.image, parameters, request.upload_limit)
    clip = request.clip.with_frames(result.frames)

    def encode(clip: Clip) -> bytes:
        return encode_clip(clip, clip.format, parameters=parameters)

    data, sent = fit_upload(clip, encode, request.upload_limit)
    notes = [] if clip.rate is None else [video_note(sent)]
    if sent is not clip:
        w, h = sent.size
        notes.append(
            f"(shortened to {len(sent.frames)} frames of {w}×{h} to fit Discord's upload limit "
            f"here, {_mb(request.upload_limit)})"
        )
    return data, " ".join(notes) or None


def video_note(clip: Clip) -> str:
    """What was made of a member's video, for the result's message."""
    seconds = sum(clip.played_durations) / 1000
    sound = "with its sound" if clip.audio else "silent, as it came"
    return (
        f"(your video, painted frame by frame: {len(clip.frames)} frames at "
        f"{float(clip.rate):g} fps, {seconds:.1f} s, as an MP4 {sound})"
    )


def cancelled_text(result: StyleResult | AnimationResult, options: StyleOptions) -> str:
    if isinstance(result, AnimationResult):
        return f"✖️ Cancelled at frame {len(result.frames)} of the clip."
    return f"✖️ Cancelled after {result.steps} of {options.steps} steps."
