"""The optimisation loop: Gatys et al.'s objective minimised over the pixels of the image."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from nst_engine.errors import OutOfMemory
from nst_engine.images import output_size, resize
from nst_engine.model import VGG19Features
from nst_engine.options import Losses, Progress, StyleOptions, StyleResult
from nst_engine.weights import default_weights

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Progress], None]
StopCheck = Callable[[], bool]

# Style targets kept per loaded model (each a few MB at most).
GRAM_CACHE_SIZE = 16
# Traced step functions kept per loaded model (one per image size in use).
COMPILED_CACHE_SIZE = 32
# Adam's second-moment decay: Keras' default, as in the tutorial.
_BETA_2 = 0.999
# Early stopping compares the loss with its value this many steps ago.
_PATIENCE = 20
# BT.601 luma and the YIQ chroma axes, for colour preservation.
_RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]],
    dtype=np.float32,
)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)


def load_model(weights: str | None = None, *, seed: int = 0) -> VGG19Features:
    """Load VGG19 once: ``imagenet`` (download + cache), a path to the no-top .h5, or ``random``."""
    return VGG19Features(weights or default_weights(), seed=seed)


def stylize(
    content: np.ndarray,
    style: np.ndarray | Sequence[np.ndarray],
    options: StyleOptions | None = None,
    *,
    model: VGG19Features | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> StyleResult:
    """Repaint ``content`` in the style of ``style`` (one image or several to blend).

    Images are uint8 H×W×3 RGB arrays in [0, 255]; so is the result's image, whose longest side
    is ``options.max_size`` at most. ``on_progress`` is called after every step; ``should_stop``
    before every step, and a True ends the job with the image as it stands.
    """
    started = time.perf_counter()
    options = options or StyleOptions()
    styles = [style] if isinstance(style, np.ndarray) else list(style)
    if not styles:
        raise ValueError("at least one style image is needed")
    blend = options.style_blend or (1.0,) * len(styles)
    if len(blend) != len(styles):
        raise ValueError(f"style_blend has {len(blend)} weights for {len(styles)} style images")
    model = model or load_model()

    height, width = content.shape[:2]
    out_w, out_h = output_size(width, height, options.max_size)
    content_px = _to_unit(resize(content, out_w, out_h))
    style_long = max(32, round(options.style_scale * max(out_w, out_h)))
    styles_px = [_to_unit(_resize_long_side(s, style_long)) for s in styles]
    if options.preserve_colors:
        styles_px = [_luminance_like(s, content_px) for s in styles_px]
        target_px = _gray(_yiq(content_px)[..., 0])
    else:
        target_px = content_px

    run = _Run(model, options, blend, styles_px, on_progress, should_stop, started)
    try:
        image, history, cancelled, converged = run.optimise(target_px)
    except MemoryError:
        raise OutOfMemory() from None
    except Exception as err:
        # TensorFlow's ResourceExhaustedError, or oneDNN's failed allocation (which TensorFlow
        # reports as AbortedError), without importing TensorFlow at module level.
        name = type(err).__name__
        if name == "ResourceExhaustedError" or (
            name == "AbortedError" and "could not create a memory object" in str(err)
        ):
            log.warning("out of memory at %dx%d: %s", out_w, out_h, str(err).splitlines()[0])
            raise OutOfMemory() from None
        raise
    if options.preserve_colors:
        image = _with_chroma_of(image, content_px)
    result_losses = history[-1] if history else Losses(0.0, 0.0, 0.0)
    seconds = time.perf_counter() - started
    log.info(
        "stylized %dx%d in %d steps, %.1fs (loss %.4g, weights %s)",
        out_w,
        out_h,
        len(history),
        seconds,
        result_losses.total,
        model.label,
    )
    return StyleResult(
        image=_to_uint8(image),
        steps=len(history),
        seconds=seconds,
        losses=result_losses,
        history=tuple(history),
        cancelled=cancelled,
        converged=converged,
        weights=model.label,
    )


@dataclass
class _Run:
    model: VGG19Features
    options: StyleOptions
    blend: Sequence[float]
    styles_px: list[np.ndarray]
    on_progress: ProgressCallback | None
    should_stop: StopCheck | None
    started: float

    def optimise(self, target_px: np.ndarray) -> tuple[np.ndarray, list[Losses], bool, bool]:
        import tensorflow as tf

        opts = self.options
        layers = tuple(dict.fromkeys((*opts.style_layers, *opts.content_layers)))
        extractor = self.model.extractor(layers, opts.precision)
        n_style = len(opts.style_layers)
        layer_weights = opts.style_layer_weights or (1.0,) * n_style
        layer_weights = tf.constant(np.array(layer_weights) / sum(layer_weights), tf.float32)

        coarse_steps = round(opts.steps * opts.coarse_fraction)
        plan = []
        if coarse_steps:
            h, w = target_px.shape[:2]
            plan.append(((max(32, h // 2), max(32, w // 2)), coarse_steps))
        plan.append((target_px.shape[:2], opts.steps - coarse_steps))

        if opts.init == "noise":
            rng = np.random.default_rng(opts.seed)
            image_px = rng.uniform(0, 1, target_px.shape).astype(np.float32)
        else:
            image_px = target_px
        weights = tf.constant(
            [opts.effective_content_weight, opts.effective_style_weight, opts.tv_weight], tf.float32
        )
        adam = tf.constant([opts.learning_rate, opts.beta_1, _BETA_2, opts.epsilon], tf.float32)
        history: list[Losses] = []
        best_window: list[float] = []
        done = 0
        for (h, w), steps in plan:
            # At a coarse level the artwork shrinks by the same factor, so its brush strokes
            # keep their size relative to the picture.
            style_grams = self._style_grams(extractor, n_style, h / target_px.shape[0])
            image = tf.Variable(tf.image.resize(image_px[None], (h, w)))
            target = tf.image.resize(target_px[None], (h, w))
            content_targets = [tf.cast(f, tf.float32) for f in extractor(target)[n_style:]]
            if opts.optimizer == "lbfgs":
                targets = (style_grams, content_targets, layer_weights, weights)
                stopped = self._lbfgs(extractor, n_style, image, steps, targets, history)
                if stopped:
                    return image.numpy()[0], history, True, False
                done = len(history)
                image_px = image.numpy()[0]
                continue
            step_fn = self._compiled(_step_function, extractor, n_style, (h, w))
            m = tf.Variable(tf.zeros_like(image))
            v = tf.Variable(tf.zeros_like(image))
            t = tf.Variable(0.0)
            for _ in range(steps):
                if self.should_stop is not None and self.should_stop():
                    return image.numpy()[0], history, True, False
                c, s, tv = step_fn(
                    image, m, v, t, style_grams, content_targets, layer_weights, weights, adam
                )
                losses = Losses(float(c), float(s), float(tv))
                history.append(losses)
                done += 1
                self._report(done, losses, image)
                best_window.append(losses.total)
                if self._converged(best_window):
                    return image.numpy()[0], history, False, True
            image_px = image.numpy()[0]
        return image_px, history, False, False

    def _lbfgs(self, extractor, n_style: int, image, steps: int, targets, history) -> bool:
        """SciPy's L-BFGS-B on the pixels (bounded to [0, 1]); True if should_stop ended it."""
        import tensorflow as tf
        from scipy.optimize import Bounds, minimize

        loss_and_grad = self._compiled(
            _loss_and_grad_function, extractor, n_style, tuple(image.shape[1:3])
        )
        shape = tuple(image.shape)
        last: list[Losses] = []
        stopped = False

        def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
            image.assign(tf.constant(x.reshape(shape), tf.float32))
            c, s, tv, grad = loss_and_grad(image, *targets)
            last[:] = [Losses(float(c), float(s), float(tv))]
            return float(c + s + tv), grad.numpy().astype(np.float64).ravel()

        def callback(intermediate_result) -> None:
            nonlocal stopped
            image.assign(tf.constant(intermediate_result.x.reshape(shape), tf.float32))
            history.append(last[0])
            self._report(len(history), last[0], image)
            if self.should_stop is not None and self.should_stop():
                stopped = True
                raise StopIteration

        x0 = image.numpy().astype(np.float64).ravel()
        result = minimize(
            fun,
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=Bounds(0.0, 1.0),
            callback=callback,
            options={"maxiter": steps},
        )
        image.assign(tf.constant(result.x.reshape(shape), tf.float32))
        return stopped

    def _compiled(self, make, extractor, n_style: int, size: tuple[int, int]):
        """One traced tf.function per loaded model, layer choice and image size, reused by
        every job of that size (tracing costs about a second; re-runs and tiny jobs would
        spend most of their time on it). Kept per size: one trace relaxed to any size failed
        in the gradient of the Adam state."""
        key = (make.__name__, extractor, n_style, size)
        return _lru(self.model.compiled, key, lambda: make(extractor, n_style), COMPILED_CACHE_SIZE)

    def _style_grams(self, extractor, n_style: int, scale: float) -> list:
        """The blended Gram targets of the style images, resized by ``scale``; a re-run on the
        same artwork (Stronger / Weaker) finds them cached and skips the style's forward passes."""
        key = (
            extractor,
            scale,
            tuple(self.blend),
            tuple(hashlib.blake2b(s.tobytes(), digest_size=16).digest() for s in self.styles_px),
            tuple(s.shape for s in self.styles_px),
        )
        return _lru(
            self.model.gram_cache,
            key,
            lambda: self._blend_grams(extractor, n_style, scale),
            GRAM_CACHE_SIZE,
        )

    def _blend_grams(self, extractor, n_style: int, scale: float) -> list:
        import tensorflow as tf

        total_weight = float(sum(self.blend))
        blended = None
        for style_px, weight in zip(self.styles_px, self.blend):
            if scale != 1.0:
                h, w = style_px.shape[:2]
                size = (max(32, round(h * scale)), max(32, round(w * scale)))
                style_px = tf.image.resize(style_px[None], size, antialias=True)[0].numpy()
            feats = extractor(tf.constant(style_px[None]))
            grams = [_gram(f) * (weight / total_weight) for f in feats[:n_style]]
            blended = grams if blended is None else [a + b for a, b in zip(blended, grams)]
        return blended

    def _report(self, done: int, losses: Losses, image) -> None:
        if self.on_progress is None:
            return
        opts = self.options

        def snapshot() -> np.ndarray:
            return _to_uint8(_resize_long_side_unit(image.numpy()[0], opts.preview_size))

        preview = None
        if opts.preview_every and (done % opts.preview_every == 0 or done == opts.steps):
            preview = snapshot()
        elapsed = time.perf_counter() - self.started
        self.on_progress(Progress(done, opts.steps, losses, elapsed, preview, snapshot))

    def _converged(self, totals: list[float]) -> bool:
        tol = self.options.early_stop_tolerance
        if not tol or len(totals) <= _PATIENCE:
            return False
        before, now = totals[-1 - _PATIENCE], totals[-1]
        return before - now < tol * abs(before)


def _lru(cache: OrderedDict, key: object, make: Callable[[], object], limit: int):
    """``cache[key]``, made first if missing (the least recently used entries beyond ``limit``
    are dropped)."""
    if key in cache:
        cache.move_to_end(key)
    else:
        cache[key] = make()
        while len(cache) > limit:
            cache.popitem(last=False)
    return cache[key]


def _objective(extractor, n_style, image, style_grams, content_targets, layer_weights, weights):
    """The weighted (content, style, tv) terms of the image."""
    import tensorflow as tf

    from nst_engine.losses import content_loss, gram_matrix, total_variation_loss

    feats = extractor(image)
    style_terms = [
        tf.reduce_mean(tf.square(gram_matrix(f) - g)) for f, g in zip(feats[:n_style], style_grams)
    ]
    style = weights[1] * tf.reduce_sum(tf.stack(style_terms) * layer_weights)
    content = weights[0] * content_loss(feats[n_style:], content_targets)
    tv = weights[2] * total_variation_loss(image)
    return content, style, tv


def _loss_and_grad_function(extractor, n_style: int):
    """Compiled (content, style, tv, gradient) of the image, for L-BFGS."""
    import tensorflow as tf

    @tf.function
    def loss_and_grad(image, style_grams, content_targets, layer_weights, weights):
        with tf.GradientTape() as tape:
            content, style, tv = _objective(
                extractor, n_style, image, style_grams, content_targets, layer_weights, weights
            )
            loss = content + style + tv
        return content, style, tv, tape.gradient(loss, image)

    return loss_and_grad


def _step_function(extractor, n_style: int):
    """One compiled Adam step on the image variable; returns the weighted (content, style, tv)."""
    import tensorflow as tf

    @tf.function
    def step(image, m, v, t, style_grams, content_targets, layer_weights, weights, adam):
        lr, beta_1, beta_2, epsilon = adam[0], adam[1], adam[2], adam[3]
        with tf.GradientTape() as tape:
            content, style, tv = _objective(
                extractor, n_style, image, style_grams, content_targets, layer_weights, weights
            )
            loss = content + style + tv
        grad = tape.gradient(loss, image)
        t.assign_add(1.0)
        m.assign_add((grad - m) * (1.0 - beta_1))
        v.assign_add((tf.square(grad) - v) * (1.0 - beta_2))
        alpha = lr * tf.sqrt(1.0 - tf.pow(beta_2, t)) / (1.0 - tf.pow(beta_1, t))
        image.assign(tf.clip_by_value(image - alpha * m / (tf.sqrt(v) + epsilon), 0.0, 1.0))
        return content, style, tv

    return step


def _gram(features):
    from nst_engine.losses import gram_matrix

    return gram_matrix(features)


def _to_unit(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def _resize_long_side(image: np.ndarray, long_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = long_side / max(h, w)
    return resize(image, max(1, round(w * scale)), max(1, round(h * scale)))


def _resize_long_side_unit(image: np.ndarray, long_side: int) -> np.ndarray:
    return _to_unit(_resize_long_side(_to_uint8(image), long_side))


def _yiq(image: np.ndarray) -> np.ndarray:
    return image @ _RGB_TO_YIQ.T


def _gray(luma: np.ndarray) -> np.ndarray:
    return np.repeat(np.clip(luma, 0, 1)[..., None], 3, axis=-1).astype(np.float32)


def _luminance_like(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The style's luminance, matched to the content's mean and spread, as a gray RGB image."""
    s, c = _yiq(style)[..., 0], _yiq(content)[..., 0]
    matched = (s - s.mean()) / (s.std() + 1e-6) * c.std() + c.mean()
    return _gray(matched)


def _with_chroma_of(image: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The image's luminance with the content's chroma (I, Q), back in RGB."""
    yiq = _yiq(content)
    yiq[..., 0] = _yiq(image)[..., 0]
    return np.clip(yiq @ _YIQ_TO_RGB.T, 0, 1)
