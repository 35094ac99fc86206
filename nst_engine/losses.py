"""The terms of Gatys et al.'s objective, as small functions of float32 tensors."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf


def gram_matrix(features: tf.Tensor) -> tf.Tensor:
    """Channel correlations of a B×H×W×C feature map: B×C×C, divided by the number of positions."""
    features = tf.cast(features, tf.float32)
    gram = tf.linalg.einsum("bijc,bijd->bcd", features, features)
    shape = tf.shape(features)
    positions = tf.cast(shape[1] * shape[2], tf.float32)
    return gram / positions


def content_loss(features: list[tf.Tensor], targets: list[tf.Tensor]) -> tf.Tensor:
    """Mean squared feature difference, averaged over the content layers."""
    terms = [
        tf.reduce_mean(tf.square(tf.cast(f, tf.float32) - t)) for f, t in zip(features, targets)
    ]
    return tf.add_n(terms) / len(terms)


def style_loss(
    features: list[tf.Tensor],
    target_grams: list[tf.Tensor],
    layer_weights: Sequence[float] | tf.Tensor,
) -> tf.Tensor:
    """Weighted mean squared Gram difference over the style layers (weights sum to 1)."""
    terms = [tf.reduce_mean(tf.square(gram_matrix(f) - g)) for f, g in zip(features, target_grams)]
    return tf.reduce_sum(tf.stack(terms) * tf.convert_to_tensor(layer_weights, tf.float32))


def total_variation_loss(image: tf.Tensor) -> tf.Tensor:
    """Sum of absolute differences between neighbouring pixels of a B×H×W×3 image, per image."""
    return tf.reduce_sum(tf.image.total_variation(image))
