"""ms per full-size engine step under TensorFlow thread settings and style-layer choices.

    python -m bench.step_cost [--size 256] [--steps 15] [--threads 0:0 1:1 2:1 2:2]

Each setting runs in its own process (TensorFlow's thread pools are fixed once it starts), on
seeded random weights (speed does not depend on the values), in float32. `intra:inter` are
`tf.config.threading`'s intra-op and inter-op thread counts; 0 is TensorFlow's default (one
per core). Then, in one process, the step with fewer style layers, for the lever "evaluate
fewer style layers at full resolution".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np

from nst_engine.model import quiet_tensorflow

LAYER_CHOICES = {
    "all five": ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"),
    "without block1": ("block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"),
    "block3-5": ("block3_conv1", "block4_conv1", "block5_conv1"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--threads", nargs="+", default=["0:0", "1:1", "2:1", "2:2"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        intra, inter = (int(n) for n in args.child.split(":"))
        print(json.dumps(_measure(args.size, args.steps, intra, inter, args.child == "0:0")))
        return
    from bench.step_time import _cpu_name

    print(f"size {args.size} px, float32, {args.steps} timed steps; {_cpu_name()}")
    for setting in args.threads:
        cmd = [sys.executable, "-m", "bench.step_cost", "--child", setting]
        cmd += ["--size", str(args.size), "--steps", str(args.steps)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        report = json.loads(out.strip().splitlines()[-1])
        print(f"threads intra:inter {setting:>5}: {report['all five']:6.0f} ms/step", flush=True)
        for name, ms in report.items():
            if name != "all five":
                print(f"  style layers {name:<15} {ms:6.0f} ms/step", flush=True)


def _measure(size: int, steps: int, intra: int, inter: int, layers_too: bool) -> dict:
    quiet_tensorflow()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    from bench.step_time import _engine_ms_per_step
    from nst_engine import StyleOptions, load_model

    model = load_model("random")
    rng = np.random.default_rng(0)
    content = (rng.uniform(size=(size, size, 3)) * 255).astype(np.uint8)
    style = (rng.uniform(size=(size, size, 3)) * 255).astype(np.uint8)
    report = {}
    for name, layers in LAYER_CHOICES.items() if layers_too else [("all five", None)]:
        changes = {"style_layers": layers} if layers else {}
        options = StyleOptions(max_size=size, steps=steps + 3, precision="float32", **changes)
        report[name] = _engine_ms_per_step(model, content, style, options, warmup=3)
    return report


if __name__ == "__main__":
    main()
