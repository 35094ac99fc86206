"""Iterating on a finished picture: a re-run that goes on from it instead of starting again from
the photo (Stronger, Weaker, twice the size), and the chain of pictures it came from.

A continuation is the same objective started from the last result, at full size only, with no
start noise and a few steps (measured with bench/iterate.py on the trained stand-in):

- stronger: from past the last result (its difference from the photo ×1.3: its strokes
  amplified), a few full-size steps aimed somewhat past the new strength;
- weaker: from four fifths of the way from the photo to the last result, a few steps;
- upscale: from the last result enlarged, a few steps.

Its ``parameters`` name their parent (its job id and a hash of its parameters), and the parent's
own parent in turn, so ``nst info`` shows the chain.

    step = plan(last_result, photo, new_options, "balanced", parent=(8.0, 512))
    job = Job(step.photo, (artwork,), step.options, start=step.start)
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from nst_engine.errors import ImageError
from nst_engine.images import decode_image, read_parameters, resize
from nst_engine.options import (
    DEFAULT_STRENGTH,
    STRENGTH_DECADES_PER_STEP,
    StyleOptions,
    doublings,
)


@dataclass(frozen=True)
class Schedule:
    """A continuation's start, its full-size steps (for one strength step; a move of several
    runs them once per step) and how far it aims past the strength asked for."""

    # Where it starts on the line from the photo to the last result: 1 is the last result,
    # below 1 nearer the photo, above 1 past the last result, further from the photo (its
    # difference from the photo amplified).
    reach: float
    steps: int
    # Strength steps it aims beyond the new strength, in the direction of the move (the style
    # weight ×2.5 per step): a few steps towards a point past the target end about where a
    # fresh run's many end at the target. The picture's parameters keep the strength asked for.
    lead: float = 0.0
    # Added to `lead` per doubling of the picture's long side from 256 to 512 px (more pixels
    # move more slowly in the same steps).
    lead_per_doubling: float = 0.0
    # L-BFGS's first step as a pixel's mean move (`StyleOptions.lbfgs_first_step`); None: the
    # loss unscaled, whose first step goes to the box's corners and backtracks.
    first_step: float | None = None


# Per quality preset: balanced's chosen by sweeps at 256 and 512 px on the trained stand-in (a
# parent at strength 8, one strength step; docs/iterate.md), fast's and best's a step or two
# either side of it. bench/iterate.py measures them.
STRONGER: dict[str, Schedule] = {
    "fast": Schedule(1.3, 5, lead=0.7, lead_per_doubling=0.3),
    "balanced": Schedule(1.3, 6, lead=0.7, lead_per_doubling=0.3),
    "best": Schedule(1.3, 8, lead=0.7, lead_per_doubling=0.3),
}
# A Weaker's first L-BFGS step moves a pixel by this much on average: unscaled, L-BFGS-B's first
# step went to the box's corners and backtracked (8 evaluations of the objective for 4 steps,
# scaled 6), and scaled it landed nearer the fresh run on three of the bench's four pictures. A
# Stronger's content moved past its target with it (docs/iterate.md).
FIRST_STEP = 0.01
WEAKER: dict[str, Schedule] = {
    "fast": Schedule(0.8, 3, first_step=FIRST_STEP),
    "balanced": Schedule(0.8, 4, first_step=FIRST_STEP),
    "best": Schedule(0.8, 6, first_step=FIRST_STEP),
}
UPSCALE: dict[str, Schedule] = {
    "fast": Schedule(1.0, 3),
    "balanced": Schedule(1.0, 5),
    "best": Schedule(1.0, 8),
}
# The bot's Stronger and Weaker move the strength by this much (the style weight ×2.5 or ÷2.5):
# a step a few full-size steps can follow from the last result (docs/iterate.md).
STRENGTH_STEP = 1.0
# An upscale doubles the longest side.
UPSCALE_FACTOR = 2
# A chain longer than this keeps its newest links only: the parameters chunk stays short.
MAX_CHAIN = 16
# What a continuation takes from its parent's parameters unless it is given anew, with the kinds
# of value each may hold (a file's parameters are anybody's text).
INHERITED: dict[str, tuple[type, ...]] = {
    "quality": (str,),
    "strength": (int, float),
    "size": (int,),
    "seed": (int,),
    "preserve_colors": (bool,),
    "style_blend": (list,),
    "content_weight": (int, float),
    "style_weight": (int, float),
    "tv_weight": (int, float),
    "learning_rate": (int, float),
    "init": (str,),
    "optimizer": (str,),
    "style_scale": (int, float),
    "precision": (str,),
}


@dataclass(frozen=True)
class Parent:
    """The picture a continuation goes on from: its pixels and the parameters it carries."""

    # uint8 H×W×3 RGB.
    image: np.ndarray
    parameters: dict[str, object]

    @classmethod
    def read(cls, data: bytes) -> Parent:
        """A PNG that nst or the bot made.

        Raises:
            ImageError: One line: not a PNG, no parameters (not made by nst or the bot), or a
                picture Pillow cannot read.
        """
        if not data.startswith(b"\x89PNG"):
            raise ImageError("not a PNG; a continuation goes on from a PNG nst or the bot made")
        parameters = read_parameters(data)
        if parameters is None:
            raise ImageError("it carries no parameters (not made by nst or the bot)")
        if "frames" in parameters:
            raise ImageError("an animation's frame; a continuation goes on from a still picture")
        return cls(decode_image(data), parameters)

    def made_with(self, artworks: list[str]) -> bool:
        """Whether it was made with these artworks (`provenance.artwork_label`s). A file's are
        named by their hash, a bot's saved style by its name: those are not checked."""
        named = self.parameters.get("styles")
        hashed = isinstance(named, list) and all(str(s).startswith("sha256:") for s in named)
        return not hashed or named == artworks

    def was(self) -> tuple[float, int]:
        """Its (strength, size) for `plan`: as its parameters give them, else the default
        strength and its own longest side."""
        taken = self.inherited()
        strength, size = taken.get("strength"), taken.get("size")
        return (
            DEFAULT_STRENGTH if strength is None else float(strength),  # type: ignore[arg-type]
            max(self.image.shape[:2]) if size is None else int(size),  # type: ignore[call-overload]
        )

    def inherited(self) -> dict[str, object]:
        """The options a continuation takes from the parent (`INHERITED`), as its parameters give
        them.

        Raises:
            ValueError: One line naming a key whose value is of the wrong kind.
        """
        taken = {}
        for key, kinds in INHERITED.items():
            if key not in self.parameters:
                continue
            value = self.parameters[key]
            wrong = isinstance(value, bool) != (bool in kinds) or not isinstance(value, kinds)
            if value is not None and wrong:
                raise ValueError(f"its parameters give {key} as {value!r}, which is not allowed")
            taken[key] = value
        return taken


@dataclass(frozen=True)
class Continuation:
    """What to paint to go on from a picture: the photo (enlarged for an upscale), the options
    and the start (uint8 H×W×3)."""

    photo: np.ndarray
    options: StyleOptions
    start: np.ndarray


def plan(
    last: np.ndarray,
    photo: np.ndarray,
    options: StyleOptions,
    quality: str,
    *,
    parent: tuple[float, int],
) -> Continuation:
    """The continuation from ``last`` (a picture made from ``photo``) to ``options`` (the
    parent's, with a new strength or size), at preset ``quality``; ``parent`` is the parent's
    (strength, size). A size above the parent's is an upscale, a lower strength a weaker one,
    a higher one a stronger one."""
    parent_strength, parent_size = parent
    if options.max_size > parent_size:
        photo = photo_for(photo, options.max_size)
        schedules = UPSCALE
    elif options.strength < parent_strength:
        schedules = WEAKER
    else:
        schedules = STRONGER
    if quality not in schedules:
        raise ValueError(f"quality must be one of {', '.join(schedules)}, not {quality}")
    schedule = schedules[quality]
    # At the parent's own strength there is no direction to go: from the last result as it is.
    moved = options.strength - parent_strength
    reach = schedule.reach if moved else 1.0
    lead = schedule.lead + schedule.lead_per_doubling * doublings(max(last.shape[:2]))
    lead = math.copysign(lead, moved) if moved else 0.0
    start = last
    if reach != 1.0:
        h, w = last.shape[:2]
        origin = resize(photo, w, h).astype(np.float32)
        reached = origin + reach * (last.astype(np.float32) - origin)
        start = np.clip(np.round(reached), 0, 255).astype(np.uint8)
    # A move of several strength steps (the Edit form, the CLI) runs the steps of one per step,
    # never more than a fresh run's.
    moves = max(1, math.ceil(abs(moved) / STRENGTH_STEP - 1e-9))
    steps = min(schedule.steps * moves, options.steps)
    options = replace(
        options,
        steps=steps,
        coarse_fraction=0.0,
        levels=1,
        start_noise=0.0,
        lbfgs_first_step=schedule.first_step,
        style_emphasis=options.style_emphasis * 10 ** (lead * STRENGTH_DECADES_PER_STEP),
    )
    return Continuation(photo, options, start)


def upscaled_size(long_side: int, cap: int) -> int | None:
    """The longest side of an upscale of a picture whose longest side is ``long_side``: twice
    it, at most ``cap``; None when the picture is at the cap already (nothing to offer)."""
    size = min(cap, long_side * UPSCALE_FACTOR)
    return size if size > long_side else None


def photo_for(photo: np.ndarray, max_size: int) -> np.ndarray:
    """The photo, enlarged (Lanczos) when its longest side is below ``max_size``: the engine
    never enlarges its inputs, and an upscale must come out at the size asked for."""
    height, width = photo.shape[:2]
    if max(height, width) >= max_size:
        return photo
    scale = max_size / max(height, width)
    return resize(photo, max(1, round(width * scale)), max(1, round(height * scale)))


def parameters_hash(parameters: Mapping[str, object]) -> str:
    """A short hash of a picture's parameters (their JSON with sorted keys): names how it was
    made, beside its job id."""
    text = json.dumps(dict(parameters), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parent_link(parameters: Mapping[str, object], job_id: str | None) -> dict[str, object]:
    """What a continuation's parameters say of the picture it went on from: its job id (None
    for a file the CLI was given), the hash of its parameters, and its own parent, if any."""
    links = [{"job": job_id, "parameters": parameters_hash(parameters)}, *chain(parameters)]
    return _linked(links[:MAX_CHAIN])


def chain(parameters: Mapping[str, object]) -> list[dict[str, object]]:
    """The parents a picture's parameters name, nearest first (empty for a fresh picture)."""
    links = []
    link = parameters.get("parent")
    while isinstance(link, dict) and len(links) < MAX_CHAIN:
        links.append({"job": link.get("job"), "parameters": link.get("parameters")})
        link = link.get("parent")
    return links


def _linked(links: list[dict[str, object]]) -> dict[str, object]:
    """Nearest-first links nested as parameters hold them: each with its parent inside."""
    nested: dict[str, object] | None = None
    for link in reversed(links):
        nested = link if nested is None else {**link, "parent": nested}
    assert nested is not None
    return nested
