"""The plain tutorial loop and each quality preset on the same pictures, side by side.

    python -m bench.compare [--size 256] [--pairs astronaut-ihc ...|all] [--precisions float32]
                            [--weights hed|random|PATH] [--plot FILE.png] [--pictures DIR]

Each run is its own process (so wall time includes start-up, as a member would wait) on the
same weights file. By default that is the trained stand-in (`--weights hed`: HED-VGG16 in
VGG19's shape, not ImageNet VGG19, which cannot be fetched on the machines this was built on):
quality can only be judged on trained features. `--weights random` is for speed alone (speed
does not depend on the values; its distances mean nothing). Every preset runs once per
precision asked for. Each pair (bench.pairs) ends with the one measure of quality of
`nst_engine.distances`, computed in float32 by this script, not by the runs: the style
distance (relative Gram distance, each style layer weighing the same) and the content distance
(relative block5_conv2 difference). `--config NAME:field=value,...` adds a variant
(`quality=NAME` starts it from a preset, in float32 unless it names a precision).

`--tutorial-from DIR --tutorial-sample N` saves the tutorial's long run (10–15 minutes a pair at
512 px on two cores): its picture is taken from an earlier run's work folder (DIR, the
`nst-bench-…` folder that run printed; the photo and artwork must be the same arrays), and its
time is measured over N steps and extrapolated to `--tutorial-steps` (its Adam steps all cost
the same: the first, with its trace, is timed apart from the rest).
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
# The targets every preset is held to, against the tutorial on the same pair.
STYLE_TARGET = 1.02
CONTENT_TARGET = 1.2
SPEED_TARGET = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument(
        "--pairs", nargs="*", default=["astronaut-ihc"], help="bench.pairs names, or all"
    )
    parser.add_argument(
        "--weights", default="hed", help="hed (trained stand-in), random (speed only) or a path"
    )
    parser.add_argument("--pictures", type=Path, help="save every run's picture here as PNG")
    parser.add_argument(
        "--figure", type=Path, help="the first pair's photo, artwork and every run, side by side"
    )
    parser.add_argument("--tutorial-steps", type=int, default=300)
    parser.add_argument(
        "--tutorial-from", type=Path, help="an earlier run's work folder: its tutorial pictures"
    )
    parser.add_argument(
        "--tutorial-sample", type=int, default=40, help="with --tutorial-from: steps to time"
    )
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
    parser.add_argument("--plot", type=Path, help="draw style distance against time here")
    parser.add_argument(
        "--plot-time",
        choices=tuple(TIMES),
        default="engine",
        help="the plot's time axis: the run's own (engine) wall or CPU seconds, or its whole "
        "process's (start-up included)",
    )
    parser.add_argument("--json", type=Path, help="also write the rows here, as JSON")
    parser.add_argument(
        "--from-json", type=Path, help="print (and --plot) the rows of an earlier --json, no runs"
    )
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--weights-file", help=argparse.SUPPRESS)
    parser.add_argument("--sample", type=int, help=argparse.SUPPRESS)
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
        _save(args.json, rows, header)
    if args.plot:
        plot(rows, header, args.plot, args.plot_time)


def _measure(args: argparse.Namespace) -> tuple[list[dict], str]:
    quiet_tensorflow()
    from bench.pairs import PAIRS
    from nst_engine.model import resolve_precision

    pairs = list(PAIRS) if args.pairs == ["all"] else args.pairs
    work = Path(tempfile.mkdtemp(prefix="nst-bench-"))
    weights_file, label = _weights_file(args.weights, work)
    runs = {TUTORIAL: ""}
    for preset in args.presets:
        for precision in dict.fromkeys(resolve_precision(p) for p in args.precisions):
            runs[f"{preset}/{precision}"] = f"quality={preset},precision={precision}"
    runs.update(c.split(":", 1) for c in args.config)
    rows = []
    for pair in pairs:
        pair_dir = work / pair
        pair_dir.mkdir()
        _prepare(pair_dir, args.size, pair)
        pair_rows = []
        for name, config in runs.items():
            sample = args.tutorial_from is not None and name == TUTORIAL
            started = time.perf_counter()
            cpu_before = _children_cpu()
            cmd = [
                sys.executable, "-m", "bench.compare", "--run", name,
                "--workdir", str(pair_dir), "--weights-file", str(weights_file),
                "--size", str(args.size), "--tutorial-steps", str(args.tutorial_steps),
                *(["--config", f"{name}:{config}"] if config else []),
                *(["--sample", str(args.tutorial_sample)] if sample else []),
            ]  # fmt: skip
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            report = json.loads(out.strip().splitlines()[-1])
            report["wall"] = time.perf_counter() - started
            report["cpu"] = _children_cpu() - cpu_before
            report["pair"] = pair
            if sample:
                _reuse_tutorial(args.tutorial_from / pair, pair_dir, report)
            pair_rows.append(report)
            print(f"… {pair} {name} done in {report['wall']:.1f} s", file=sys.stderr, flush=True)
        _judge(pair_dir, pair_rows, weights_file, args.pictures)
        if args.figure and not rows:
            figure(pair_dir, pair_rows, label, args.figure)
        rows += pair_rows
        if args.json:  # after each pair: a long run stopped part-way keeps what it measured
            _save(args.json, rows, _header(args, label) + " (so far)")
    return rows, _header(args, label)


def _reuse_tutorial(earlier: Path, work: Path, report: dict) -> None:
    """The tutorial's picture from an earlier run of the same pair, and its process times
    extrapolated from the sampled steps to the whole run (the child extrapolated its own)."""
    for name in ("content.npy", "style.npy"):
        if not np.array_equal(np.load(earlier / name), np.load(work / name)):
            sys.exit(f"--tutorial-from: {earlier / name} is not this run's {name}")
    np.save(work / f"out-{TUTORIAL}.npy", np.load(earlier / f"out-{TUTORIAL}.npy"))
    report["wall"] += report.pop("extra_s")
    report["cpu"] += report.pop("extra_cpu")


def _header(args: argparse.Namespace, label: str) -> str:
    sampled = (
        f"; the tutorial's picture from {args.tutorial_from}, its time from "
        f"{args.tutorial_sample} of its {args.tutorial_steps} steps"
        if args.tutorial_from
        else ""
    )
    return f"size {args.size} px; weights: {label}; {machine()}{sampled}"


def _save(path: Path, rows: list[dict], header: str) -> None:
    path.write_text(json.dumps({"header": header, "rows": rows}, indent=1) + "\n")


def _weights_file(spec: str, work: Path) -> tuple[Path, str]:
    """The one file every run loads, and how to name it in the table."""
    from nst_engine.weights import (
        RANDOM,
        WEIGHTS_FILE,
        random_weights,
        resolve_weights,
        save_legacy_h5,
        weights_label,
    )

    if spec == RANDOM:
        return save_legacy_h5(random_weights(0), work / WEIGHTS_FILE), (
            "seeded random (speed only: the distances mean nothing)"
        )
    return resolve_weights(spec), weights_label(spec)


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished runs: on a machine shared with other work,
    the fairer measure of cost (the tutorial and the engine use the same threads)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _print(rows: list[dict], header: str) -> None:
    print(header)
    print(
        f"{'pair':<18} {'run':<18} {'precision':>9} {'steps':>6} {'wall s':>7} {'speed-up':>8} "
        f"{'CPU s':>7} {'speed-up':>8} {'engine s':>8} {'speed-up':>8} {'eng. CPU':>8} "
        f"{'speed-up':>8} {'peak RSS':>9} {'style dist':>11} {'× tut':>6} "
        f"{'content dist':>12} {'× tut':>6}"
    )
    for r in rows:
        base = _tutorial(rows, r.get("pair"))
        cpu = r.get("cpu", float("nan"))
        engine, engine_cpu = _engine(r), r.get("engine_cpu", float("nan"))
        print(
            f"{r.get('pair', '-'):<18} {r['name']:<18} {r['precision']:>9} {r['steps']:>6} "
            f"{r['wall']:>7.1f} {base['wall'] / r['wall']:>7.2f}× "
            f"{cpu:>7.1f} {base.get('cpu', cpu) / cpu:>7.2f}× "
            f"{engine:>8.1f} {_engine(base) / engine:>7.2f}× "
            f"{engine_cpu:>8.1f} {base.get('engine_cpu', engine_cpu) / engine_cpu:>7.2f}× "
            f"{r['rss_mb']:>7.0f}MB "
            f"{r['style']:>11.4g} {r['style'] / base['style']:>6.3f} "
            f"{r['content']:>12.4g} {r['content'] / base['content']:>6.2f}",
            flush=True,
        )
    names = [n for n in dict.fromkeys(r["name"] for r in rows) if n != TUTORIAL]
    if len({r.get("pair") for r in rows}) > 1:
        print("worst over the pairs (least speed-up, highest distance ratios):")
        for name in names:
            mine = [r for r in rows if r["name"] == name]
            ratios = [(r, _tutorial(rows, r.get("pair"))) for r in mine]
            wall = min(b["wall"] / r["wall"] for r, b in ratios)
            cpu = min(b["cpu"] / r["cpu"] for r, b in ratios)
            engine = min(_engine(b) / _engine(r) for r, b in ratios)
            engine_cpu = min(
                b.get("engine_cpu", np.nan) / r.get("engine_cpu", np.nan) for r, b in ratios
            )
            style = max(r["style"] / b["style"] for r, b in ratios)
            content = max(r["content"] / b["content"] for r, b in ratios)
            # Judged on the run itself, as a warm worker paints it: a worker starts once, and
            # process start-up (4–8 s) is no part of a member's job.
            met = (
                min(engine, engine_cpu) >= SPEED_TARGET
                and style <= STYLE_TARGET
                and content <= CONTENT_TARGET
            )
            print(
                f"{name:<18} engine {engine:.2f}×, engine CPU {engine_cpu:.2f}× "
                f"(process wall {wall:.2f}×, CPU {cpu:.2f}×), "
                f"style {style:.3f}×, "
                f"content {content:.3f}×: {'meets' if met else 'misses'} the targets"
            )


def _engine(row: dict) -> float:
    """A run's own seconds, the model loaded (what a member waits for on a warm worker): the
    process's wall time less its start-up (Python, TensorFlow's import, the model's load)."""
    return row["ms_per_step"] * row["steps"] / 1000


# The plot's time axes: a row's seconds, and how the axis names them.
TIMES = {
    "engine": (_engine, "wall time of the run, s (the model loaded)"),
    "engine_cpu": (lambda r: r["engine_cpu"], "CPU time of the run, s (the model loaded)"),
    "wall": (lambda r: r["wall"], "wall time, s, process start included"),
    "cpu": (lambda r: r["cpu"], "CPU time (user + system), s, process start included"),
}


def plot(rows: list[dict], header: str, path: Path, time: str = "engine") -> None:
    """Style distance against one of TIMES' seconds, one point per run: colour by preset,
    marker by precision, the tutorial a star (matplotlib, a small PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=100)
    markers = {"float32": "o", "bfloat16": "s", "float16": "^"}
    presets = list(dict.fromkeys(r["name"].split("/")[0] for r in rows if r["name"] != TUTORIAL))
    pair = rows[0].get("pair")
    rows = [r for r in rows if r.get("pair") == pair]
    base = _tutorial(rows, pair)
    seconds, axis = TIMES[time]
    for r in rows:
        tutorial = r["name"] == TUTORIAL
        preset = r["name"].split("/")[0]
        ax.scatter(
            seconds(r),
            r["style"],
            marker="*" if tutorial else markers.get(r["precision"], "o"),
            s=160 if tutorial else 50,
            color="black" if tutorial else f"C{presets.index(preset)}",
            zorder=3,
        )
        label = r["name"] if tutorial else f"{preset} {r['precision']}"
        ax.annotate(
            f"{label} ({r['content'] / base['content']:.1f}× content)",
            (seconds(r), r["style"]),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=7,
        )
    # The targets (docs/performance.md): style within STYLE_TARGET× the tutorial's, SPEED_TARGET×
    # sooner.
    ax.axhline(base["style"] * STYLE_TARGET, color="grey", linestyle=":", linewidth=1)
    ax.axvline(seconds(base) / SPEED_TARGET, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel(axis)
    ax.set_ylabel("style distance (lower is closer)")
    # The header is long (pair, size, weights, CPU): one clause a line.
    title = header.replace("; ", "\n")
    ax.set_title(
        f"{pair}, {title}\ndotted: {STYLE_TARGET}× the tutorial's style distance, "
        f"1/{SPEED_TARGET:g} of its time",
        fontsize=7,
    )
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def figure(work: Path, rows: list[dict], weights: str, path: Path) -> None:
    """The photo, the artwork and each run's picture in a row, each named with its engine
    seconds and distances, the weights named under them (a PNG)."""
    tiles = [
        ("photo", np.load(work / "content.npy"), ""),
        ("artwork", np.load(work / "style.npy"), ""),
    ]
    base = _tutorial(rows, rows[0].get("pair"))
    for r in rows:
        image = np.load(work / f"out-{r['name'].replace('/', '-')}.npy")
        # "x", not "×": Pillow's bundled font has no "×".
        note = (
            f"{_engine(r):.0f} s, style {r['style'] / base['style']:.2f}x, "
            f"content {r['content'] / base['content']:.2f}x"
        )
        tiles.append((r["name"].split("/")[0], image, note))
    sheet(tiles, weights, path)


def sheet(tiles: list[tuple[str, np.ndarray, str]], weights: str, path: Path) -> None:
    """Pictures (uint8 H×W×3) in a row, each with its name and a note under it, the weights
    named under them all (a PNG). Each is cut to the first one's shape (its centre, scaled to
    cover it), so an artwork or a larger picture shows beside the photo."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = tiles[0][1].shape[:2]
    pad, caption = 8, 34
    page = Image.new("RGB", (len(tiles) * (w + pad) + pad, h + caption + 2 * pad + 14), "white")
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=12)
    for i, (name, image, note) in enumerate(tiles):
        tile = Image.fromarray(image)
        if tile.size != (w, h):
            scale = max(w / tile.width, h / tile.height)
            tile = tile.resize((round(tile.width * scale), round(tile.height * scale)))
            left, top = (tile.width - w) // 2, (tile.height - h) // 2
            tile = tile.crop((left, top, left + w, top + h))
        x = pad + i * (w + pad)
        page.paste(tile, (x, pad))
        draw.text((x, h + pad + 4), name, fill="black", font=font)
        draw.text((x, h + pad + 18), note, fill="dimgray", font=font)
    draw.text((pad, h + caption + pad), f"weights: {weights}", fill="firebrick", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.save(path)


def _tutorial(rows: list[dict], pair: str | None = None) -> dict:
    return next(r for r in rows if r["name"] == TUTORIAL and r.get("pair") == pair)


def _prepare(work: Path, size: int, pair: str) -> None:
    """The pair's photo at the output size and its artwork at the same longest side, as the
    engine sizes them, so that the tutorial and the presets start from the same arrays."""
    from bench.pairs import pair as load_pair
    from nst_engine.images import output_size, resize

    photo, artwork = load_pair(pair)
    w, h = output_size(photo.shape[1], photo.shape[0], size)
    scale = max(w, h) / max(artwork.shape[:2])
    np.save(work / "content.npy", resize(photo, w, h))
    np.save(
        work / "style.npy",
        resize(artwork, round(artwork.shape[1] * scale), round(artwork.shape[0] * scale)),
    )


def _child(args: argparse.Namespace) -> None:
    quiet_tensorflow()
    from nst_engine import load_model, stylize
    from nst_engine.model import resolve_precision

    work = Path(args.workdir)
    content, style = np.load(work / "content.npy"), np.load(work / "style.npy")
    model = load_model(args.weights_file)
    t0, cpu0 = time.perf_counter(), time.process_time()
    extra: dict[str, float] = {}
    if args.run == TUTORIAL:
        from bench.tutorial import tutorial_loop

        first: list[float] = []  # the clocks when the first step (with its trace) ended

        def on_step(step: int) -> None:
            if step == 0:
                first.extend((time.perf_counter(), time.process_time()))

        image = tutorial_loop(
            model._vgg,
            content[None] / np.float32(255),
            style[None] / np.float32(255),
            args.sample or args.tutorial_steps,
            on_step=on_step,
        )
        image = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
        steps, precision = args.tutorial_steps, "float32"
        if args.sample:  # the steps after the first, at their measured rate, to the whole run
            scale = (args.tutorial_steps - 1) / (args.sample - 1) - 1
            extra = {
                "extra_s": (time.perf_counter() - first[0]) * scale,
                "extra_cpu": (time.process_time() - first[1]) * scale,
            }
    else:
        options = _options(args.config[0].split(":", 1)[1], args.size)
        result = stylize(content, style, options, model=model)
        image, steps, precision = result.image, result.steps, resolve_precision(options.precision)
    seconds = time.perf_counter() - t0 + extra.get("extra_s", 0.0)
    cpu_seconds = time.process_time() - cpu0 + extra.get("extra_cpu", 0.0)
    np.save(work / f"out-{args.run.replace('/', '-')}.npy", image)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "name": args.run,
                "precision": precision,
                "steps": steps,
                "ms_per_step": seconds / steps * 1000,
                "engine_cpu": cpu_seconds,
                "rss_mb": rss_mb,
                **extra,
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


def _judge(work: Path, rows: list[dict], weights_file: Path, pictures: Path | None) -> None:
    """Each run's style and content distance (nst_engine.distances), and its picture saved."""
    from nst_engine import load_model
    from nst_engine.distances import content_distance, style_distance

    model = load_model(str(weights_file))
    photo, artwork = np.load(work / "content.npy"), np.load(work / "style.npy")
    for r in rows:
        image = np.load(work / f"out-{r['name'].replace('/', '-')}.npy")
        r["style"] = style_distance(model, image, artwork)
        r["content"] = content_distance(model, image, photo)
        if pictures:
            from PIL import Image

            pictures.mkdir(parents=True, exist_ok=True)
            stem = f"{r['pair']}-{image.shape[1]}px-{r['name'].replace('/', '-')}"
            Image.fromarray(image).save(pictures / f"{stem}.png")
    if pictures:
        from PIL import Image

        for name, array in (("photo", photo), ("artwork", artwork)):
            Image.fromarray(array).save(pictures / f"{rows[0]['pair']}-{name}.png")


def machine() -> str:
    from bench.step_time import _cpu_name

    return _cpu_name()


if __name__ == "__main__":
    main()
