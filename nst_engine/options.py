"""What a caller asks for (`StyleOptions`, or a quality `Preset` of it) and what comes back
(`StyleResult`, `Progress`).

`StyleOptions` is one flat, frozen dataclass (every field is a keyword of the public API), its
fields in four groups, each checked by its own method:

    look      how the picture should look: strength, size, colours, artworks, seed, start
    schedule  how the optimiser spends its steps: steps, optimisers, levels, step sizes, precision
    expert    the objective itself: its weights and VGG19 layers
    preview   what progress reports carry: a small picture every so many steps
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np

CONTENT_LAYERS: tuple[str, ...] = ("block5_conv2",)
STYLE_LAYERS: tuple[str, ...] = (
    "block1_conv1",
    "block2_conv1",
    "block3_conv1",
    "block4_conv1",
    "block5_conv1",
)
VGG19_CONV_LAYERS: tuple[str, ...] = tuple(
    f"block{block}_conv{conv}"
    for block, convs in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
    for conv in range(1, convs + 1)
)

# The seed's weights; `strength` 5 reproduces exactly this ratio.
BASE_CONTENT_WEIGHT = 1e4
BASE_STYLE_WEIGHT = 1e-2
# Each step of `strength` multiplies the style/content ratio by 10**0.4 (about 2.5):
# strength 0 is 1/100 of the seed's ratio, strength 10 is 100 times it.
STRENGTH_DECADES_PER_STEP = 0.4
DEFAULT_STRENGTH = 5.0
# The longest side a picture may be painted at, in pixels (`max_size`).
MIN_SIZE = 32
MAX_SIZE = 4096
# `style_emphasis_per_doubling` acts between these long sides (the sizes it was measured at).
EMPHASIS_BASE_SIDE = 256
EMPHASIS_TOP_SIDE = 512

Init = Literal["content", "noise", "matched"]
Precision = Literal["auto", "float32", "bfloat16", "float16"]
Optimizer = Literal["adam", "lbfgs"]


def doublings(side: int) -> float:
    """How many times a long side of ``side`` pixels doubles `EMPHASIS_BASE_SIDE`, counted
    between it and `EMPHASIS_TOP_SIDE` (the sizes per-doubling settings were measured at)."""
    counted = math.log2(max(side, 1) / EMPHASIS_BASE_SIDE)
    return min(max(counted, 0.0), math.log2(EMPHASIS_TOP_SIDE / EMPHASIS_BASE_SIDE))


def style_weight_for_strength(strength: float) -> float:
    """The style weight that `strength` (0–10) stands for, with the content weight at 1e4."""
    return BASE_STYLE_WEIGHT * 10 ** ((strength - DEFAULT_STRENGTH) * STRENGTH_DECADES_PER_STEP)


@dataclass(frozen=True)
class StyleOptions:
    """Everything a user can tune about one style transfer. Validated on construction."""

    # --- look: how the picture should look -----------------------------------------------------
    # 0 (barely styled) … 10 (style dominates); log-scale knob over the style/content weight ratio.
    strength: float = DEFAULT_STRENGTH
    # Longest side of the output in pixels; smaller inputs are not enlarged beyond their size.
    max_size: int = 512
    # Keep the content's colours: transfer on luminance only, then restore the content's chroma.
    preserve_colors: bool = False
    # One weight per style image (normalised to sum to 1). None: equal weights.
    style_blend: tuple[float, ...] | None = None
    # Size of the style image relative to the output's longest side (0.25–4).
    style_scale: float = 1.0
    # Start from a copy of the content image, from seeded uniform noise, or from the content
    # recoloured to the artwork's per-channel mean and spread ("matched").
    init: Init = "content"
    # Seeds the noise start; the same inputs, options and seed repeat on the same machine.
    seed: int = 0
    # Seeded uniform noise of this amplitude (± on the 0–1 scale) added to a content or matched
    # start, so that each seed gives its own variation of the picture; 0: none (the plain loop).
    start_noise: float = 0.0

    # --- schedule: how the optimiser spends its steps ------------------------------------------
    # Number of optimisation steps in all, coarse levels included (progress counts to this).
    steps: int = 300
    # Optimiser: Adam (the seed's) or L-BFGS (Gatys et al.'s).
    optimizer: Optimizer = "adam"
    # Optimiser at the coarse levels (None: the same as `optimizer`).
    coarse_optimizer: Optimizer | None = None
    # Coarse-to-fine: this fraction of the steps runs below full size, first; 0 disables it.
    coarse_fraction: float = 0.0
    # Resolution levels when coarse_fraction > 0, each half the side of the next. The fraction
    # applies again below each level: 3 levels at 0.75 of 240 steps run 135 at a quarter of the
    # size, 45 at half, 60 at full size.
    levels: int = 2
    # Moving up a level, add back the photo's detail that the coarser level could not hold, so
    # the finer level starts from a sharp picture instead of a blurred enlargement.
    keep_detail: bool = False
    # Adam's step size, in units of the [0, 1] pixel range (at the start of each level).
    learning_rate: float = 0.02
    # Adam's step size at the end of each resolution level, reached geometrically from
    # `learning_rate` (a large step while the picture is far off, a fine one at the end).
    # None: constant.
    final_learning_rate: float | None = None
    # Adam's first-moment decay and epsilon (the tutorial's 0.99 and 0.1 keep pixel updates smooth).
    beta_1: float = 0.99
    epsilon: float = 0.1
    # L-BFGS's first trial step at each level, as a pixel's mean (RMS) move in [0, 1] units: the
    # loss is scaled at the level's start so that its gradient's RMS is this. None: the loss as
    # it is, and L-BFGS-B first tries a step to the box's corners and backtracks (2-3 more
    # evaluations a level). A Weaker continuation sets it (nst_engine.continuation.FIRST_STEP).
    lbfgs_first_step: float | None = None
    # Stop when the total loss improved by less than this fraction over the last 20 steps (0: off).
    early_stop_tolerance: float = 0.0
    # Arithmetic of the feature network: auto picks bfloat16/float16 where the hardware is fast at
    # it and float32 elsewhere. The image, its targets and the losses always stay in float32.
    precision: Precision = "float32"

    # --- expert: the objective's weights and layers --------------------------------------------
    # Expert overrides. None: content 1e4, style from `strength`.
    content_weight: float | None = None
    style_weight: float | None = None
    # Multiplies the style weight. Presets that take fewer steps raise it a little so that they
    # reach the same style distance as the long plain loop (see bench/compare.py).
    style_emphasis: float = 1.0
    # Multiplies `style_emphasis` once per doubling of the picture's long side above
    # EMPHASIS_BASE_SIDE, up to EMPHASIS_TOP_SIDE (in between, by the fraction of a doubling):
    # at 512 px the tutorial's 300 full-size steps take the style further than at 256 px, and
    # a preset's few dozen steps need more weight on it to follow (docs/performance.md).
    style_emphasis_per_doubling: float = 1.0
    # Weight of the total-variation (smoothness) term.
    tv_weight: float = 30.0
    # The TV weight is multiplied by this once per halving at the coarse levels. The TV term is a
    # sum over pixels, so at half the side it weighs about half as much against the content and
    # style terms (means); 2 keeps the balance of full size at every level, 1 is the plain loop.
    tv_level_scale: float = 1.0
    # Layers: the seed's choice; per-layer style weights default to equal.
    content_layers: tuple[str, ...] = CONTENT_LAYERS
    style_layers: tuple[str, ...] = STYLE_LAYERS
    style_layer_weights: tuple[float, ...] | None = None

    # --- preview: what progress reports carry --------------------------------------------------
    # Send a small preview image with progress every this many steps (0: never).
    preview_every: int = 0
    # Longest side of preview images.
    preview_size: int = 128

    def __post_init__(self) -> None:
        self._check_look()
        self._check_schedule()
        self._check_expert()
        _check(self.preview_every >= 0, "preview_every must be ≥ 0")
        _check(16 <= self.preview_size <= 512, "preview_size must be between 16 and 512")

    def _check_look(self) -> None:
        _check(0 <= self.strength <= 10, f"strength must be between 0 and 10, not {self.strength}")
        _check(
            MIN_SIZE <= self.max_size <= MAX_SIZE,
            f"max_size must be between {MIN_SIZE} and {MAX_SIZE}, not {self.max_size}",
        )
        if self.style_blend is not None:
            _check(
                len(self.style_blend) > 0
                and all(math.isfinite(w) and w >= 0 for w in self.style_blend)
                and sum(self.style_blend) > 0,
                "style_blend needs one weight ≥ 0 per style image, not all zero",
            )
        _check(
            0.25 <= self.style_scale <= 4,
            f"style_scale must be between 0.25 and 4, not {self.style_scale}",
        )
        _check(
            self.init in ("content", "noise", "matched"),
            f"init must be content, noise or matched, not {self.init}",
        )
        _check(0 <= self.seed < 2**32, f"seed must be between 0 and 2**32-1, not {self.seed}")
        _check(
            0.0 <= self.start_noise <= 0.5,
            f"start_noise must be between 0 and 0.5, not {self.start_noise}",
        )

    def _check_schedule(self) -> None:
        _check(1 <= self.steps <= 10_000, f"steps must be between 1 and 10000, not {self.steps}")
        for name in ("optimizer", "coarse_optimizer"):
            value = getattr(self, name)
            _check(
                value in ("adam", "lbfgs") or (name == "coarse_optimizer" and value is None),
                f"{name} must be adam or lbfgs, not {value}",
            )
        _check(0 <= self.coarse_fraction < 1, "coarse_fraction must be in [0, 1)")
        _check(1 <= self.levels <= 4, f"levels must be between 1 and 4, not {self.levels}")
        _check(
            0 < self.learning_rate <= 1,
            f"learning_rate must be above 0 and at most 1, not {self.learning_rate}",
        )
        _check(
            self.final_learning_rate is None or 0 < self.final_learning_rate <= 1,
            f"final_learning_rate must be above 0 and at most 1, not {self.final_learning_rate}",
        )
        _check(
            self.lbfgs_first_step is None or 0 < self.lbfgs_first_step <= 1,
            f"lbfgs_first_step must be above 0 and at most 1, not {self.lbfgs_first_step}",
        )
        _check(0 <= self.beta_1 < 1, f"beta_1 must be in [0, 1), not {self.beta_1}")
        _check(self.epsilon > 0, f"epsilon must be above 0, not {self.epsilon}")
        _check(0 <= self.early_stop_tolerance < 1, "early_stop_tolerance must be in [0, 1)")
        _check(
            self.precision in ("auto", "float32", "bfloat16", "float16"),
            f"precision must be auto, float32, bfloat16 or float16, not {self.precision}",
        )

    def _check_expert(self) -> None:
        for name in ("content_weight", "style_weight"):
            value = getattr(self, name)
            _check(
                value is None or (math.isfinite(value) and value >= 0),
                f"{name} must be a finite number ≥ 0, not {value}",
            )
        _check(
            0 < self.style_emphasis <= 100,
            f"style_emphasis must be above 0 and at most 100, not {self.style_emphasis}",
        )
        _check(
            1 <= self.style_emphasis_per_doubling <= 10,
            "style_emphasis_per_doubling must be between 1 and 10, "
            f"not {self.style_emphasis_per_doubling}",
        )
        _check(
            math.isfinite(self.tv_weight) and self.tv_weight >= 0,
            f"tv_weight must be a finite number ≥ 0, not {self.tv_weight}",
        )
        _check(
            0 < self.tv_level_scale <= 8,
            f"tv_level_scale must be above 0 and at most 8, not {self.tv_level_scale}",
        )
        unknown = [
            n for n in (*self.content_layers, *self.style_layers) if n not in VGG19_CONV_LAYERS
        ]
        _check(
            not unknown and self.content_layers and self.style_layers,
            f"unknown VGG19 layer(s) {unknown}; choose from {', '.join(VGG19_CONV_LAYERS)}",
        )
        if self.style_layer_weights is not None:
            _check(
                len(self.style_layer_weights) == len(self.style_layers)
                and all(w >= 0 for w in self.style_layer_weights),
                "style_layer_weights needs one weight ≥ 0 per style layer",
            )

    @property
    def effective_content_weight(self) -> float:
        return BASE_CONTENT_WEIGHT if self.content_weight is None else self.content_weight

    @property
    def effective_style_weight(self) -> float:
        base = self.style_weight
        if base is None:
            base = style_weight_for_strength(self.strength)
        return base * self.style_emphasis

    def style_weight_at(self, side: int) -> float:
        """The style weight for a picture whose long side is ``side`` pixels."""
        return self.effective_style_weight * self.style_emphasis_per_doubling ** doublings(side)

    def replace(self, **changes: object) -> StyleOptions:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def level_steps(self) -> tuple[int, ...]:
        """Steps per resolution level, coarsest first, full size last; they sum to `steps`."""
        levels = self.levels if self.coarse_fraction else 1
        remaining, per_level = self.steps, []
        for _ in range(levels - 1):
            # Full size always gets a step, or the picture would come back blurred.
            coarser = max(0, min(round(remaining * self.coarse_fraction), remaining - 1))
            per_level.append(remaining - coarser)
            remaining = coarser
        per_level.append(remaining)
        return tuple(reversed(per_level))

    def learning_rate_at(self, step: int, level_steps: int) -> float:
        """Adam's step size at ``step`` (0-based) of a level of ``level_steps`` steps."""
        if self.final_learning_rate is None or level_steps <= 1:
            return self.learning_rate
        ratio = self.final_learning_rate / self.learning_rate
        return self.learning_rate * ratio ** (step / (level_steps - 1))


# Every preset starts from the photo plus seeded noise of this amplitude, so that the seed picks
# one of many variations (the Variation button); small enough to leave the photo's shapes alone.
PRESET_START_NOISE = 0.08


@dataclass(frozen=True)
class Preset:
    """A quality preset: the `StyleOptions` fields it sets, under the same names; a field left
    None keeps the default of `StyleOptions`. Checked when `options` builds the options."""

    # The schedule: steps in all, resolution levels and the share of steps below full size,
    # the optimiser (at the coarse levels too, unless `coarse_optimizer` says otherwise), and
    # whether the photo's detail is added back on the way up.
    steps: int
    levels: int
    coarse_fraction: float
    optimizer: Optimizer
    keep_detail: bool
    coarse_optimizer: Optimizer | None = None
    # How much more the style weighs than at `strength` alone, and the TV weight per halving.
    style_emphasis: float | None = None
    style_emphasis_per_doubling: float | None = None
    tv_level_scale: float | None = None
    # The seeded noise on the photo that makes each seed a variation.
    start_noise: float = PRESET_START_NOISE

    def settings(self) -> dict[str, object]:
        """The `StyleOptions` fields this preset sets, by name (those it leaves None left out)."""
        return {name: value for name, value in asdict(self).items() if value is not None}

    def options(self, **changes: object) -> StyleOptions:
        """The preset as options, with some fields changed."""
        return StyleOptions(**{**self.settings(), **changes})  # type: ignore[arg-type]


# Quality presets: steps and the optimisation schedule, chosen by measurement with
# bench/compare.py against the plain tutorial loop (300 Adam steps, float32) on trained features
# (the HED stand-in) and five photo/artwork pairs; see docs/performance.md. L-BFGS at both
# levels, most steps at half the side, the photo's detail added back on the way up
# (`keep_detail`) so the full-size level starts sharp, and the style weight ×4: with a few
# dozen steps instead of 300, the style would otherwise stay further from the artwork than the
# tutorial's on two of the five pairs; ×3 more at 512 px, where ×4 left the style short on one
# pair (1.09× the tutorial's; ×12 gave 0.998×). L-BFGS runs in float32 whatever the precision (see
# solvers), so a preset gives the same picture on every machine.
QUALITY_PRESETS: dict[str, Preset] = {
    # A quick look: the fewest full-size steps. Its style meets the tutorial's; its content may
    # drift further from the photo (docs/performance.md).
    "fast": Preset(
        steps=32,
        levels=2,
        coarse_fraction=0.75,
        optimizer="lbfgs",
        keep_detail=True,
        style_emphasis=4.0,
        style_emphasis_per_doubling=3.0,
    ),
    # The default. 25 steps at half size, 20 at full size: with 24 · 20, its style on
    # `motorcycle-retina` was 1.024× the tutorial's; with 26 · 20 or 26 · 18, its content on
    # `rocket-strokes` was 1.29× or 1.27×.
    "balanced": Preset(
        steps=45,
        levels=2,
        coarse_fraction=0.556,
        optimizer="lbfgs",
        keep_detail=True,
        style_emphasis=4.0,
        style_emphasis_per_doubling=3.0,
    ),
    # `balanced` and 2 more steps at full size: the photo's structure held closest. With
    # 30 · 20 (or 30 · 24), its content at 512 px was 1.27–1.29× the tutorial's on two pairs;
    # 25 · 25 was 4.99× sooner on `motorcycle-retina` at 256 px.
    "best": Preset(
        steps=47,
        levels=2,
        coarse_fraction=0.532,
        optimizer="lbfgs",
        keep_detail=True,
        style_emphasis=4.0,
        style_emphasis_per_doubling=3.0,
    ),
}
DEFAULT_QUALITY = "balanced"


def options_for_quality(
    quality: str = DEFAULT_QUALITY, *, precision: Precision = "auto", **changes: object
) -> StyleOptions:
    """A preset (fast | balanced | best) in ``precision``, with some fields changed.

    Needs no TensorFlow (the bot calls it); ``auto`` is resolved by the process that runs the
    job, for its own device (`nst_engine.model.resolve_precision`).
    """
    if quality not in QUALITY_PRESETS:
        raise ValueError(f"quality must be one of {', '.join(QUALITY_PRESETS)}, not {quality}")
    return QUALITY_PRESETS[quality].options(**{**changes, "precision": precision})


def _check(ok: object, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass(frozen=True)
class Losses:
    """The weighted terms of the objective at one step (each already multiplied by its weight)."""

    content: float
    style: float
    tv: float
    # The temporal term of an animation's later frames (0 elsewhere).
    temporal: float = 0.0

    @property
    def total(self) -> float:
        return self.content + self.style + self.tv + self.temporal


@dataclass(frozen=True)
class Progress:
    """One report from a running job."""

    # Steps done so far (1-based) and the total planned.
    step: int
    total: int
    # Losses after this step.
    losses: Losses
    # Seconds since the job started (model and targets included).
    elapsed: float
    # A small uint8 H×W×3 preview of the current image, every `preview_every` steps; else None.
    preview: np.ndarray | None = None
    # Renders a preview of the current image on demand (only valid during the callback; not
    # picklable: drop it with `replace(progress, snapshot=None)` before sending elsewhere).
    snapshot: Callable[[], np.ndarray] | None = field(default=None, repr=False, compare=False)
    # Animations: the frame being painted (1-based) and the clip's frame count; then `step`
    # and `total` count the steps of the whole clip.
    frame: int = 1
    frames: int = 1
    # Seconds left when the job knows better than the average pace (an animation's frames
    # differ in cost); None: `eta` uses the average pace.
    remaining: float | None = None

    @property
    def eta(self) -> float | None:
        """Seconds left (`remaining`, else at the average pace so far), or None before the
        first step."""
        if self.remaining is not None:
            return self.remaining
        if self.step <= 0:
            return None
        return self.elapsed / self.step * (self.total - self.step)


@dataclass(frozen=True)
class StyleResult:
    """The stylized image and how it was made."""

    # uint8 H×W×3, RGB, in [0, 255].
    image: np.ndarray
    # Steps actually run (fewer than planned when cancelled or stopped early).
    steps: int
    # Wall time of the whole job in seconds.
    seconds: float
    # Losses after the last step (weighted).
    losses: Losses
    # Losses after every step, in order.
    history: tuple[Losses, ...] = field(repr=False)
    # True when `should_stop` ended the job before its planned steps.
    cancelled: bool = False
    # True when early stopping ended it (the loss had stopped improving).
    converged: bool = False
    # Which weights made it: "imagenet", a file name, or "random" (not a real style transfer).
    weights: str = "imagenet"

    @property
    def is_real_style_transfer(self) -> bool:
        return self.weights != "random"
