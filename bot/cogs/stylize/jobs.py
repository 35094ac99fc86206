"""What the scheduler needs and makes: the contracts it holds the engine, the journal and
delivery to (no Discord types), and how a request becomes the engine's job under the
operator's limits, with the parameters its picture will carry."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from bot.cogs.stylize import lifecycle
from bot.cogs.stylize.models import Request
from nst_engine import provenance
from nst_engine.animation import DEFAULT_TEMPORAL_WEIGHT, AnimationResult, later_steps_for
from nst_engine.frames import Clip, encode_clip
from nst_engine.images import encode_image, output_size, resize
from nst_engine.options import Progress, StyleOptions, StyleResult, options_for_quality
from nst_engine.pool import Job
from nst_engine.text import format_bytes


class Undeliverable(Exception):
    """No try will deliver the picture (Discord refused it as too large, the channel is gone or
    closed to the bot, DMs are closed). The message is Discord's answer, for the log; ``why``
    ends the member's line "your picture was painted but …"."""

    def __init__(self, answer: str, why: str = "Discord would not take it") -> None:
        super().__init__(answer)
        self.why = why


class Notifier(Protocol):
    """What members see of their jobs; implemented by `delivery.Delivery`."""

    async def queued(self, request: Request, position: int | None, running: int) -> None: ...

    async def started(self, request: Request) -> None: ...

    async def progress(self, request: Request, progress: Progress) -> None: ...

    async def deliver(self, request: Request, png: bytes, result: StyleResult | None) -> None:
        """Post the picture; raises Undeliverable when no way to the member is left."""

    async def ended(self, request: Request, text: str) -> None: ...


class Backend(Protocol):
    """The engine, as the scheduler uses it (`nst_engine.pool.EnginePool`)."""

    size: int

    def submit(self, job: Job) -> Any: ...

    async def wait_warm(self) -> None: ...


class Journal(lifecycle.Journal, Protocol):
    """The part of `bot.store.JobStore` the scheduler uses: the lifecycle's writes, plus
    reading jobs back for recovery."""

    async def pending(self) -> list: ...

    async def load(self, job_id: str) -> Any: ...

    async def delivery_tried(self, job_id: str) -> int:
        """Count one more try to deliver a painted job; the tries so far, this one included."""


@dataclass(frozen=True)
class Limits:
    """What the operator's settings allow every job."""

    # Cap on the steps of any preset.
    max_steps: int
    # Seconds a job may run.
    job_timeout: float
    # Arithmetic of the feature network (auto | float32 | bfloat16 | float16).
    precision: str = "auto"
    # Pixels of all an animation's result frames together: many frames are painted smaller.
    max_clip_pixels: int = 3_145_728


def clip_side(clip: Clip, size: int, max_clip_pixels: int) -> int:
    """The longest side an animation is painted at: ``size``, or less, so that its frames
    together stay within ``max_clip_pixels`` (never under 32, VGG's smallest)."""
    width, height = clip.size
    aspect = min(width, height) / max(width, height)
    side = math.isqrt(int(max_clip_pixels / (len(clip.frames) * aspect)))
    return max(32, min(size, side))


@dataclass(frozen=True)
class Outcome:
    """How a run ended: the state to move to, and the line for the member (or the result)."""

    state: lifecycle.JobState
    text: str = ""
    result: StyleResult | AnimationResult | None = None
    # The file's parameters (with a result).
    parameters: dict | None = None


def engine_options(request: Request, limits: Limits) -> StyleOptions:
    """The engine's options for a request (raises ValueError for impossible ones)."""
    p = request.params
    size = p.size
    if request.clip is not None:
        size = clip_side(request.clip, size, limits.max_clip_pixels)
    options = options_for_quality(
        p.quality,
        strength=p.strength,
        max_size=size,
        preserve_colors=p.preserve_colors,
        seed=p.seed,
        precision=limits.precision,
    )
    if options.steps > limits.max_steps:
        options = options.replace(steps=limits.max_steps)
    if request.style2 is not None:
        options = options.replace(style_blend=(1.0 - p.blend, p.blend))
    return options


def picture_parameters(request: Request, options: StyleOptions, weights: str) -> dict:
    """What the picture's file says about how it was made."""
    p = request.params
    made = provenance.parameters(
        options,
        quality=p.quality,
        size=p.size,
        styles=list(p.artworks),
        weights=weights,
        blend=p.blend if request.style2 is not None else None,
    )
    if request.clip is not None:
        made |= {
            "frames": len(request.clip.frames),
            "temporal_weight": DEFAULT_TEMPORAL_WEIGHT,
            "later_steps": later_steps_for(options),
        }
    return made


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
    if sent is clip:
        return data, None
    w, h = sent.size
    return data, (
        f"(shortened to {len(sent.frames)} frames of {w}×{h} to fit Discord's upload limit "
        f"here, {_mb(request.upload_limit)})"
    )


def cancelled_text(result: StyleResult | AnimationResult, options: StyleOptions) -> str:
    if isinstance(result, AnimationResult):
        return f"✖️ Cancelled at frame {len(result.frames)} of the clip."
    return f"✖️ Cancelled after {result.steps} of {options.steps} steps."
