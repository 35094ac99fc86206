"""The plain tutorial loop and each quality preset on the same picture, side by side.

    python -m bench.compare [--size 256] [--precisions float32 auto] [--plot FILE.png]

Each run is its own process (so wall time includes start-up, as a member would wait) on the
same seeded VGG19 weights file (the ImageNet file cannot be fetched on the machines this was
built on; speed does not depend on the values). Every preset runs once per precision asked
for, with that precision's preset (`options_for_quality(..., precision=...)`). The table ends
with one independent measure of quality for all: the style distance (mean squared Gram
difference over the five style layers, against the artwork) and the content distance (mean
squared block5_conv2 difference, against the photo), both computed in float32 by this script,
not by the runs themselves. `--config NAME:field=value,...` adds a variant (`quality=NAME`
starts it from a preset, in float32 unless it names a precision).
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

TUTORIAL = "tutorial"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--tutorial-steps", type=int, default=300)
    parser.add_argument("--presets", nargs="*", default=["fast", "balanced", "best"])
    parser.add_argument(
        "--precisions",
        nargs="*",
        default=["float32", "auto"],
        help="run each preset in these precisions (auto: what this machine picks)",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="NAME:FIELD=VALUE,...",
        help="also run a StyleOptions variant, e.g. try1:quality=balanced,final_learning_rate=0.01",
    )
    parser.add_argument("--plot", type=Path, help="draw style distance against wall time here")
    parser.add_argument(
        "--plot-time",
        choices=("wall", "cpu"),
        default="wall",
        help="the plot's time axis: wall seconds, or CPU seconds (steadier on a shared machine)",
    )
    parser.add_argument("--json", type=Path, help="also write the rows here, as JSON")
    parser.add_argument(
        "--from-json", type=Path, help="print (and --plot) the rows of an earlier --json, no runs"
    )
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        _child(args)
        return
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        rows, header = saved["rows"], saved["header"]
    else:
        rows, header = _measure(args)
    _print(rows, header)
    if args.json and not args.from_json:
        args.json.write_text(json.dumps({"header": header, "rows": rows}, indent=1) + "\n")
    if args.plot:
        plot(rows, header, args.plot, args.plot_time)


def _measure(args: argparse.Namespace) -> tuple[list[dict], str]:
    quiet_tensorflow()
    from nst_engine.model import resolve_precision

    work = Path(tempfile.mkdtemp(prefix="nst-bench-"))
    _prepare(work, args.size)
    runs = {TUTORIAL: ""}
    for preset in args.presets:
        for precision in dict.fromkeys(resolve_precision(p) for p in args.precisions):
            runs[f"{preset}/{precision}"] = f"quality={preset},precision={precision}"
    runs.update(c.split(":", 1) for c in args.config)
    rows = []
    for name, config in runs.items():
        started = time.perf_counter()
        cpu_before = _children_cpu()
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
            *(["--config", f"{name}:{config}"] if config else []),
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        report = json.loads(out.strip().splitlines()[-1])
        report["wall"] = time.perf_counter() - started
        report["cpu"] = _children_cpu() - cpu_before
        rows.append(report)
        print(f"… {name} done in {report['wall']:.1f} s", file=sys.stderr, flush=True)
    style_d, content_d = _distances(work, [r["name"] for r in rows])
    for r in rows:
        r["style"], r["content"] = style_d[r["name"]], content_d[r["name"]]
    return rows, f"size {args.size} px; {_machine()}"


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished runs: on a machine shared with other work,
    the fairer measure of cost (the tutorial and the engine use the same threads)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _print(rows: list[dict], header: str) -> None:
    base = next(r for r in rows if r["name"] == TUTORIAL)
    print(header)
    print(
        f"{'run':<18} {'precision':>9} {'steps':>6} {'wall s':>7} {'speed-up':>8} "
        f"{'CPU s':>7} {'speed-up':>8} {'peak RSS':>9} {'style dist':>11} {'× tut':>6} "
        f"{'content dist':>12} {'× tut':>6}"
    )
    for r in rows:
        cpu = r.get("cpu", float("nan"))
        print(
            f"{r['name']:<18} {r['precision']:>9} {r['steps']:>6} {r['wall']:>7.1f} "
            f"{base['wall'] / r['wall']:>7.2f}× {cpu:>7.1f} {base.get('cpu', cpu) / cpu:>7.2f}× "
            f"{r['rss_mb']:>7.0f}MB "
            f"{r['style']:>11.4g} {r['style'] / base['style']:>6.3f} "
            f"{r['content']:>12.4g} {r['content'] / base['content']:>6.2f}",
            flush=True,
        )


def plot(rows: list[dict], header: str, path: Path, time: str = "wall") -> None:
    """Style distance against wall (or CPU) seconds, one point per run: colour by preset,
    marker by precision, the tutorial a star (matplotlib, a small PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    markers = {"float32": "o", "bfloat16": "s", "float16": "^"}
    presets = list(dict.fromkeys(r["name"].split("/")[0] for r in rows if r["name"] != TUTORIAL))
    base = _tutorial(rows)
    for r in rows:
        tutorial = r["name"] == TUTORIAL
        preset = r["name"].split("/")[0]
        ax.scatter(
            r[time],
            r["style"],
            marker="*" if tutorial else markers.get(r["precision"], "o"),
            s=160 if tutorial else 50,
            color="black" if tutorial else f"C{presets.index(preset)}",
            zorder=3,
        )
        label = r["name"] if tutorial else f"{preset} {r['precision']}"
        ax.annotate(
            f"{label} ({r['content'] / base['content']:.1f}× content)",
            (r[time], r["style"]),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=7,
        )
    ax.axhline(base["style"] * 1.01, color="grey", linestyle=":", linewidth=1)
    ax.axvline(base[time] / 3, color="grey", linestyle=":", linewidth=1)
    what = "wall time" if time == "wall" else "CPU time (user + system)"
    ax.set_xlabel(f"{what}, s, process start included")
    ax.set_ylabel("style distance (lower is closer)")
    ax.set_title(
        f"{header}\ndotted: 1.01× the tutorial's style distance, ⅓ of its time", fontsize=8
    )
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _tutorial(rows: list[dict]) -> dict:
    return next(r for r in rows if r["name"] == TUTORIAL)


def _prepare(work: Path, size: int) -> None:
    from nst_engine.weights import WEIGHTS_FILE, random_weights, save_legacy_h5
    from tests.support import gradient_image, stripes_image

    save_legacy_h5(random_weights(0), work / WEIGHTS_FILE)
    np.save(work / "content.npy", gradient_image(size, size * 3 // 4, seed=3))
    np.save(work / "style.npy", stripes_image(size, size, period=max(4, size // 24)))


def _child(args: argparse.Namespace) -> None:
    quiet_tensorflow()
    from nst_engine import load_model, stylize
    from nst_engine.model import resolve_precision
    from nst_engine.weights import WEIGHTS_FILE

    work = Path(args.workdir)
    content, style = np.load(work / "content.npy"), np.load(work / "style.npy")
    model = load_model(str(work / WEIGHTS_FILE))
    t0 = time.perf_counter()
    if args.run == TUTORIAL:
        from bench.tutorial import tutorial_loop

        image = tutorial_loop(
            model._vgg,
            content[None] / np.float32(255),
            style[None] / np.float32(255),
            args.tutorial_steps,
        )
        image = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
        steps, precision = args.tutorial_steps, "float32"
    else:
        options = _options(args.config[0].split(":", 1)[1], args.size)
        result = stylize(content, style, options, model=model)
        image, steps, precision = result.image, result.steps, resolve_precision(options.precision)
    seconds = time.perf_counter() - t0
    np.save(work / f"out-{args.run.replace('/', '-')}.npy", image)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "name": args.run,
                "precision": precision,
                "steps": steps,
                "ms_per_step": seconds / steps * 1000,
                "rss_mb": rss_mb,
            }
        )
    )


def _options(config: str, size: int):
    """The StyleOptions a ``field=value,...`` config stands for (``quality=`` picks a preset)."""
    from nst_engine.options import StyleOptions, options_for_quality

    fields = dict(kv.split("=", 1) for kv in config.split(","))
    quality = fields.pop("quality", None)
    defaults = StyleOptions()
    changes = {k: _parse(getattr(defaults, k), v) for k, v in fields.items()}
    if quality is None:
        return StyleOptions(max_size=size, **changes)
    changes.setdefault("precision", "float32")
    return options_for_quality(quality, max_size=size, **changes)


def _parse(default: object, text: str) -> object:
    """A --config value, typed like the StyleOptions field's default (None: a number or a word)."""
    if default is None:
        try:
            return float(text)
        except ValueError:
            return text
    if isinstance(default, bool):
        return text.lower() in ("1", "true", "yes")
    return type(default)(text)


def _distances(work: Path, names: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    quiet_tensorflow()
    import tensorflow as tf

    from nst_engine import load_model
    from nst_engine.losses import content_loss, gram_matrix, style_loss
    from nst_engine.options import CONTENT_LAYERS, STYLE_LAYERS
    from nst_engine.weights import WEIGHTS_FILE

    model = load_model(str(work / WEIGHTS_FILE))
    extractor = model.extractor(STYLE_LAYERS + CONTENT_LAYERS)
    n = len(STYLE_LAYERS)
    equal = [1 / n] * n

    def features(image: np.ndarray):
        return extractor(tf.constant(image[None].astype(np.float32) / 255))

    style = features(np.load(work / "style.npy"))
    grams = [gram_matrix(f) for f in style[:n]]
    content = features(np.load(work / "content.npy"))
    style_d, content_d = {}, {}
    for name in names:
        out = features(np.load(work / f"out-{name.replace('/', '-')}.npy"))
        style_d[name] = float(style_loss(out[:n], grams, equal))
        content_d[name] = float(content_loss(out[n:], content[n:]))
    return style_d, content_d


def _machine() -> str:
    from bench.step_time import _cpu_name

    return _cpu_name()


if __name__ == "__main__":
    main()
