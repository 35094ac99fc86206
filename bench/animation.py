"""Flicker and cost per frame of an animation: ours against frame-by-frame stylization.

    python -m bench.animation [--frames 10] [--size 80] [--quality balanced]
        [--temporal-weights 2e4] [--later-fractions 0.1] [--weights random]

The clip is a textured picture panned 2 px to the left per frame, so the true motion is
known: flicker is the mean absolute difference (0-255) between consecutive output frames
after undoing that shift. The style distance is `nst_engine.distances.style_distance` (the one
measure of bench.compare and the tests) of the middle frame to the artwork; it means something
only on trained features (`--weights hed`). Costs are wall seconds per frame after a warm-up
clip, so that tracing the step functions is not counted. The last row is the defaults on the
clip as a member's MP4: decoded and written back in the sandbox (nst_engine.clips.sandbox).
"""

from __future__ import annotations

import argparse
import time
from fractions import Fraction

import numpy as np

from bench.step_time import device_name
from nst_engine.model import quiet_tensorflow

SHIFT = 2


def panning_clip(frames: int, width: int, height: int, seed: int = 0) -> list[np.ndarray]:
    """``frames`` uint8 H×W×3 views of one textured picture, each 2 px further to the right
    (so the picture moves left): frame t at x shows frame t-1 at x + 2."""
    rng = np.random.default_rng(seed)
    big_w = width + SHIFT * frames
    y, x = np.mgrid[0:height, 0:big_w].astype(np.float32)
    picture = np.zeros((height, big_w, 3), np.float32)
    for _ in range(12):
        fx, fy, phase = rng.uniform(0.02, 0.25), rng.uniform(0.02, 0.25), rng.uniform(0, 6.3)
        colour = rng.uniform(-1, 1, 3)
        picture += np.sin(x * fx + y * fy + phase)[..., None] * colour
    for _ in range(6):
        cx, cy, r = rng.uniform(0, big_w), rng.uniform(0, height), rng.uniform(5, 18)
        disc = ((x - cx) ** 2 + (y - cy) ** 2) < r * r
        picture[disc] = rng.uniform(-3, 3, 3)
    picture = (picture - picture.min()) / (picture.max() - picture.min()) * 255
    return [picture[:, SHIFT * t : SHIFT * t + width].astype(np.uint8) for t in range(frames)]


def artwork(size: int = 96) -> np.ndarray:
    """Bold diagonal stripes and rings: a style that is easy to see."""
    y, x = np.mgrid[0:size, 0:size]
    stripes = ((x + y) // 6) % 2 == 0
    rings = (np.hypot(x - size / 2, y - size / 2) // 8) % 2 == 0
    image = np.where(stripes[..., None], [230, 60, 30], [20, 50, 190])
    image = np.where((rings & ~stripes)[..., None], [250, 220, 40], image)
    return image.astype(np.uint8)


def flicker(frames: tuple[np.ndarray, ...] | list[np.ndarray]) -> float:
    """Mean |out_t(x) - out_{t-1}(x + shift)| over the overlap, in 0-255 units."""
    scale = frames[0].shape[1] / _input_width
    shift = round(SHIFT * scale)
    diffs = [
        np.abs(b[:, : b.shape[1] - shift].astype(np.float32) - a[:, shift:]).mean()
        for a, b in zip(frames, frames[1:])
    ]
    return float(np.mean(diffs))


_input_width = 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--size", type=int, default=80, help="width of the clip (height 3/4)")
    parser.add_argument("--quality", default="balanced")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--temporal-weights", type=float, nargs="+", default=None)
    parser.add_argument("--later-fractions", type=float, nargs="+", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    quiet_tensorflow()
    from nst_engine import load_model
    from nst_engine.animation import (
        DEFAULT_LATER_FRACTION,
        DEFAULT_TEMPORAL_WEIGHT,
        later_steps_for,
        stylize_frames,
    )
    from nst_engine.distances import style_distance
    from nst_engine.options import options_for_quality

    global _input_width
    width, height = args.size, args.size * 3 // 4
    _input_width = width
    clip = panning_clip(args.frames, width, height, args.seed)
    style = artwork()
    model = load_model(args.weights)
    options = options_for_quality(args.quality, precision=args.precision, max_size=width)
    weights = args.temporal_weights or [DEFAULT_TEMPORAL_WEIGHT]
    fractions = args.later_fractions or [DEFAULT_LATER_FRACTION]

    # Warm-up: trace every level's step function (with and without the temporal term).
    stylize_frames(clip[:2], style, options, model=model)
    stylize_frames(clip[:1], style, options, model=model, temporal_weight=0, warm_start=False)

    middle = args.frames // 2
    print(f"machine: {device_name()}")
    print(
        f"clip: {args.frames} frames of {width}×{height}, panning {SHIFT} px per frame; "
        f"preset {args.quality} ({options.steps} steps), precision {args.precision}, "
        f"weights {model.label}"
    )
    started = time.perf_counter()
    baseline = stylize_frames(
        clip, style, options, model=model, temporal_weight=0, warm_start=False
    )
    base_flicker = flicker(baseline.frames)
    base_style = style_distance(model, baseline.frames[middle], style)
    base_first = baseline.seconds[0]
    print(f"(frame-by-frame took {time.perf_counter() - started:.1f} s)")
    header = (
        "| run | temporal weight | later steps | flicker | vs frame-by-frame | "
        "middle frame's style distance | vs frame-by-frame | first frame s | "
        "later frame s | later / first |"
    )
    print(header)
    print("|" + "---|" * 10)
    print(
        f"| frame by frame | 0 | {options.steps} | {base_flicker:.2f} | 1.00 | "
        f"{base_style:.4g} | 1.00 | {base_first:.2f} | {np.mean(baseline.seconds[1:]):.2f} | "
        f"{np.mean(baseline.seconds[1:]) / base_first:.2f} |"
    )
    for fraction in fractions:
        later = later_steps_for(options, fraction)
        for weight in weights:
            ours = stylize_frames(
                clip, style, options, model=model, temporal_weight=weight, later_steps=later
            )
            ours_flicker = flicker(ours.frames)
            ours_style = style_distance(model, ours.frames[middle], style)
            later_s = float(np.mean(ours.seconds[1:]))
            print(
                f"| ours | {weight:g} | {later} | {ours_flicker:.2f} | "
                f"{ours_flicker / base_flicker:.2f} | {ours_style:.4g} | "
                f"{ours_style / base_style:.2f} | {ours.seconds[0]:.2f} | {later_s:.2f} | "
                f"{later_s / ours.seconds[0]:.2f} |",
                flush=True,
            )
    mp4_row(clip, style, options, model, baseline, base_style, middle)


def mp4_row(clip, style, options, model, baseline, base_style: float, middle: int) -> None:
    """The defaults on the clip as a member's video: encoded to MP4, decoded in the sandbox,
    painted, written back to MP4 in the sandbox and decoded again; flicker against
    frame-by-frame's frames through the same MP4 round trip (the codec's own noise in both).
    The seconds per frame include the sandbox's decode and encode."""
    from nst_engine.animation import stylize_frames
    from nst_engine.clips import Clip, decode_clip, encode_clip
    from nst_engine.distances import style_distance

    frames = len(clip)
    source = Clip(tuple(clip), (83,) * frames, None, "mp4", Fraction(12))
    video = encode_clip(source, "mp4", quality=100)
    started = time.perf_counter()
    decoded = decode_clip(video, max_frames=frames)
    ours = stylize_frames(list(decoded.frames), style, options, model=model)
    result = encode_clip(decoded.with_frames(ours.frames), "mp4")
    per_frame = (time.perf_counter() - started) / frames
    back = decode_clip(result, max_frames=frames).frames
    base_back = decode_clip(
        encode_clip(decoded.with_frames(baseline.frames), "mp4"), max_frames=frames
    ).frames
    ours_flicker, base_flicker = flicker(back), flicker(base_back)
    ours_style = style_distance(model, back[middle], style)
    print(
        f"| ours, MP4 in and out (frame by frame through MP4: {base_flicker:.2f}) | "
        f"default | default | {ours_flicker:.2f} | {ours_flicker / base_flicker:.2f} | "
        f"{ours_style:.4g} | {ours_style / base_style:.2f} | - | {per_frame:.2f} "
        "(all frames, sandbox included) | - |",
        flush=True,
    )


if __name__ == "__main__":
    main()
