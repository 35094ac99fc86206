"""Where VGG19's weights come from: Keras' ImageNet download, a local file, or seeded values."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import h5py
import numpy as np

from nst_engine.errors import WeightsError
from nst_engine.options import VGG19_CONV_LAYERS

log = logging.getLogger(__name__)

WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/" + WEIGHTS_FILE
# The MD5 that Keras itself checks for this file.
WEIGHTS_MD5 = "253f8cb515780f3b799900260a226db6"
RANDOM = "random"
IMAGENET = "imagenet"
# Environment variable that names the weights (imagenet | random | a path).
WEIGHTS_ENV = "NST_WEIGHTS"

# Channels in and out of each VGG19 convolution, in order.
_CONV_CHANNELS: dict[str, tuple[int, int]] = {}
_prev = 3
for _name in VGG19_CONV_LAYERS:
    _out = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}[int(_name[5])]
    _CONV_CHANNELS[_name] = (_prev, _out)
    _prev = _out
del _prev, _name, _out

# The legacy Keras HDF5 layout lists every layer, pools included.
_LEGACY_LAYER_NAMES: tuple[str, ...] = ("input_1",) + tuple(
    name
    for block, convs in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
    for name in (*(f"block{block}_conv{c}" for c in range(1, convs + 1)), f"block{block}_pool")
)


def default_weights() -> str:
    """The weights named by NST_WEIGHTS, else ``imagenet``."""
    return os.environ.get(WEIGHTS_ENV, "").strip() or IMAGENET


def weights_label(spec: str) -> str:
    """How results made with ``spec`` are labelled: imagenet, random, or the file's name."""
    if spec in (IMAGENET, RANDOM):
        return spec
    return Path(spec).name


def fetch_imagenet_weights(cache_dir: str | Path | None = None) -> Path:
    """The ImageNet no-top file from Keras' cache (``$KERAS_HOME/models``, by default
    ``~/.keras/models``), downloaded and checked against its MD5 once if absent."""
    from keras.utils import get_file

    try:
        return Path(
            get_file(
                WEIGHTS_FILE,
                WEIGHTS_URL,
                cache_subdir="models",
                file_hash=WEIGHTS_MD5,
                cache_dir=str(cache_dir) if cache_dir else None,
            )
        )
    except Exception as err:  # noqa: BLE001 - any download failure gets the same advice
        raise WeightsError(
            f"could not download the VGG19 weights ({type(err).__name__}); on an offline host set "
            f"{WEIGHTS_ENV} to the path of {WEIGHTS_FILE}, or place that file in "
            "~/.keras/models/"
        ) from err


def resolve_weights(spec: str) -> Path | None:
    """The file that ``spec`` names (downloading ImageNet's if needed), or None for random."""
    if spec == RANDOM:
        return None
    if spec == IMAGENET:
        return fetch_imagenet_weights()
    path = Path(spec).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"no weights file at {spec}; {WEIGHTS_ENV} must be imagenet, random, "
            f"or the path of {WEIGHTS_FILE}"
        )
    return path


def random_weights(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Seeded He-normal VGG19 conv weights: {layer: (kernel 3×3×C_in×C_out, bias C_out)}, float32.

    For tests and demos only: features from these are not ImageNet's.
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, (c_in, c_out) in _CONV_CHANNELS.items():
        std = np.sqrt(2.0 / (9 * c_in))
        kernel = rng.normal(0.0, std, size=(3, 3, c_in, c_out)).astype(np.float32)
        arrays[name] = (kernel, np.zeros(c_out, np.float32))
    return arrays


def save_legacy_h5(arrays: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path) -> Path:
    """Write VGG19 conv weights in the layout of Keras' published no-top file.

    Root attribute ``layer_names`` lists every layer; each conv group has ``weight_names``
    ``[<layer>_W_1:0, <layer>_b_1:0]`` naming its kernel and bias datasets.
    """
    path = Path(path)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in _LEGACY_LAYER_NAMES])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for name in _LEGACY_LAYER_NAMES:
            group = f.create_group(name)
            if name not in arrays:
                group.attrs["weight_names"] = np.array([], dtype="S1")
                continue
            kernel, bias = arrays[name]
            names = [f"{name}_W_1:0", f"{name}_b_1:0"]
            group.attrs["weight_names"] = np.array([n.encode() for n in names])
            group.create_dataset(names[0], data=kernel)
            group.create_dataset(names[1], data=bias)
    return path
