"""A request as the engine's job: its options under the operator's limits, and the parameters
its picture will carry."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bot.cogs.stylize.continuing import Continuing
from bot.cogs.stylize.request import Request
from nst_engine import continuation, provenance
from nst_engine.animation import DEFAULT_TEMPORAL_WEIGHT, later_steps_for
from nst_engine.backend import AnimationJob, AnyJob, Job
from nst_engine.clips import Clip
from nst_engine.options import StyleOptions, options_for_quality


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
class Plan:
    """What the engine paints for a request: its options, its photo and where it starts."""

    options: StyleOptions
    # The photo it paints (uint8 H×W×3): the request's, enlarged for an upscale.
    photo: np.ndarray
    # A continuation's start (uint8 H×W×3, see `nst_engine.continuation.plan`); None: the start
    # the options describe.
    start: np.ndarray | None = None


def plan(request: Request, limits: Limits) -> Plan:
    """The engine's options for a request, and a continuation's photo and start: a Stronger,
    Weaker or Upscale goes on from its parent's picture with the steps
    `nst_engine.continuation` plans, under the same step cap (raises ValueError for impossible
    options)."""
    options = engine_options(request, limits)
    parent = continued(request)
    if parent is None:
        return Plan(options, request.content)
    step = continuation.plan(
        parent.picture.image,
        request.content,
        options,
        request.params.quality,
        parent=parent.was(),
    )
    return Plan(_capped(step.options, limits.max_steps), step.photo, step.start)


def continued(request: Request) -> Continuing | None:
    """The parent a request goes on from; None for a fresh run (an animation always is one)."""
    return None if request.clip is not None else request.parent


def _parent_link(request: Request) -> dict[str, object] | None:
    parent = continued(request)
    if parent is None:
        return None
    return continuation.parent_link(parent.picture.parameters, parent.job_id)


def engine_options(request: Request, limits: Limits) -> StyleOptions:
    """The engine's options for a fresh run of a request (raises ValueError for impossible
    ones)."""
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
    options = _capped(options, limits.max_steps)
    if request.style2 is not None:
        options = options.replace(style_blend=(1.0 - p.blend, p.blend))
    return options


def _capped(options: StyleOptions, max_steps: int) -> StyleOptions:
    return options.replace(steps=max_steps) if options.steps > max_steps else options


def engine_job(request: Request, planned: Plan, limits: Limits) -> AnyJob:
    """The job the engine runs for a request, under its id and the operator's time limit: an
    animation's frames when the photo is a clip, else the picture."""
    options = planned.options
    styles = (request.style,) if request.style2 is None else (request.style, request.style2)
    job_id, timeout = request.id, limits.job_timeout
    if request.clip is not None:
        return AnimationJob(request.clip.frames, styles, options, job_id=job_id, timeout=timeout)
    return Job(planned.photo, styles, options, job_id=job_id, timeout=timeout, start=planned.start)


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
        parent=_parent_link(request),
    )
    if request.clip is not None:
        made |= {
            "frames": len(request.clip.frames),
            "temporal_weight": DEFAULT_TEMPORAL_WEIGHT,
            "later_steps": later_steps_for(options),
        }
    return made
