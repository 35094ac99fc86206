"""The TensorFlow style-transfer tutorial's loop, kept plain, as the baseline for benchmarks.

Its Gram matrix and style loss are the engine's own (`nst_engine.losses`), which compute what
the tutorial's do: Gram matrices divided by the number of positions, the mean squared
difference per layer, layers weighted equally.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from nst_engine.losses import gram_matrix, style_loss
from nst_engine.options import CONTENT_LAYERS, STYLE_LAYERS


def vgg_layers(vgg, names):
    outputs = [vgg.get_layer(name).output for name in names]
    return tf.keras.Model([vgg.input], outputs)


class StyleContentModel(tf.keras.models.Model):
    def __init__(self, vgg, style_layers, content_layers):
        super().__init__()
        self.vgg = vgg_layers(vgg, style_layers + content_layers)
        self.style_layers = style_layers
        self.content_layers = content_layers
        self.num_style_layers = len(style_layers)

    def call(self, inputs):
        inputs = inputs * 255.0
        preprocessed_input = tf.keras.applications.vgg19.preprocess_input(inputs)
        outputs = self.vgg(preprocessed_input)
        style_outputs, content_outputs = (
            outputs[: self.num_style_layers],
            outputs[self.num_style_layers :],
        )
        content_dict = dict(zip(self.content_layers, content_outputs))
        style_dict = dict(zip(self.style_layers, style_outputs))
        return {"content": content_dict, "style": style_dict}


def tutorial_loop(vgg, content: np.ndarray, style: np.ndarray, steps: int, on_step=None):
    """content/style: float32 1×H×W×3 in [0, 1]. Returns the image after `steps` steps."""
    style_layers, content_layers = list(STYLE_LAYERS), list(CONTENT_LAYERS)
    extractor = StyleContentModel(vgg, style_layers, content_layers)
    style_targets = [gram_matrix(f) for f in extractor(tf.constant(style))["style"].values()]
    content_targets = extractor(tf.constant(content))["content"]
    image = tf.Variable(content)
    opt = tf.keras.optimizers.Adam(learning_rate=0.02, beta_1=0.99, epsilon=1e-1)
    style_weight, content_weight, tv_weight = 1e-2, 1e4, 30

    def style_content_loss(outputs):
        style_outputs, content_outputs = outputs["style"], outputs["content"]
        equal = [1 / len(style_layers)] * len(style_layers)
        style = style_weight * style_loss(list(style_outputs.values()), style_targets, equal)
        content_loss = tf.add_n(
            [
                tf.reduce_mean((content_outputs[n] - content_targets[n]) ** 2)
                for n in content_outputs
            ]
        )
        content_loss *= content_weight / len(content_layers)
        return style + content_loss

    @tf.function()
    def train_step(image):
        with tf.GradientTape() as tape:
            outputs = extractor(image)
            loss = style_content_loss(outputs)
            loss += tv_weight * tf.image.total_variation(image)
        grad = tape.gradient(loss, image)
        opt.apply_gradients([(grad, image)])
        image.assign(tf.clip_by_value(image, 0.0, 1.0))

    for step in range(steps):
        train_step(image)
        if on_step:
            on_step(step)
    return image.numpy()[0]
