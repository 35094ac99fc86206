"""Iterating on a picture against painting it afresh: a first picture, then Stronger, Weaker and
Upscale, each as a continuation (`nst_engine.continuation.plan`, what the bot's buttons and
`nst stylize --from` run) and as a fresh run with the same settings.

    python -m bench.iterate [--sizes 256 512] [--precisions float32 auto] [--pairs rocket-strokes]
                            [--strength 8] [--runs stronger weaker upscale] [--figure PATH]

Stronger and Weaker move the strength one step (`continuation.STRENGTH_STEP`), as the bot's
buttons do. For each it prints the engine seconds of both (the model loaded and traced once,
before), and the continuation's style and content distances (`nst_engine.distances`) as
multiples of the fresh run's. Targets: a Stronger or Weaker continuation at most 0.35× the fresh
run's time, its style distance within 1.05× of the fresh run's either way (as strong as asked, no
more, no less) and its content distance at most 1.05×; an Upscale at most 0.5× a fresh run at the
doubled size with its style distance at most 1.05×. Weights: the trained stand-in by default
(`--weights hed`), as every quality figure here; random weights would make the distances
meaningless. ``--strength`` is the first picture's: 8 on the stand-in, where the default strength
(5) leaves the photo almost untouched and 8 shows the style about as 5 does on ImageNet's VGG19
(docs/performance.md, the stand-in's balance); 5 on other weights.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from bench.compare import machine, sheet
from nst_engine.model import quiet_tensorflow

# Per run: at most this × the fresh run's time; style distance at most this × the fresh run's,
# and, where the run changes the strength, at least its inverse (as strong as asked); content
# distance at most this × (None: no target).
TARGETS = {
    "stronger": (0.35, 1.05, True, 1.05),
    "weaker": (0.35, 1.05, True, 1.05),
    "upscale": (0.5, 1.05, False, None),
}
# The first picture's strength on the stand-in (see above).
STAND_IN_STRENGTH = 8.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--precisions", nargs="+", default=["float32", "auto"])
    parser.add_argument("--pairs", nargs="+", default=["rocket-strokes"], help="bench.pairs names")
    parser.add_argument("--quality", default="balanced")
    parser.add_argument("--weights", default="hed", help="hed (trained stand-in), or a path")
    parser.add_argument(
        "--strength", type=float, default=None, help="the first picture's (8 on hed, else 5)"
    )
    parser.add_argument("--runs", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument(
        "--figure",
        type=Path,
        help="the first pair's first picture, each fresh run and continuation",
    )
    args = parser.parse_args()
    quiet_tensorflow()
    from bench.pairs import pair
    from nst_engine import load_model
    from nst_engine.model import resolve_precision
    from nst_engine.options import DEFAULT_STRENGTH
    from nst_engine.weights import weights_label

    model = load_model(args.weights)
    if args.strength is None:
        args.strength = STAND_IN_STRENGTH if args.weights == "hed" else DEFAULT_STRENGTH
    print(f"weights: {weights_label(args.weights)}; {machine()}")
    print(f"first picture: {args.quality}, strength {args.strength:g}")
    print(
        f"{'pair':<18} {'size':>5} {'precision':>9} {'run':<9} {'fresh s':>8} {'cont. s':>8} "
        f"{'× time':>7} {'× style':>8} {'× content':>9}  targets"
    )
    failed = drawn = False
    for name in args.pairs:
        photo, artwork = pair(name)
        for size in args.sizes:
            for precision in dict.fromkeys(resolve_precision(p) for p in args.precisions):
                first, rows = _iterate(
                    model, photo, artwork, size, precision, args.quality, args.strength, args.runs
                )
                if args.figure and not drawn:
                    tiles = _tiles(first, args.strength, rows)
                    sheet(tiles, weights_label(args.weights), args.figure)
                    drawn = True
                for row in rows:
                    met = _meets(row)
                    failed |= not met
                    print(
                        f"{name:<18} {size:>5} {precision:>9} {row['run']:<9} "
                        f"{row['fresh_s']:>8.1f} {row['cont_s']:>8.1f} {row['time']:>6.2f}× "
                        f"{row['style']:>7.3f}× {row['content']:>8.3f}×  "
                        f"{'meets' if met else 'misses'}",
                        flush=True,
                    )
    sys.exit(1 if failed else 0)


def _iterate(
    model,
    photo,
    artwork,
    size: int,
    precision: str,
    quality: str,
    strength: float,
    runs: list[str],
) -> tuple:
    """The first picture, and each continuation in ``runs`` against its fresh run."""
    from nst_engine import stylize
    from nst_engine.continuation import STRENGTH_STEP, plan, upscaled_size
    from nst_engine.distances import content_distance, style_distance
    from nst_engine.options import options_for_quality

    first_options = options_for_quality(
        quality, precision=precision, max_size=size, strength=strength
    )

    def paint(painted_photo, options, start=None):
        return stylize(painted_photo, artwork, options, model=model, init_image=start)

    paint(photo, replace(first_options, steps=2))  # traces and Gram targets, outside the figures
    first = paint(photo, first_options)
    parent = (first_options.strength, size)
    rows = []
    wanted = {
        "stronger": replace(first_options, strength=first_options.strength + STRENGTH_STEP),
        "weaker": replace(first_options, strength=first_options.strength - STRENGTH_STEP),
        "upscale": replace(first_options, max_size=upscaled_size(max(first.image.shape[:2]), 4096)),
    }
    for run in runs:
        options = wanted[run]
        step = plan(first.image, photo, options, quality, parent=parent)
        if run == "upscale":
            paint(step.photo, replace(options, steps=2, coarse_fraction=0.0))  # its size's traces
        fresh = paint(step.photo, options)
        went_on = paint(step.photo, step.options, step.start)
        distances = [
            (style_distance(model, r.image, artwork), content_distance(model, r.image, photo))
            for r in (fresh, went_on)
        ]
        rows.append(
            {
                "run": run,
                "fresh_s": fresh.seconds,
                "cont_s": went_on.seconds,
                "time": went_on.seconds / fresh.seconds,
                "style": distances[1][0] / distances[0][0],
                "content": distances[1][1] / distances[0][1],
                "strength": options.strength,
                "size": max(fresh.image.shape[:2]),
                "images": (fresh.image, went_on.image),
            }
        )
    return first.image, rows


def _meets(row: dict) -> bool:
    time, style, either_way, content = TARGETS[row["run"]]
    lowest = 1 / style if either_way else 0.0
    return (
        row["time"] <= time
        and lowest <= row["style"] <= style
        and (content is None or row["content"] <= content)
    )


def _tiles(first, strength: float, rows: list[dict]) -> list[tuple]:
    """`bench.compare.sheet`'s tiles: the first picture, then each run's fresh picture and
    continuation (an upscale's shown at the first picture's size)."""
    tiles = [(f"first picture, strength {strength:g}", first, "")]
    for row in rows:
        fresh, went_on = row["images"]
        what = f"{row['run']}, strength {row['strength']:g}, {row['size']} px"
        tiles.append((f"fresh: {what}", fresh, f"{row['fresh_s']:.0f} s"))
        # "x", not "×": Pillow's bundled font has no "×".
        note = f"{row['cont_s']:.0f} s, style {row['style']:.2f}x, content {row['content']:.2f}x"
        tiles.append((f"went on: {row['run']}", went_on, note))
    return tiles


if __name__ == "__main__":
    main()
