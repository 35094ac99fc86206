"""Stylizing a clip without flicker (Ruder, Dosovitskiy and Brox, 2016, simplified).

Stylizing each frame on its own makes the result flicker: every frame settles into a different
local minimum. Here the first frame runs the preset in full; every later frame starts from the
previous stylized frame warped along the optical flow between the two input frames, and a
temporal loss keeps it close to that warped frame wherever the flow can be trusted (where the
forward and backward flows agree and the pixel stays in the picture). A later frame starts
close to its answer, so it needs far fewer steps (`DEFAULT_LATER_FRACTION`, chosen with
`bench/animation.py`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from nst_engine.images import output_size, resize
from nst_engine.model import VGG19Features
from nst_engine.options import Losses, Progress, StyleOptions
from nst_engine.transfer import ProgressCallback, StopCheck, TemporalTerm, load_model, stylize

log = logging.getLogger(__name__)

# Weight of the temporal term: the sum over trusted pixels of the squared difference from the
# warped previous frame (pixels in [0, 1]). Chosen with bench/animation.py (see the README).
DEFAULT_TEMPORAL_WEIGHT = 1e5
# A later frame runs this fraction of the preset's steps, all at full size with Adam (the
# preset's first frame spends most of its steps at coarse levels, which a warm start does not
# need). Chosen with bench/animation.py: see the README's "Animated pictures".
DEFAULT_LATER_FRACTION = 0.1
# Forward-backward consistency (Ruder et al.'s thresholds, flows in pixels).
_CONSISTENCY_RELATIVE = 0.01
_CONSISTENCY_ABSOLUTE = 0.5
_BOUNDARY_RELATIVE = 0.01
_BOUNDARY_ABSOLUTE = 0.002


@dataclass(frozen=True)
class AnimationResult:
    """The stylized frames of a clip and how they were made (durations stay with the caller)."""

    # uint8 H×W×3 RGB, one per input frame (fewer when cancelled: the frames done, the one in
    # progress included as it stood).
    frames: tuple[np.ndarray, ...] = field(repr=False)
    # Steps run for each frame.
    steps: tuple[int, ...]
    # Wall time of each frame in seconds (its optical flow included).
    seconds: tuple[float, ...]
    # Losses after each frame's last step (weighted; `temporal` is 0 for the first frame).
    losses: tuple[Losses, ...] = field(repr=False)
    # Share of each later frame's pixels under the temporal loss (1.0 for the first frame).
    trusted: tuple[float, ...] = field(repr=False)
    # True when `should_stop` ended the clip early.
    cancelled: bool = False
    # Which weights made it: "imagenet", a file name, or "random" (not a real style transfer).
    weights: str = "imagenet"
    # The temporal weight used, and whether later frames started from the warped previous one.
    temporal_weight: float = DEFAULT_TEMPORAL_WEIGHT
    warm_start: bool = True

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds)

    @property
    def is_real_style_transfer(self) -> bool:
        return self.weights != "random"


def later_steps_for(options: StyleOptions, fraction: float = DEFAULT_LATER_FRACTION) -> int:
    """Steps for a frame after the first: ``fraction`` of the preset's, at least 5."""
    return max(5, min(options.steps, round(options.steps * fraction)))


def planned_steps(frames: int, options: StyleOptions, later_steps: int | None = None) -> int:
    """All the steps a clip of ``frames`` frames will run (what progress counts to)."""
    later = later_steps_for(options) if later_steps is None else later_steps
    return options.steps + (frames - 1) * later


def stylize_frames(
    frames: Sequence[np.ndarray],
    style: np.ndarray | Sequence[np.ndarray],
    options: StyleOptions | None = None,
    *,
    model: VGG19Features | None = None,
    temporal_weight: float = DEFAULT_TEMPORAL_WEIGHT,
    later_steps: int | None = None,
    warm_start: bool = True,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> AnimationResult:
    """Repaint every frame of a clip in the style of ``style``, without flicker.

    Args:
        frames: uint8 H×W×3 RGB arrays in [0, 255], all of one size.
        style: One artwork or several to blend (uint8 H×W×3), as for `stylize`.
        options: The first frame's options (a preset); later frames run ``later_steps`` of
            Adam at full size from the warped previous frame.
        temporal_weight: Weight of the temporal term; 0 turns it off.
        later_steps: Steps for each later frame (default: `later_steps_for(options)`).
        warm_start: Start a later frame from the warped previous result. With
            ``warm_start=False`` and ``temporal_weight=0`` every frame is stylized on its own
            with the full preset (frame by frame, for comparison).
        on_progress: Called after every step with a `Progress` counting the clip's steps in
            all, with ``frame``/``frames`` set and ``remaining`` estimated for the whole clip.
        should_stop: Checked before every step; True ends the clip with the frames so far.

    Returns:
        An `AnimationResult` whose frames are uint8 H×W×3 in [0, 255], of the size `stylize`
        gives for the first frame (longest side at most ``options.max_size``).
    """
    if not frames:
        raise ValueError("a clip needs at least one frame")
    if temporal_weight < 0 or not np.isfinite(temporal_weight):
        raise ValueError(f"temporal_weight must be a finite number ≥ 0, not {temporal_weight}")
    if later_steps is not None and not 1 <= later_steps <= 10_000:
        raise ValueError(f"later_steps must be between 1 and 10000, not {later_steps}")
    shape = frames[0].shape
    if any(f.shape != shape for f in frames):
        raise ValueError("every frame must have the size of the first")
    options = options or StyleOptions()
    model = model or load_model()
    independent = not warm_start and temporal_weight == 0
    later = options.steps if independent else later_steps or later_steps_for(options)
    later_options = (
        options
        if independent
        # The warm start replaces the photo plus noise; a warm start needs no coarse levels.
        else options.replace(steps=later, coarse_fraction=0.0, start_noise=0.0)
    )
    # Work at the engine's size from the start, so that the flow, the warped start and the
    # temporal target all have the output's size.
    out_w, out_h = output_size(shape[1], shape[0], options.max_size)
    work = [resize(f, out_w, out_h) for f in frames]
    total = options.steps + (len(work) - 1) * later
    clip_started = time.perf_counter()
    done_steps = 0
    results: list[np.ndarray] = []
    steps: list[int] = []
    seconds: list[float] = []
    losses: list[Losses] = []
    trusted: list[float] = []
    cancelled = False
    weights_label = model.label

    for index, frame in enumerate(work):
        started = time.perf_counter()
        init = temporal = None
        if index and not independent:
            backward = optical_flow(frame, work[index - 1])
            forward = optical_flow(work[index - 1], frame)
            mask = consistency_mask(backward, forward)
            previous = results[-1].astype(np.float32) / 255.0
            warped = warp(previous, backward)
            trusted.append(float(mask.mean()))
            if warm_start:
                # Where the flow cannot be trusted (newly visible pixels), start from the frame.
                m = mask[..., None]
                init = m * warped + (1 - m) * frame.astype(np.float32) / 255.0
            if temporal_weight:
                temporal = TemporalTerm(warped, mask, temporal_weight)
        else:
            trusted.append(1.0)
        frame_options = options if index == 0 else later_options
        planned = frame_options.steps
        before = done_steps

        def report(progress: Progress, index=index, before=before, planned=planned) -> None:
            if on_progress is None:
                return
            elapsed = time.perf_counter() - clip_started
            done = before + progress.step
            on_progress(
                replace(
                    progress,
                    step=done,
                    total=total,
                    elapsed=elapsed,
                    frame=index + 1,
                    frames=len(work),
                    remaining=_remaining(
                        seconds, progress, planned, len(work) - index - 1, later / options.steps
                    ),
                )
            )

        result = stylize(
            frame,
            style,
            frame_options,
            model=model,
            on_progress=report,
            should_stop=should_stop,
            init_image=init,
            temporal=temporal,
        )
        done_steps += result.steps
        results.append(result.image)
        steps.append(result.steps)
        seconds.append(time.perf_counter() - started)
        losses.append(result.losses)
        weights_label = result.weights
        if result.cancelled:
            cancelled = True
            break
    log.info(
        "stylized %d frames at %dx%d in %.1fs (first %.1fs, later %.2fs each, temporal %g)",
        len(results),
        out_w,
        out_h,
        time.perf_counter() - clip_started,
        seconds[0],
        float(np.mean(seconds[1:])) if len(seconds) > 1 else 0.0,
        temporal_weight,
    )
    return AnimationResult(
        frames=tuple(results),
        steps=tuple(steps),
        seconds=tuple(seconds),
        losses=tuple(losses),
        trusted=tuple(trusted),
        cancelled=cancelled,
        weights=weights_label,
        temporal_weight=temporal_weight,
        warm_start=warm_start,
    )


def _remaining(
    seconds: list[float], progress: Progress, planned: int, frames_left: int, share: float
) -> float | None:
    """Seconds left in the clip: this frame at its own pace, later frames at the pace of the
    later frames so far (or of this one, when it is the first later frame). During the first
    frame a later one is guessed at twice its share of the steps (its steps are all at full
    size, most of the first frame's are coarse), until one has run."""
    if progress.step <= 0:
        return None
    this_frame = progress.elapsed / progress.step * planned
    left_here = this_frame - progress.elapsed
    later = float(np.mean(seconds[1:])) if len(seconds) > 1 else None
    if later is None:
        # During the first frame the later ones are unknown: guess from this frame's pace.
        later = this_frame if len(seconds) else this_frame * min(1.0, 2 * share)
    return max(0.0, left_here) + frames_left * later


def optical_flow(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Dense flow from ``source`` to ``target`` (uint8 H×W×3): float32 H×W×2 in pixels, such
    that ``source`` at (x, y) shows what ``target`` shows at (x + u, y + v). OpenCV's DIS."""
    import cv2

    gray = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in (source, target)]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(gray[0], gray[1], None)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` (float32 H×W×C) sampled at (x + u, y + v) for every pixel, bilinearly; the
    border is repeated where the flow points outside (`consistency_mask` excludes those)."""
    import cv2

    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(
        np.ascontiguousarray(image, dtype=np.float32),
        xs + flow[..., 0],
        ys + flow[..., 1],
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def consistency_mask(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Which pixels of the later frame the previous one can vouch for: float32 H×W, 1 or 0.

    ``backward`` is the flow from the later frame to the previous one, ``forward`` the other
    way. A pixel is trusted when following one and then the other comes back to it (else it
    was hidden in the previous frame), it is not on a motion boundary, and it came from
    inside the previous frame.
    """
    h, w = backward.shape[:2]
    forward_there = warp(forward, backward)
    round_trip = np.sum((backward + forward_there) ** 2, axis=-1)
    magnitude = np.sum(backward**2, axis=-1) + np.sum(forward_there**2, axis=-1)
    consistent = round_trip <= _CONSISTENCY_RELATIVE * magnitude + _CONSISTENCY_ABSOLUTE
    du_y, du_x = np.gradient(backward[..., 0])
    dv_y, dv_x = np.gradient(backward[..., 1])
    gradient = du_x**2 + du_y**2 + dv_x**2 + dv_y**2
    boundary = gradient > _BOUNDARY_RELATIVE * np.sum(backward**2, axis=-1) + _BOUNDARY_ABSOLUTE
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    x_from, y_from = xs + backward[..., 0], ys + backward[..., 1]
    inside = (x_from >= 0) & (x_from <= w - 1) & (y_from >= 0) & (y_from <= h - 1)
    return (consistent & ~boundary & inside).astype(np.float32)


__all__ = [
    "DEFAULT_LATER_FRACTION",
    "DEFAULT_TEMPORAL_WEIGHT",
    "AnimationResult",
    "consistency_mask",
    "later_steps_for",
    "optical_flow",
    "planned_steps",
    "stylize_frames",
    "warp",
]
