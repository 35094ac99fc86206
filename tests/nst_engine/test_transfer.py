import numpy as np
import pytest

from nst_engine import StyleOptions, stylize
from nst_engine.options import style_weight_for_strength
from tests.support import gradient_image

TINY = dict(max_size=48, steps=12)


def test_losses_fall_and_the_image_has_the_requested_size(random_model, content_image, style_image):
    result = stylize(content_image, style_image, StyleOptions(**TINY), model=random_model)
    assert result.image.dtype == np.uint8
    assert result.image.shape == (32, 48, 3)  # content is 48×32, longest side within 48
    assert result.steps == 12 and len(result.history) == 12
    assert result.history[-1].total < result.history[0].total
    assert not result.is_real_style_transfer and result.weights == "random"
    assert not np.array_equal(result.image, content_image)


def test_a_larger_content_is_scaled_down_and_a_tiny_one_up(random_model, style_image):
    options = StyleOptions(max_size=64, steps=2)
    big = stylize(gradient_image(96, 72), style_image, options, model=random_model)
    assert big.image.shape == (48, 64, 3)
    tiny = stylize(gradient_image(1, 1), style_image, options, model=random_model)
    assert tiny.image.shape == (32, 32, 3)  # VGG needs room for its pooling layers


def test_same_seed_repeats_and_another_seed_differs(random_model, content_image, style_image):
    options = StyleOptions(**TINY, init="noise", seed=3)
    a = stylize(content_image, style_image, options, model=random_model)
    b = stylize(content_image, style_image, options, model=random_model)
    c = stylize(content_image, style_image, options.replace(seed=4), model=random_model)
    np.testing.assert_array_equal(a.image, b.image)
    assert not np.array_equal(a.image, c.image)


def test_should_stop_ends_early_with_a_partial_result(random_model, content_image, style_image):
    seen = []
    result = stylize(
        content_image,
        style_image,
        StyleOptions(**TINY),
        model=random_model,
        on_progress=seen.append,
        should_stop=lambda: len(seen) >= 3,
    )
    assert result.cancelled and result.steps == 3
    assert result.image.shape == (32, 48, 3)
    assert [p.step for p in seen] == [1, 2, 3] and seen[0].total == 12


def test_progress_carries_previews_every_n_steps(random_model, content_image, style_image):
    seen = []
    options = StyleOptions(**TINY, preview_every=4, preview_size=24)
    stylize(content_image, style_image, options, model=random_model, on_progress=seen.append)
    with_preview = [p.step for p in seen if p.preview is not None]
    assert with_preview == [4, 8, 12]
    assert seen[3].preview.shape == (16, 24, 3) and seen[3].preview.dtype == np.uint8
    assert seen[-1].eta == 0


def test_more_strength_means_less_style_loss_and_more_content_loss(
    random_model, content_image, style_image
):
    def raw(strength):
        options = StyleOptions(max_size=48, steps=25, strength=strength)
        result = stylize(content_image, style_image, options, model=random_model)
        # Compare the unweighted distances, so the weights themselves don't decide the answer.
        style_distance = result.losses.style / options.effective_style_weight
        content_distance = result.losses.content / options.effective_content_weight
        return style_distance, content_distance

    weak_style, weak_content = raw(1)
    strong_style, strong_content = raw(9)
    assert strong_style < weak_style
    assert strong_content > weak_content


def test_strength_maps_monotonically_onto_the_seed_weights():
    weights = [style_weight_for_strength(s) for s in range(11)]
    assert weights == sorted(weights)
    assert style_weight_for_strength(5) == pytest.approx(1e-2)
    assert StyleOptions(strength=5).effective_content_weight == 1e4
    assert StyleOptions(style_weight=3.0, strength=9).effective_style_weight == 3.0


def test_preserve_colors_keeps_the_content_chroma(random_model, content_image, style_image):
    from nst_engine.transfer import _yiq

    def chroma_and_luma(image):
        yiq = _yiq(image.astype(np.float32) / 255)
        return yiq[..., 1:], yiq[..., 0]

    content_chroma, content_luma = chroma_and_luma(content_image)
    options = StyleOptions(**TINY, strength=9)
    kept = stylize(
        content_image, style_image, options.replace(preserve_colors=True), model=random_model
    )
    free = stylize(content_image, style_image, options, model=random_model)
    kept_chroma, kept_luma = chroma_and_luma(kept.image)
    free_chroma, _ = chroma_and_luma(free.image)
    kept_error = np.abs(kept_chroma - content_chroma).mean()
    assert kept_error < 0.02
    assert kept_error < np.abs(free_chroma - content_chroma).mean() / 2
    assert np.abs(kept_luma - content_luma).mean() > 0.01  # the texture did change


def test_several_styles_blend_by_weight(random_model, content_image, style_image):
    flat = np.full((40, 40, 3), 128, np.uint8)
    only_stripes = StyleOptions(**TINY, style_blend=(1.0, 0.0))
    a = stylize(content_image, [style_image, flat], only_stripes, model=random_model)
    b = stylize(content_image, style_image, StyleOptions(**TINY), model=random_model)
    np.testing.assert_allclose(a.image, b.image, atol=2)
    with pytest.raises(ValueError, match="style_blend has 1 weights for 2 style images"):
        stylize(content_image, [style_image, flat], StyleOptions(**TINY, style_blend=(1.0,)))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"strength": 11}, "strength must be between 0 and 10"),
        ({"steps": 0}, "steps must be between 1 and 10000"),
        ({"max_size": 8}, "max_size must be between 32 and 4096"),
        ({"init": "zeros"}, "init must be content, noise or matched"),
        ({"style_weight": float("nan")}, "style_weight must be a finite number"),
        ({"style_layers": ("block9_conv1",)}, "unknown VGG19 layer"),
        ({"style_scale": 10}, "style_scale must be between 0.25 and 4"),
    ],
)
def test_bad_options_raise_a_clear_value_error(changes, message):
    with pytest.raises(ValueError, match=message):
        StyleOptions(**changes)


def test_bfloat16_features_give_nearly_the_same_picture(random_model, content_image, style_image):
    full = stylize(content_image, style_image, StyleOptions(**TINY), model=random_model)
    half = stylize(
        content_image, style_image, StyleOptions(**TINY, precision="bfloat16"), model=random_model
    )
    assert half.image.dtype == np.uint8 and half.image.shape == full.image.shape
    assert half.losses.total == pytest.approx(full.losses.total, rel=0.1)
    # The optimisation wanders differently pixel by pixel; it must still land near float32's.
    to_full = np.abs(half.image.astype(int) - full.image.astype(int)).mean()
    assert to_full < np.abs(full.image.astype(int) - content_image.astype(int)).mean()


def test_coarse_to_fine_and_early_stopping_end_at_full_size(
    random_model, content_image, style_image
):
    # Each level is judged on its own losses: 30 steps at half size, then 30 at full size.
    options = StyleOptions(max_size=48, steps=60, coarse_fraction=0.5, early_stop_tolerance=0.5)
    result = stylize(content_image, style_image, options, model=random_model)
    assert result.image.shape == (32, 48, 3)
    assert result.converged and result.steps < 60


def test_a_rerun_on_the_same_artwork_reuses_its_style_targets(random_model, content_image):
    from tests.support import stripes_image

    art = stripes_image(44, 44, period=5)
    random_model.cache.grams.clear()
    first = stylize(content_image, art, StyleOptions(**TINY), model=random_model)
    assert len(random_model.cache.grams) == 1
    again = stylize(content_image, art, StyleOptions(**TINY, strength=7), model=random_model)
    assert len(random_model.cache.grams) == 1  # a hit, not a second entry
    assert not np.array_equal(first.image, again.image)
    stylize(content_image, art[::-1], StyleOptions(**TINY), model=random_model)
    assert len(random_model.cache.grams) == 2


def test_lbfgs_lowers_the_loss_and_can_be_stopped(random_model, content_image, style_image):
    options = StyleOptions(max_size=48, steps=8, optimizer="lbfgs")
    result = stylize(content_image, style_image, options, model=random_model)
    assert result.image.shape == (32, 48, 3) and 1 <= result.steps <= 8
    assert result.history[-1].total < result.history[0].total
    seen = []
    stopped = stylize(
        content_image,
        style_image,
        options,
        model=random_model,
        on_progress=seen.append,
        should_stop=lambda: len(seen) >= 2,
    )
    assert stopped.cancelled and stopped.steps == 2


def test_three_levels_with_lbfgs_coarse_and_adam_fine_end_at_full_size(
    random_model, content_image, style_image
):
    seen = []
    options = StyleOptions(
        max_size=64,
        steps=12,
        coarse_fraction=0.5,
        levels=3,
        coarse_optimizer="lbfgs",
        learning_rate=0.03,
        final_learning_rate=0.005,
    )
    content = gradient_image(64, 64, seed=2)
    result = stylize(content, style_image, options, model=random_model, on_progress=seen.append)
    assert result.image.shape == (64, 64, 3)
    # L-BFGS may converge before its iterations are up; Adam's full-size steps always run.
    assert options.level_steps() == (3, 3, 6) and 6 < result.steps <= 12
    assert [p.step for p in seen] == list(range(1, result.steps + 1))
    assert {p.total for p in seen} == {12}
    full_size = result.history[-6:]
    assert full_size[-1].total < full_size[0].total


def test_cancelled_at_a_coarse_level_still_returns_the_full_size(
    random_model, content_image, style_image
):
    seen = []
    options = StyleOptions(max_size=48, steps=20, coarse_fraction=0.5, levels=3)
    result = stylize(
        content_image,
        style_image,
        options,
        model=random_model,
        on_progress=seen.append,
        should_stop=lambda: len(seen) >= 2,
    )
    assert result.cancelled and result.steps == 2
    assert result.image.shape == (32, 48, 3)


def test_the_matched_start_takes_the_artworks_colours(random_model, content_image, style_image):
    from nst_engine.transfer import _colours_like

    art = style_image.astype(np.float32) / 255
    start = _colours_like(content_image.astype(np.float32) / 255, [art], [1.0])
    np.testing.assert_allclose(start.reshape(-1, 3).mean(0), art.reshape(-1, 3).mean(0), atol=0.05)
    options = StyleOptions(**TINY, init="matched")
    result = stylize(content_image, style_image, options, model=random_model)
    assert result.image.shape == (32, 48, 3)
    assert result.history[-1].total < result.history[0].total


@pytest.mark.parametrize("precision", ["float32", "auto"])
def test_presets_run_in_either_precision(random_model, content_image, style_image, precision):
    from nst_engine.options import options_for_quality

    options = options_for_quality("fast", precision=precision, max_size=48)
    options = options.replace(steps=min(options.steps, 8))
    seen = []
    result = stylize(
        content_image, style_image, options, model=random_model, on_progress=seen.append
    )
    assert result.steps == 8 and seen[-1].step == seen[-1].total == 8
    assert result.image.shape == (32, 48, 3)


def test_the_engine_style_term_is_losses_style_loss(random_model):
    import tensorflow as tf

    from nst_engine.losses import gram_matrix, style_loss
    from nst_engine.solvers import objective

    layers = ("block1_conv1", "block2_conv1", "block5_conv2")
    extractor = random_model.extractor(layers)
    image = tf.random.uniform((1, 32, 32, 3), seed=1)
    other = extractor(tf.random.uniform((1, 32, 32, 3), seed=2))
    grams = [gram_matrix(f) for f in other[:2]]
    layer_weights = tf.constant([0.25, 0.75])
    weights = tf.constant([0.0, 2.0, 0.0])
    _, style, _ = objective(extractor, 2, image, grams, other[2:], layer_weights, weights)
    expected = 2.0 * style_loss(extractor(image)[:2], grams, [0.25, 0.75])
    assert float(style) == pytest.approx(float(expected), rel=1e-5)


def test_levels_that_meet_vggs_floor_at_the_same_size_are_merged():
    from nst_engine.transfer import _plan

    # 64×48: half and quarter size are both 32 px (VGG's floor), so they are one level.
    assert _plan((1, 1, 1), (48, 64)) == [(1, 2), (0, 1)]
    # 256 px keeps its three levels, and a level given no steps is skipped.
    assert _plan((20, 20, 120), (256, 256)) == [(2, 20), (1, 20), (0, 120)]
    assert _plan((0, 5, 5), (256, 256)) == [(1, 5), (0, 5)]


def test_keep_detail_starts_the_full_size_level_sharp(random_model, style_image):
    # One step at half size, one at full size, barely any style: the full-size level starts from
    # the half-size picture enlarged (blurred) unless the photo's detail is added back.
    photo = gradient_image(64, 64, seed=4)
    options = StyleOptions(
        max_size=64, steps=2, levels=2, coarse_fraction=0.5, strength=0, learning_rate=0.002
    )
    blurred = stylize(photo, style_image, options, model=random_model).image
    sharp = stylize(photo, style_image, options.replace(keep_detail=True), model=random_model).image
    error = [np.abs(x.astype(float) - photo).mean() for x in (blurred, sharp)]
    assert error[1] < 0.5 * error[0], error


def test_tv_level_scale_weighs_the_smoothness_term_per_halving(random_model, style_image):
    photo = gradient_image(64, 64, seed=4)
    options = StyleOptions(max_size=64, steps=2, levels=2, coarse_fraction=0.5)
    plain = stylize(photo, style_image, options, model=random_model)
    scaled = stylize(photo, style_image, options.replace(tv_level_scale=2), model=random_model)
    # The first step is at half size: its TV term is doubled; the full-size one is not scaled.
    assert scaled.history[0].tv == pytest.approx(2 * plain.history[0].tv, rel=1e-4)
    assert scaled.history[1].tv < 2 * plain.history[1].tv


def test_what_a_model_keeps_for_the_next_job_is_bounded_least_recently_used_first():
    from nst_engine.model import LRU

    made = []
    cache = LRU(2)
    for key in ("a", "b", "a", "c", "a", "b"):
        cache.get(key, lambda key=key: made.append(key) or key.upper())
    # "b" was the least recently used when "c" came, so it is made again; "a" never is.
    assert made == ["a", "b", "c", "b"] and len(cache) == 2


@pytest.mark.parametrize(
    "message", ["could not create a memory object", "could not create a primitive"]
)
def test_onednns_failed_allocations_are_out_of_memory(
    random_model, content_image, style_image, monkeypatch, message
):
    # A capped worker's oneDNN reports a failed allocation as TensorFlow's AbortedError, with
    # either line; the member must hear "try a smaller size", not "failed unexpectedly".
    from nst_engine import transfer
    from nst_engine.errors import OutOfMemory

    class AbortedError(Exception):
        pass

    def fail(self):
        raise AbortedError(f"Operation received an exception: ... {message} ...")

    monkeypatch.setattr(transfer._Run, "optimise", fail)
    with pytest.raises(OutOfMemory):
        stylize(content_image, style_image, StyleOptions(**TINY), model=random_model)


def test_a_worker_that_exits_leaves_no_generated_code_in_the_temp_folder(tmp_path):
    # A worker ends with os._exit (no atexit), so files TensorFlow's autograph writes for each
    # traced function would stay in /tmp for every worker ever started.
    import os
    import subprocess
    import sys

    script = (
        "import os, numpy as np\n"
        "from nst_engine import StyleOptions, load_model, stylize\n"
        "from nst_engine.options import options_for_quality\n"
        "m = load_model('random')\n"
        "p = np.full((40, 40, 3), 128, np.uint8)\n"
        "stylize(p, p, options_for_quality('fast', max_size=40, steps=2), model=m)\n"
        "stylize(p, p, StyleOptions(max_size=40, steps=2), model=m)\n"
        "os._exit(0)\n"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=300)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("__autograph")] == []
