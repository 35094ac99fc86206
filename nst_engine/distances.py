"""How far a picture is from its artwork in style and from its photo in content: one measure
for the benchmarks and the tests, independent of the weights the optimisation used.

- Style distance: for each style layer, the Frobenius norm of the difference between the
  picture's and the artwork's Gram matrices (each divided by its number of positions, so that
  sizes compare), over the norm of the artwork's; then the mean over the layers, each weighing
  the same. A plain Gram MSE summed over layers would be decided by the layer with the largest
  values alone.
- Content distance: the mean squared difference of the picture's and the photo's
  ``block5_conv2`` features, over the mean square of the photo's (its feature energy).

Both are 0 for the target itself; the photo's own style distance is typically near 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nst_engine.images import resize
from nst_engine.model import VGG19Features
from nst_engine.options import CONTENT_LAYERS, STYLE_LAYERS


def style_distance(
    model: VGG19Features,
    image: np.ndarray,
    artworks: np.ndarray | Sequence[np.ndarray],
    blend: Sequence[float] | None = None,
) -> float:
    """Style distance of a uint8 H×W×3 ``image`` to one artwork or a blend of several (uint8
    RGB, resized to the image's longest side as the engine sizes them)."""
    styles = [artworks] if isinstance(artworks, np.ndarray) else list(artworks)
    blend = blend or (1.0,) * len(styles)
    total = float(sum(blend))
    long_side = max(image.shape[:2])
    target = None
    for artwork, weight in zip(styles, blend):
        grams = [g * (weight / total) for g in _grams(model, _long_side(artwork, long_side))]
        target = grams if target is None else [a + b for a, b in zip(target, grams)]
    ours = _grams(model, image)
    return float(np.mean([np.linalg.norm(g - t) / np.linalg.norm(t) for g, t in zip(ours, target)]))


def content_distance(model: VGG19Features, image: np.ndarray, photo: np.ndarray) -> float:
    """Content distance of a uint8 H×W×3 ``image`` to the ``photo`` (uint8 RGB, resized to the
    image's size)."""
    h, w = image.shape[:2]
    if photo.shape[:2] != (h, w):
        photo = resize(photo, w, h)
    ours, theirs = (_features(model, x, CONTENT_LAYERS)[0] for x in (image, photo))
    return float(np.mean(np.square(ours - theirs)) / np.mean(np.square(theirs)))


def _grams(model: VGG19Features, image: np.ndarray) -> list[np.ndarray]:
    grams = []
    for f in _features(model, image, STYLE_LAYERS):
        flat = f.reshape(-1, f.shape[-1]).astype(np.float64)
        grams.append(flat.T @ flat / flat.shape[0])
    return grams


def _features(model: VGG19Features, image: np.ndarray, layers: tuple[str, ...]) -> list:
    import tensorflow as tf

    unit = tf.constant(image[None].astype(np.float32) / 255.0)
    out = model.extractor(layers, "float32")(unit)
    out = out if isinstance(out, list | tuple) else [out]
    return [np.asarray(o[0]) for o in out]


def _long_side(image: np.ndarray, long_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = long_side / max(h, w)
    return resize(image, max(1, round(w * scale)), max(1, round(h * scale)))
