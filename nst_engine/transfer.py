"""The optimisation loop: Gatys et al.'s objective minimised over the pixels of the image."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from nst_engine.errors import OutOfMemory
from nst_engine.images import output_size, resize
from nst_engine.model import VGG19Features, resolve_precision
from nst_engine.options import Losses, Progress, StyleOptions, StyleResult
from nst_engine.solvers import SOLVERS, Level, Solver
from nst_engine.weights import default_weights

log = logging.getLogger(__name__)

# What oneDNN says, inside TensorFlow's AbortedError, when an allocation fails (a worker capped
# by NST_WORKER_MEMORY_MB): the one or the other, depending on where it failed.
_ONEDNN_OUT_OF_MEMORY = ("could not create a memory object", "could not create a primitive")

ProgressCallback = Callable[[Progress], None]
StopCheck = Callable[[], bool]

# Early stopping compares the loss with its value this many steps ago.
_PATIENCE = 20
# BT.601 luma and the YIQ chroma axes, for colour preservation.
_RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]],
    dtype=np.float32,
)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)


@dataclass(frozen=True)
class TemporalTerm:
    """Keeps the picture close to a target where a mask says so (animations: the previous
    stylized frame warped along the optical flow; see `nst_engine.animation`)."""

    # float32 H×W×3 in [0, 1] (or uint8 in [0, 255]), the size of the content.
    target: np.ndarray
    # float32 H×W in [0, 1]: how much each pixel is held to the target (0: free).
    mask: np.ndarray
    # Multiplies the sum over pixels of mask × squared difference (pixels in [0, 1]).
    weight: float


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
    init_image: np.ndarray | None = None,
    temporal: TemporalTerm | None = None,
) -> StyleResult:
    """Repaint ``content`` in the style of ``style`` (one image or several to blend).

    Images are uint8 H×W×3 RGB arrays in [0, 255]; so is the result's image, whose longest side
    is ``options.max_size`` at most. ``on_progress`` is called after every step; ``should_stop``
    before every step, and a True ends the job with the image as it stands. ``init_image``
    (float32 H×W×3 in [0, 1] or uint8, the content's size) replaces the start the options
    describe; ``temporal`` adds a term holding the picture to a target (animations).
    """
    started = time.perf_counter()
    options = options or StyleOptions()
    styles = [style] if isinstance(style, np.ndarray) else list(style)
    if not styles:
        raise ValueError("at least one style image is needed")
    blend = tuple(options.style_blend or (1.0,) * len(styles))
    if len(blend) != len(styles):
        raise ValueError(f"style_blend has {len(blend)} weights for {len(styles)} style images")
    model = model or load_model()

    height, width = content.shape[:2]
    out_w, out_h = output_size(width, height, options.max_size)
    content_px = _to_unit(resize(content, out_w, out_h))
    style_long = max(32, round(options.style_scale * max(out_w, out_h)))
    styles_px = tuple(_to_unit(_resize_long_side(s, style_long)) for s in styles)
    gray = options.preserve_colors
    if gray:
        styles_px = tuple(_luminance_like(s, content_px) for s in styles_px)
        target_px = _gray(_yiq(content_px)[..., 0])
    else:
        target_px = content_px

    try:
        run = _Run(
            model=model,
            options=options,
            target_px=target_px,
            styles_px=styles_px,
            blend=blend,
            start_px=(
                _start(options, target_px, styles_px, blend)
                if init_image is None
                else _as_start(init_image, out_w, out_h, gray)
            ),
            temporal=_working_temporal(temporal, out_w, out_h, gray),
            on_progress=on_progress,
            should_stop=should_stop,
            started=started,
        )
        outcome = run.optimise()
    except MemoryError:
        raise OutOfMemory() from None
    except Exception as err:
        # TensorFlow's ResourceExhaustedError, or oneDNN's failed allocation (which TensorFlow
        # reports as AbortedError), without importing TensorFlow at module level.
        name = type(err).__name__
        if name == "ResourceExhaustedError" or (
            name == "AbortedError" and any(line in str(err) for line in _ONEDNN_OUT_OF_MEMORY)
        ):
            log.warning("out of memory at %dx%d: %s", out_w, out_h, str(err).splitlines()[0])
            raise OutOfMemory() from None
        raise
    image, history = outcome.image, outcome.history
    if options.preserve_colors:
        image = _with_chroma_of(image, content_px)
    result_losses = history[-1] if history else Losses(0.0, 0.0, 0.0)
    seconds = time.perf_counter() - started
    log.info(
        "stylized %dx%d in %d steps, %.1fs (loss %.4g, weights %s, %s)",
        out_w,
        out_h,
        len(history),
        seconds,
        result_losses.total,
        model.label,
        resolve_precision(options.precision),
    )
    return StyleResult(
        image=_to_uint8(image),
        steps=len(history),
        seconds=seconds,
        losses=result_losses,
        history=tuple(history),
        cancelled=outcome.cancelled,
        converged=outcome.converged,
        weights=model.label,
    )


@dataclass
class _Outcome:
    """How the optimisation ended."""

    # float32 H×W×3 in [0, 1], at full size.
    image: np.ndarray
    history: list[Losses]
    cancelled: bool
    converged: bool


@dataclass(frozen=True, kw_only=True)
class _Run:
    """One optimisation, built with everything it needs; `optimise` runs it once."""

    model: VGG19Features
    options: StyleOptions
    # The picture to match at the output's size: float32 H×W×3 in [0, 1] (its luminance as
    # grey when colours are preserved).
    target_px: np.ndarray
    # The artworks at their working size (float32 H×W×3 in [0, 1]) and their blend weights.
    styles_px: tuple[np.ndarray, ...]
    blend: tuple[float, ...]
    # Where the optimisation starts: float32 H×W×3 in [0, 1], the target's size.
    start_px: np.ndarray
    # An animation's temporal term at the target's size (its target float32 in [0, 1]), or None.
    temporal: TemporalTerm | None
    on_progress: ProgressCallback | None
    should_stop: StopCheck | None
    # time.perf_counter() when the job started (progress counts its seconds from there).
    started: float

    def optimise(self) -> _Outcome:
        import tensorflow as tf

        full = self.target_px.shape[:2]
        image_px = self.start_px
        history: list[Losses] = []
        cancelled = converged = False
        coarser_target = None
        for depth, steps in _plan(self.options.level_steps(), full):
            solver, level, target = self._level(depth, steps, image_px, coarser_target)
            window: list[float] = []

            def proceed(window=window) -> bool:
                nonlocal cancelled, converged
                cancelled = self.should_stop is not None and self.should_stop()
                converged = self._converged(window)
                return not (cancelled or converged)

            def record(losses: Losses, image=level.image, window=window) -> None:
                history.append(losses)
                window.append(losses.total)
                self._report(len(history), losses, image, max(full))

            solver.solve(level, proceed, record)
            image_px = level.image.numpy()[0]
            coarser_target = target
            if cancelled:
                break
        if image_px.shape[:2] != full:
            # Cancelled before the full-size level: hand back the picture at the size asked for.
            image_px = tf.image.resize(image_px[None], full).numpy()[0]
        return _Outcome(np.clip(image_px, 0, 1), history, cancelled, converged)

    def _level(self, depth: int, steps: int, image_px: np.ndarray, coarser_target):
        """The solver, the level ``depth`` halvings below full size that it runs ``steps`` on
        (starting from ``image_px``), and the target at that level's size."""
        import tensorflow as tf

        opts = self.options
        layers = tuple(dict.fromkeys((*opts.style_layers, *opts.content_layers)))
        n_style = len(opts.style_layers)
        layer_weights = opts.style_layer_weights or (1.0,) * n_style
        layer_weights = tf.constant(np.array(layer_weights) / sum(layer_weights), tf.float32)
        h, w = _level_size(self.target_px.shape[:2], depth)
        optimizer = opts.optimizer if depth == 0 else opts.coarse_optimizer or opts.optimizer
        # L-BFGS's line search compares losses closely and stalls on bfloat16's rounding,
        # so its levels compute in float32 (cheap at the coarse levels it is used for).
        precision = opts.precision if optimizer == "adam" else "float32"
        extractor = self.model.extractor(layers, precision)
        # At a coarse level the artwork shrinks by the same factor, so its brush strokes
        # keep their size relative to the picture.
        style_grams = self._style_grams(extractor, n_style, h / self.target_px.shape[0])
        target = tf.image.resize(self.target_px[None], (h, w))
        content_targets = [tf.cast(f, tf.float32) for f in extractor(target)[n_style:]]
        # An animation's temporal term at this level's size; the step function is traced
        # once more for it (another argument structure), and kept like the plain one.
        temporal = ()
        if self.temporal is not None:
            temporal = (
                tf.image.resize(self.temporal.target[None], (h, w)),
                tf.image.resize(self.temporal.mask[None, :, :, None], (h, w)),
                tf.constant(self.temporal.weight, tf.float32),
            )
        tv = opts.tv_weight * opts.tv_level_scale**depth
        # The picture's full size decides the weight at every level, as the strokes' size does.
        style_weight = opts.style_weight_at(max(self.target_px.shape[:2]))
        weights = tf.constant([opts.effective_content_weight, style_weight, tv], tf.float32)
        solver: Solver = SOLVERS[optimizer](opts)
        level = Level(
            image=tf.Variable(self._level_start(image_px, target, coarser_target)),
            steps=steps,
            targets=(style_grams, content_targets, layer_weights, weights),
            compiled=self._compiled(solver, extractor, n_style, (h, w)),
            temporal=temporal,
        )
        return solver, level, target

    def _level_start(self, image_px: np.ndarray, target, coarser_target):
        """The start of a level, 1×h×w×3: the picture so far at this level's size and, with
        `keep_detail`, the photo's detail that the coarser level could not hold added back
        (the target at this size less the coarser target enlarged), so that the fine level
        starts sharp instead of from a blurred enlargement."""
        import tensorflow as tf

        size = tuple(target.shape[1:3])
        start = tf.image.resize(image_px[None], size)
        if self.options.keep_detail and coarser_target is not None:
            start = start + (target - tf.image.resize(coarser_target, size))
            start = tf.clip_by_value(start, 0.0, 1.0)
        return start

    def _compiled(self, solver: Solver, extractor, n_style: int, size: tuple[int, int]):
        """One traced tf.function per loaded model, layer choice and, for Adam, image size,
        reused by every job (tracing costs about a second; re-runs and tiny jobs would spend
        most of their time on it). Adam's is kept per size: one trace relaxed to any size
        failed in the gradient of its state. L-BFGS's takes the image as a plain tensor and is
        traced once for any size, so a worker painting many sizes holds one graph, not one a
        size (bench/soak.py: 30% more memory after 300 jobs of random sizes otherwise)."""
        make = solver.make
        key = (make.__name__, extractor, n_style, None if solver.any_size else size)
        return self.model.cache.traced.get(key, lambda: make(extractor, n_style))

    def _style_grams(self, extractor, n_style: int, scale: float) -> list:
        """The blended Gram targets of the style images, resized by ``scale``; a re-run on the
        same artwork (Stronger / Weaker) finds them cached and skips the style's forward passes."""
        key = (
            extractor,
            scale,
            self.blend,
            tuple(hashlib.blake2b(s.tobytes(), digest_size=16).digest() for s in self.styles_px),
            tuple(s.shape for s in self.styles_px),
        )
        return self.model.cache.grams.get(key, lambda: self._blend_grams(extractor, n_style, scale))

    def _blend_grams(self, extractor, n_style: int, scale: float) -> list:
        import tensorflow as tf

        from nst_engine.losses import gram_matrix

        total_weight = float(sum(self.blend))
        blended = None
        for style_px, weight in zip(self.styles_px, self.blend):
            if scale != 1.0:
                h, w = style_px.shape[:2]
                size = (max(32, round(h * scale)), max(32, round(w * scale)))
                style_px = tf.image.resize(style_px[None], size, antialias=True)[0].numpy()
            feats = extractor(tf.constant(style_px[None]))
            grams = [gram_matrix(f) * (weight / total_weight) for f in feats[:n_style]]
            blended = grams if blended is None else [a + b for a, b in zip(blended, grams)]
        return blended

    def _report(self, done: int, losses: Losses, image, full_side: int) -> None:
        if self.on_progress is None:
            return
        opts = self.options
        # A preview is never larger than the picture will be (a coarse level is scaled up to it).
        side = min(opts.preview_size, full_side)

        def snapshot() -> np.ndarray:
            return _to_uint8(_resize_long_side_unit(image.numpy()[0], side))

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


def _level_size(full: tuple[int, int], depth: int) -> tuple[int, int]:
    """(height, width) of the level ``depth`` halvings below full size (VGG needs 32 px)."""
    return tuple(max(32, n // 2**depth) for n in full)  # type: ignore[return-value]


def _plan(per_level: Sequence[int], full: tuple[int, int]) -> list[tuple[int, int]]:
    """(halvings below full size, steps) per level, coarsest first. A level given no steps is
    skipped, and one no smaller than the next (a small picture meets VGG's 32 px floor) hands
    its steps on to it: the same size twice would only pay a level's set-up twice."""
    plan: list[tuple[int, int]] = []
    carried = 0
    levels = len(per_level)
    for i, steps in enumerate(per_level):
        depth = levels - 1 - i
        steps += carried
        carried = 0
        if depth > 0 and _level_size(full, depth) == _level_size(full, depth - 1):
            carried = steps
        elif steps:
            plan.append((depth, steps))
    return plan


def _as_start(image: np.ndarray, width: int, height: int, gray: bool) -> np.ndarray:
    """A caller's start or target image as float32 H×W×3 in [0, 1] at the working size (as
    luminance when colours are preserved, like the content)."""
    if image.dtype == np.uint8:
        unit = _to_unit(resize(image, width, height))
    else:
        unit = np.clip(np.asarray(image, np.float32), 0, 1)
        if unit.shape[:2] != (height, width):
            unit = _to_unit(resize(_to_uint8(unit), width, height))
    return _gray(_yiq(unit)[..., 0]) if gray else unit.astype(np.float32)


def _start(
    options: StyleOptions,
    target_px: np.ndarray,
    styles_px: Sequence[np.ndarray],
    blend: Sequence[float],
) -> np.ndarray:
    """The start the options describe at full size, float32 H×W×3 in [0, 1]."""
    rng = np.random.default_rng(options.seed)
    if options.init == "noise":
        return rng.uniform(0, 1, target_px.shape).astype(np.float32)
    start = target_px
    if options.init == "matched":
        start = _colours_like(target_px, styles_px, blend)
    if options.start_noise:
        noise = rng.uniform(-options.start_noise, options.start_noise, target_px.shape)
        start = np.clip(start + noise, 0.0, 1.0).astype(np.float32)
    return start


def _working_temporal(
    temporal: TemporalTerm | None, width: int, height: int, gray: bool
) -> TemporalTerm | None:
    """A caller's temporal term at the working size, its target float32 in [0, 1] (as
    luminance when colours are preserved) and its mask clipped to [0, 1]; None without one
    or with weight 0."""
    if temporal is None or not temporal.weight:
        return None
    mask = np.asarray(temporal.mask, np.float32)
    if mask.shape[:2] != (height, width):
        mask = np.asarray(_resize_mask(mask, height, width))
    target = _as_start(temporal.target, width, height, gray)
    return TemporalTerm(target, np.clip(mask, 0, 1), float(temporal.weight))


def _resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    import tensorflow as tf

    return tf.image.resize(mask[None, :, :, None], (height, width)).numpy()[0, :, :, 0]


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


def _colours_like(
    image: np.ndarray, styles: Sequence[np.ndarray], blend: Sequence[float]
) -> np.ndarray:
    """The image with each RGB channel's mean and spread moved to the artworks' (blended)."""
    total = float(sum(blend))
    mean = sum(w / total * s.reshape(-1, 3).mean(0) for s, w in zip(styles, blend))
    std = sum(w / total * s.reshape(-1, 3).std(0) for s, w in zip(styles, blend))
    flat = image.reshape(-1, 3)
    matched = (image - flat.mean(0)) / (flat.std(0) + 1e-6) * std + mean
    return np.clip(matched, 0, 1).astype(np.float32)


def _with_chroma_of(image: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The image's luminance with the content's chroma (I, Q), back in RGB."""
    yiq = _yiq(content)
    yiq[..., 0] = _yiq(image)[..., 0]
    return np.clip(yiq @ _YIQ_TO_RGB.T, 0, 1)
