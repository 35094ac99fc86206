"""The optimisers that run one resolution level's steps on the pixels, and the objective they
minimise: Gatys et al.'s weighted content, style and total-variation terms, plus an animation's
temporal term. Each optimiser's step is one traced `tf.function` (`nst_engine.transfer` keeps
them for the next job)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from nst_engine.options import Losses, StyleOptions

# Adam's second-moment decay: Keras' default, as in the tutorial.
_BETA_2 = 0.999


def objective(extractor, n_style, image, style_grams, content_targets, layer_weights, weights):
    """The weighted (content, style, tv) terms of the image."""
    from nst_engine.losses import content_loss, style_loss, total_variation_loss

    feats = extractor(image)
    style = weights[1] * style_loss(feats[:n_style], style_grams, layer_weights)
    content = weights[0] * content_loss(feats[n_style:], content_targets)
    tv = weights[2] * total_variation_loss(image)
    return content, style, tv


def temporal_loss(image, temporal):
    """The weighted temporal term: ``temporal`` is () (no term: 0) or (target, mask, weight)."""
    import tensorflow as tf

    if not temporal:
        return tf.constant(0.0)
    held, mask, weight = temporal
    return weight * tf.reduce_sum(mask * tf.square(image - held))


def loss_and_grad_function(extractor, n_style: int):
    """Compiled (content, style, tv, gradient) of the image, for L-BFGS."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True, autograph=False)
    def loss_and_grad(image, style_grams, content_targets, layer_weights, weights, temporal=()):
        with tf.GradientTape() as tape:
            tape.watch(image)
            content, style, tv = objective(
                extractor, n_style, image, style_grams, content_targets, layer_weights, weights
            )
            held = temporal_loss(image, temporal)
            loss = content + style + tv + held
        return content, style, tv, held, tape.gradient(loss, image)

    return loss_and_grad


def step_function(extractor, n_style: int):
    """One compiled Adam step on the image variable; returns the weighted (content, style, tv)."""
    import tensorflow as tf

    @tf.function(autograph=False)
    def step(
        image, m, v, t, style_grams, content_targets, layer_weights, weights, adam, temporal=()
    ):
        lr, beta_1, beta_2, epsilon = adam[0], adam[1], adam[2], adam[3]
        with tf.GradientTape() as tape:
            content, style, tv = objective(
                extractor, n_style, image, style_grams, content_targets, layer_weights, weights
            )
            held = temporal_loss(image, temporal)
            loss = content + style + tv + held
        grad = tape.gradient(loss, image)
        t.assign_add(1.0)
        m.assign_add((grad - m) * (1.0 - beta_1))
        v.assign_add((tf.square(grad) - v) * (1.0 - beta_2))
        alpha = lr * tf.sqrt(1.0 - tf.pow(beta_2, t)) / (1.0 - tf.pow(beta_1, t))
        image.assign(tf.clip_by_value(image - alpha * m / (tf.sqrt(v) + epsilon), 0.0, 1.0))
        return content, style, tv, held

    return step


@dataclass(frozen=True)
class Level:
    """One resolution level: what a solver needs to run its steps on the image there."""

    # The image being optimised, a 1×H×W×3 float32 tf.Variable in [0, 1].
    image: object
    steps: int
    # Targets and weights, in the order `objective` takes them after the image.
    targets: tuple
    # The solver's traced function of the image and `targets` (kept by `nst_engine.transfer`).
    compiled: Callable[..., object]
    # () or the temporal term's (target, mask, weight) tensors at this level's size.
    temporal: tuple = ()


class Solver(Protocol):
    """An optimiser that runs a level's steps; ``proceed`` before each step (False: end the
    level), ``record`` after each with its losses."""

    # Makes the compiled function of the image that `solve` calls: make(extractor, n_style).
    make: Callable[..., Callable[..., object]]
    # Whether that function serves every image size (else one is made per size).
    any_size: bool

    def solve(
        self, level: Level, proceed: Callable[[], bool], record: Callable[[Losses], None]
    ) -> None: ...


@dataclass
class Adam:
    """The tutorial's Adam on the pixels, clipped to [0, 1], in one compiled step."""

    options: StyleOptions
    make = staticmethod(step_function)
    any_size = False

    def solve(self, level: Level, proceed, record) -> None:
        import tensorflow as tf

        opts, image = self.options, level.image
        m = tf.Variable(tf.zeros_like(image))
        v = tf.Variable(tf.zeros_like(image))
        t = tf.Variable(0.0)
        for i in range(level.steps):
            if not proceed():
                return
            lr = opts.learning_rate_at(i, level.steps)
            adam = tf.constant([lr, opts.beta_1, _BETA_2, opts.epsilon], tf.float32)
            c, s, tv, held = level.compiled(image, m, v, t, *level.targets, adam, level.temporal)
            record(Losses(float(c), float(s), float(tv), float(held)))


@dataclass
class LBFGS:
    """SciPy's L-BFGS-B on the pixels, bounded to [0, 1]; one step is one iteration."""

    options: StyleOptions
    make = staticmethod(loss_and_grad_function)
    any_size = True

    def solve(self, level: Level, proceed, record) -> None:
        import tensorflow as tf

        image = level.image
        shape = tuple(image.shape)
        last: list[Losses] = []
        scale: list[float] = []

        def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
            pixels = tf.constant(x.reshape(shape), tf.float32)
            c, s, tv, held, grad = level.compiled(pixels, *level.targets, level.temporal)
            last[:] = [Losses(float(c), float(s), float(tv), float(held))]
            gradient = grad.numpy().astype(np.float64).ravel()
            if not scale:
                scale.append(_first_step_scale(gradient, self.options.lbfgs_first_step))
            return float(c + s + tv + held) * scale[0], gradient * scale[0]

        def iterated(x: np.ndarray) -> bool:
            image.assign(tf.constant(x.reshape(shape), tf.float32))
            record(last[0])
            return proceed()

        if not proceed():
            return
        x = lbfgsb_in_unit_box(fun, image.numpy().ravel(), level.steps, iterated)
        image.assign(tf.constant(x.reshape(shape), tf.float32))


def _first_step_scale(gradient: np.ndarray, first_step: float | None) -> float:
    """What the loss is multiplied by so that L-BFGS-B's first trial step, minus the gradient
    (its first guess of the curvature is 1), moves a pixel by ``first_step`` on average; later
    steps take their curvature from the steps before, whatever the scale. None: 1."""
    if first_step is None:
        return 1.0
    rms = float(np.sqrt(np.mean(np.square(gradient))))
    return first_step / rms if rms > 0 else 1.0


# `scipy.optimize.minimize`'s defaults for L-BFGS-B: history pairs, the relative reduction of the
# loss that counts as converged (ftol / machine epsilon), the projected-gradient tolerance and
# the line search's most evaluations.
_LBFGS_PAIRS = 10
_LBFGS_FACTR = 1e7
_LBFGS_PGTOL = 1e-5
_LBFGS_MAXLS = 20


def lbfgsb_in_unit_box(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    maxiter: int,
    iterated: Callable[[np.ndarray], bool],
) -> np.ndarray:
    """SciPy's L-BFGS-B with every variable in [0, 1], for at most ``maxiter`` iterations:
    ``fun(x)`` gives the loss and its gradient (float64, x's shape); ``iterated(x)`` is called
    after each iteration and a False ends the run. Returns the last iterate (float64, flat).

    `scipy.optimize.minimize` drives the same compiled routine the same way, but turns the
    bounds into a Python list of a pair per variable and back, and loops over them in Python:
    1.3 s per call at 256×256 px and 3.5 s at 512×512 (2-core EPYC), where a whole Stronger takes
    9 s on that CPU and a GPU's steps take milliseconds. Here the bounds are three arrays.
    """
    from scipy.optimize import _lbfgsb

    n, m = x0.size, _LBFGS_PAIRS
    x = np.clip(np.asarray(x0, np.float64).ravel(), 0.0, 1.0)
    lower, upper = np.zeros(n), np.ones(n)
    both_bounds = np.full(n, 2, np.int32)  # L-BFGS-B's code for "a lower and an upper bound"
    f = np.array(0.0)
    g = np.zeros(n)
    wa = np.zeros(2 * m * n + 5 * n + 11 * m * m + 8 * m)
    iwa = np.zeros(3 * n, np.int32)
    task, ln_task = np.zeros(2, np.int32), np.zeros(2, np.int32)
    lsave, isave, dsave = np.zeros(4, np.int32), np.zeros(44, np.int32), np.zeros(29)
    iterations = 0
    while True:
        g = g.astype(np.float64)
        _lbfgsb.setulb(
            m, x, lower, upper, both_bounds, f, g, _LBFGS_FACTR, _LBFGS_PGTOL,
            wa, iwa, task, lsave, isave, dsave, _LBFGS_MAXLS, ln_task,
        )  # fmt: skip
        if task[0] == _WANTS_LOSS:
            f, g = fun(x)
        elif task[0] == _NEW_ITERATE:
            iterations += 1
            if not iterated(x) or iterations >= maxiter:
                task[:] = _STOP
        else:
            return x


# setulb's task codes: it wants the loss and gradient at x; it has a new iterate; stop now.
_WANTS_LOSS = 3
_NEW_ITERATE = 1
_STOP = (5, 504)


SOLVERS: dict[str, type] = {"adam": Adam, "lbfgs": LBFGS}
