"""VGG19 as a feature extractor: float images in [0, 1] in, the chosen layers' activations out;
what jobs on it keep for the next one (`TransferCache`); and the precision this hardware is
fast at (`resolve_precision`, `cpu_has_fast_bfloat16`)."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from nst_engine.errors import WeightsError
from nst_engine.weights import HED_LABEL, RANDOM, random_weights, resolve_weights, weights_label

log = logging.getLogger(__name__)

# Style targets kept per loaded model (each a few MB at most).
GRAM_CACHE_SIZE = 16
# Traced step functions kept per loaded model (Adam's one per image size in use, L-BFGS's one
# for any size).
COMPILED_CACHE_SIZE = 32
# Caffe-style VGG preprocessing: BGR order, ImageNet channel means on a 0–255 scale.
_BGR_MEANS = (103.939, 116.779, 123.68)


def quiet_tensorflow() -> None:
    """Import TensorFlow without its C++ start-up notices reaching the user's terminal.

    TF_CPP_MIN_LOG_LEVEL does not silence all of them (absl, CUDA probing, oneDNN), and turning
    oneDNN off to hide its notice makes every step much slower, so stderr's file descriptor is
    pointed at a temporary file while TensorFlow loads; if the import fails, that text is replayed.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow

            # Device discovery (CUDA probing) prints its own notices on first use.
            tensorflow.config.list_physical_devices()
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class VGG19Features:
    """A loaded VGG19 (no top) that hands out feature models truncated at the layers asked for."""

    def __init__(self, weights: str, *, seed: int = 0) -> None:
        quiet_tensorflow()
        import keras

        self.weights = weights
        self.label = weights_label(weights)
        path = resolve_weights(weights)
        vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
        if path is None:
            for name, (kernel, bias) in random_weights(seed).items():
                vgg.get_layer(name).set_weights([kernel, bias])
            log.warning("VGG19 has RANDOM weights: results are NOT a real style transfer")
        else:
            try:
                vgg.load_weights(str(path))
            except Exception as err:  # noqa: BLE001 - h5py/Keras raise many kinds for a bad file
                raise WeightsError(
                    f"the weights file {path.name} is not a readable VGG19 no-top HDF5 file "
                    f"({type(err).__name__}); download it again or point NST_WEIGHTS elsewhere"
                ) from err
            if self.label == HED_LABEL:
                log.warning("VGG19 weights: %s, from %s", HED_LABEL, path)
            else:
                log.info("VGG19 weights loaded from %s", path)
        vgg.trainable = False
        self._vgg = vgg
        self._extractor = cache(self._build)
        # What jobs on this model keep for the next one (filled by `nst_engine.transfer`).
        self.cache = TransferCache()

    @property
    def is_random(self) -> bool:
        return self.weights == RANDOM

    def extractor(self, layers: tuple[str, ...], precision: str = "float32"):
        """A Keras model from a B×H×W×3 float32 image in [0, 1] to the listed layers' outputs.

        The model stops at the deepest listed layer, so no work is spent beyond it. With
        ``bfloat16``/``float16`` the convolutions compute in that type (outputs too); callers
        cast to float32 before any loss.
        """
        return self._extractor(layers, resolve_precision(precision))

    def _build(self, layers: tuple[str, ...], precision: str):
        import keras

        policy = "float32" if precision == "float32" else f"mixed_{precision}"
        inputs = keras.Input(shape=(None, None, 3))
        x = keras.layers.Lambda(_vgg_preprocess, name="vgg_preprocess")(inputs)
        deepest = max(layers, key=_layer_index)
        outputs = {}
        for layer in self._vgg.layers[1:]:
            if policy != "float32":
                # A copy of the layer computing in reduced precision; weights stay float32.
                config = {**layer.get_config(), "dtype": policy}
                copy = type(layer).from_config(config)
                x = copy(x)
                if layer.weights:
                    copy.set_weights(layer.get_weights())
            else:
                x = layer(x)
            if layer.name in layers:
                outputs[layer.name] = x
            if layer.name == deepest:
                break
        model = keras.Model(inputs, [outputs[name] for name in layers])
        model.trainable = False
        return model

    def layer_arrays(self) -> dict[str, list[np.ndarray]]:
        """The conv layers' weights as NumPy arrays, for checks."""
        return {layer.name: layer.get_weights() for layer in self._vgg.layers if layer.weights}


class LRU:
    """At most ``limit`` entries; the least recently used go first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._entries: OrderedDict[Hashable, object] = OrderedDict()

    def get(self, key: Hashable, make: Callable[[], object]) -> object:
        """The entry for ``key``, made first if missing."""
        if key in self._entries:
            self._entries.move_to_end(key)
        else:
            self._entries[key] = make()
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)
        return self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()


@dataclass
class TransferCache:
    """What one job on a loaded model keeps for the next: the Gram targets of recent artworks
    (a re-run on the same artwork skips the style's forward passes) and the traced step
    functions (tracing costs about a second). Both are keyed by the model's feature extractors,
    so they live as long as the model."""

    # Blended Gram targets, per extractor, artworks and scale.
    grams: LRU = field(default_factory=lambda: LRU(GRAM_CACHE_SIZE))
    # Traced step functions, per optimiser, extractor, layer count and (Adam) image size.
    traced: LRU = field(default_factory=lambda: LRU(COMPILED_CACHE_SIZE))


def resolve_precision(precision: str) -> str:
    """``auto`` → bfloat16 on CPUs with native bfloat16 (AVX512-BF16/AMX) and on GPUs of compute
    capability 8+, float16 on older GPUs, float32 elsewhere. Other values pass through."""
    if precision != "auto":
        return precision
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        major = (details.get("compute_capability") or (0, 0))[0]
        return "bfloat16" if major >= 8 else "float16"
    return "bfloat16" if cpu_has_fast_bfloat16() else "float32"


@cache
def cpu_has_fast_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), from /proc/cpuinfo.

    Without those instructions oneDNN emulates bfloat16 and a step is slower than in float32.
    """
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _vgg_preprocess(images):
    import tensorflow as tf

    bgr = tf.reverse(images, axis=[-1]) * 255.0
    return bgr - tf.constant(_BGR_MEANS, dtype=bgr.dtype)


def _layer_index(name: str) -> tuple[int, int]:
    block, conv = name.removeprefix("block").split("_conv")
    return int(block), int(conv)


__all__ = [
    "VGG19Features",
    "WeightsError",
    "cpu_has_fast_bfloat16",
    "quiet_tensorflow",
    "resolve_precision",
]
