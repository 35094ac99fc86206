"""Would several same-sized jobs run faster as one batch? ms per image-step, side by side.

    python -m bench.batch [--sizes 64 256 512] [--batches 1 2 4] [--steps 5]

Times one step (VGG19 features to block5_conv2, Gram matrices, the gradient with respect to
the pixels, an update) for a batch of B images, in float32 and in the reduced precision the
presets use on this device, and prints the cost per image. The engine runs one job per worker
today; batching is worth building where the per-image cost falls well below batch 1's. Run it
on a GPU host before deciding: on this project's 2-core CPU it did not pay at useful sizes.
"""

from __future__ import annotations

import argparse
import time

from nst_engine.model import quiet_tensorflow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 512])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    quiet_tensorflow()
    import tensorflow as tf

    from bench.step_time import device_name
    from nst_engine.losses import gram_matrix
    from nst_engine.model import resolve_precision
    from nst_engine.options import StyleOptions
    from nst_engine.transfer import load_model

    # Timing does not depend on the weights' values.
    model = load_model("random")
    defaults = StyleOptions()
    layers = tuple(dict.fromkeys((*defaults.style_layers, *defaults.content_layers)))
    n_style = len(defaults.style_layers)
    print(f"device: {device_name()}, TensorFlow {tf.__version__}; ms per image-step")
    precisions = dict.fromkeys(("float32", resolve_precision("auto")))
    heads = " ".join(f"{'batch ' + str(b):>9}" for b in args.batches)
    print(f"{'precision':>10} {'size':>5} {heads}")
    for precision in precisions:
        extractor = model.extractor(layers, precision)
        for size in args.sizes:
            cells = []
            for batch in args.batches:
                image = tf.Variable(tf.random.uniform((batch, size, size, 3), seed=0))

                @tf.function
                def step(image=image, extractor=extractor):
                    with tf.GradientTape() as tape:
                        feats = extractor(image)
                        style = tf.add_n([tf.reduce_sum(gram_matrix(f)) for f in feats[:n_style]])
                        content = tf.add_n(
                            [tf.reduce_sum(tf.cast(f, tf.float32)) for f in feats[n_style:]]
                        )
                        loss = style + content
                    image.assign(tf.clip_by_value(image - 1e-9 * tape.gradient(loss, image), 0, 1))
                    return loss

                step().numpy()  # trace and warm up
                started = time.perf_counter()
                for _ in range(args.steps):
                    step().numpy()
                per_image = (time.perf_counter() - started) / args.steps / batch
                cells.append(f"{per_image * 1000:>9.0f}")
            print(f"{precision:>10} {size:>5} " + " ".join(cells), flush=True)


if __name__ == "__main__":
    main()
