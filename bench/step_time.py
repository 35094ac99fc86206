"""ms per step of the engine and of the plain tutorial loop, side by side, in one run.

    python bench/step_time.py [--sizes 256 512] [--steps 20]

Both use the same seeded VGG19 weights file (the real ImageNet file cannot be fetched here;
speed does not depend on the values).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from nst_engine.model import quiet_tensorflow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    quiet_tensorflow()
    import tensorflow as tf

    from bench.tutorial import tutorial_loop
    from nst_engine import StyleOptions, load_model
    from nst_engine.model import resolve_precision
    from nst_engine.weights import WEIGHTS_FILE, random_weights, save_legacy_h5

    folder = Path(tempfile.mkdtemp())
    weights = save_legacy_h5(random_weights(0), folder / WEIGHTS_FILE)
    model = load_model(str(weights))
    rng = np.random.default_rng(0)
    print(f"machine: {device_name()}, TensorFlow {tf.__version__}")
    print(
        f"{'size':>6} {'tutorial ms/step':>17} {'engine float32':>15} "
        f"{'engine ' + resolve_precision('auto'):>16} {'speed-up':>9}"
    )
    for size in args.sizes:
        content = (rng.uniform(size=(size, size, 3)) * 255).astype(np.uint8)
        style = (rng.uniform(size=(size, size, 3)) * 255).astype(np.uint8)

        stamps: list[float] = []
        unit = [content[None].astype(np.float32) / 255, style[None].astype(np.float32) / 255]
        tutorial_loop(
            model._vgg,
            *unit,
            args.warmup + args.steps,
            on_step=lambda _s, out=stamps: out.append(time.perf_counter()),
        )
        tutorial_ms = _ms_per_step(stamps, args.warmup)

        engine_ms = []
        for precision in ("float32", "auto"):
            options = StyleOptions(
                max_size=size, steps=args.warmup + args.steps, precision=precision
            )
            engine_ms.append(_engine_ms_per_step(model, content, style, options, args.warmup))
        print(
            f"{size:>6} {tutorial_ms:>17.0f} {engine_ms[0]:>15.0f} {engine_ms[1]:>16.0f} "
            f"{tutorial_ms / engine_ms[1]:>8.2f}×"
        )


def _engine_ms_per_step(model, content, style, options, warmup: int) -> float:
    """The engine's milliseconds a step at full size, after ``warmup`` steps (``options``
    must ask for a single full-size level, as ``steps`` with no preset does)."""
    from nst_engine import stylize

    stamps: list[float] = []
    stylize(
        content,
        style,
        options,
        model=model,
        on_progress=lambda _p: stamps.append(time.perf_counter()),
    )
    return _ms_per_step(stamps, warmup)


def _ms_per_step(stamps: list[float], warmup: int) -> float:
    timed = stamps[warmup - 1 :]
    return (timed[-1] - timed[0]) / (len(timed) - 1) * 1000


def device_name() -> str:
    """The GPU TensorFlow computes on, if it sees one, else the CPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"{details.get('device_name', 'GPU')} (×{len(gpus)})"
    return f"{platform.machine()}, {_cpu_name()}"


# The CPU features that decide TensorFlow's speed here, as /proc/cpuinfo names them and as we
# print them: machines of the same model name differ in these from one session to the next.
_FEATURES = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_bf16": "AVX512-BF16", "amx_tile": "AMX"}


def _cpu_name() -> str:
    """The CPU's model, cores and vector features, e.g. "Intel(R) Xeon(R) Processor (2 cores;
    AVX2, AVX-512, AVX512-BF16, AMX)"."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown CPU"
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
    flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
    features = ", ".join(name for flag, name in _FEATURES.items() if flag in flags) or "no AVX2"
    return f"{model or platform.processor() or 'unknown CPU'} ({_cores()} cores; {features})"


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
