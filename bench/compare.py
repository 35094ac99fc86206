"""The plain tutorial loop and each quality preset on the same picture, side by side.

    python -m bench.compare [--size 256] [--tutorial-steps 300]

Each run is its own process (so wall time includes start-up, as a member would wait) on the
same seeded VGG19 weights file. The table ends with one independent measure of quality for all:
the style distance (mean squared Gram difference over the style layers, against the artwork)
and the content distance (mean squared block5_conv2 difference, against the photo), both
computed in float32 by this script, not by the runs themselves.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nst_engine.model import quiet_tensorflow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--tutorial-steps", type=int, default=300)
    parser.add_argument("--presets", nargs="*", default=["fast", "balanced", "best"])
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="NAME:FIELD=VALUE,...",
        help="also run a StyleOptions variant, e.g. try1:steps=200,precision=bfloat16",
    )
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        _child(args)
        return
    work = Path(tempfile.mkdtemp(prefix="nst-bench-"))
    _prepare(work, args.size)
    rows = []
    configs = dict(c.split(":", 1) for c in args.config)
    for name in ["tutorial", *args.presets, *configs]:
        started = time.perf_counter()
        cmd = [
            sys.executable,
            "-m",
            "bench.compare",
            "--run",
            name,
            "--workdir",
            str(work),
            "--size",
            str(args.size),
            "--tutorial-steps",
            str(args.tutorial_steps),
            *(["--config", f"{name}:{configs[name]}"] if name in configs else []),
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        report = json.loads(out.strip().splitlines()[-1])
        report["wall"] = time.perf_counter() - started
        rows.append(report)
        print(f"… {name} done in {report['wall']:.1f} s", file=sys.stderr)
    style_d, content_d = _distances(work, [r["name"] for r in rows])
    print(f"size {args.size} px; {_machine()}")
    print(
        f"{'run':<10} {'steps':>6} {'wall s':>8} {'ms/step':>8} {'peak RSS':>9} "
        f"{'style dist':>11} {'content dist':>13}"
    )
    for r in rows:
        print(
            f"{r['name']:<10} {r['steps']:>6} {r['wall']:>8.1f} {r['ms_per_step']:>8.0f} "
            f"{r['rss_mb']:>7.0f}MB {style_d[r['name']]:>11.4g} {content_d[r['name']]:>13.4g}"
        )


def _prepare(work: Path, size: int) -> None:
    from nst_engine.weights import WEIGHTS_FILE, random_weights, save_legacy_h5
    from tests.support import gradient_image, stripes_image

    save_legacy_h5(random_weights(0), work / WEIGHTS_FILE)
    np.save(work / "content.npy", gradient_image(size, size * 3 // 4, seed=3))
    np.save(work / "style.npy", stripes_image(size, size, period=max(4, size // 24)))


def _child(args: argparse.Namespace) -> None:
    quiet_tensorflow()
    from nst_engine import load_model, stylize
    from nst_engine.options import StyleOptions, options_for_quality
    from nst_engine.weights import WEIGHTS_FILE

    work = Path(args.workdir)
    content, style = np.load(work / "content.npy"), np.load(work / "style.npy")
    model = load_model(str(work / WEIGHTS_FILE))
    t0 = time.perf_counter()
    if args.run == "tutorial":
        from bench.tutorial import tutorial_loop

        image = tutorial_loop(
            model._vgg,
            content[None] / np.float32(255),
            style[None] / np.float32(255),
            args.tutorial_steps,
        )
        image = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
        steps = args.tutorial_steps
    else:
        if args.config:
            fields = dict(kv.split("=", 1) for kv in args.config[0].split(":", 1)[1].split(","))
            defaults = StyleOptions()
            changes = {k: _parse(getattr(defaults, k), v) for k, v in fields.items()}
            options = StyleOptions(max_size=args.size, **changes)
        else:
            options = options_for_quality(args.run, max_size=args.size)
        result = stylize(content, style, options, model=model)
        image, steps = result.image, result.steps
    seconds = time.perf_counter() - t0
    np.save(work / f"out-{args.run}.npy", image)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "name": args.run,
                "steps": steps,
                "ms_per_step": seconds / steps * 1000,
                "rss_mb": rss_mb,
            }
        )
    )


def _parse(default: object, text: str) -> object:
    """A --config value, typed like the StyleOptions field's default (None: a float)."""
    if default is None:
        return float(text)
    return type(default)(text)


def _distances(work: Path, names: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    quiet_tensorflow()
    import tensorflow as tf

    from nst_engine import load_model
    from nst_engine.losses import gram_matrix
    from nst_engine.options import CONTENT_LAYERS, STYLE_LAYERS
    from nst_engine.weights import WEIGHTS_FILE

    model = load_model(str(work / WEIGHTS_FILE))
    extractor = model.extractor(STYLE_LAYERS + CONTENT_LAYERS)
    n = len(STYLE_LAYERS)

    def features(image: np.ndarray):
        return extractor(tf.constant(image[None].astype(np.float32) / 255))

    style = features(np.load(work / "style.npy"))
    content = features(np.load(work / "content.npy"))
    style_d, content_d = {}, {}
    for name in names:
        out = features(np.load(work / f"out-{name}.npy"))
        style_d[name] = float(
            np.mean(
                [
                    tf.reduce_mean(tf.square(gram_matrix(a) - gram_matrix(b)))
                    for a, b in zip(out[:n], style[:n])
                ]
            )
        )
        content_d[name] = float(tf.reduce_mean(tf.square(out[n] - content[n])))
    return style_d, content_d


def _machine() -> str:
    from bench.step_time import _cpu_name

    return _cpu_name()


if __name__ == "__main__":
    main()
