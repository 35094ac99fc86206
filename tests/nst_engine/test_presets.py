"""Presets, precision and the step schedule: plain option arithmetic, no TensorFlow."""

import subprocess
import sys
from dataclasses import fields, replace

import pytest

from nst_engine import model as model_module
from nst_engine.options import QUALITY_PRESETS, Preset, StyleOptions, options_for_quality


@pytest.fixture
def no_gpu(monkeypatch):
    import tensorflow as tf

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])


@pytest.mark.parametrize("quality", list(QUALITY_PRESETS))
def test_auto_runs_the_float32_preset_where_bfloat16_is_not_fast(monkeypatch, no_gpu, quality):
    monkeypatch.setattr(model_module, "cpu_has_fast_bfloat16", lambda: False)
    options = options_for_quality(quality)
    assert options.precision == "auto"
    assert all(getattr(options, k) == v for k, v in QUALITY_PRESETS[quality].settings().items())
    assert model_module.resolve_precision(options.precision) == "float32"


def test_auto_uses_bfloat16_where_the_cpu_has_it(monkeypatch, no_gpu):
    monkeypatch.setattr(model_module, "cpu_has_fast_bfloat16", lambda: True)
    options = options_for_quality("balanced", precision="auto")
    assert model_module.resolve_precision(options.precision) == "bfloat16"


def test_a_named_precision_is_kept_whatever_the_cpu(monkeypatch):
    monkeypatch.setattr(model_module, "cpu_has_fast_bfloat16", lambda: True)
    for precision in ("float32", "bfloat16", "float16"):
        options = options_for_quality("balanced", precision=precision)
        assert model_module.resolve_precision(options.precision) == precision
        assert options.steps == QUALITY_PRESETS["balanced"].steps


def test_presets_are_the_schedules_tuned_on_trained_features():
    # docs/performance.md: L-BFGS at both levels, half size first, the photo's detail kept.
    steps = []
    for quality, preset in QUALITY_PRESETS.items():
        options = options_for_quality(quality, precision="float32")
        assert options.optimizer == "lbfgs" and options.coarse_optimizer in (None, "lbfgs")
        assert options.keep_detail and options.start_noise > 0
        coarse, full = options.level_steps()
        assert coarse > 0 and full > 0 and coarse + full == preset.steps
        steps.append(options.steps)
    assert steps == sorted(steps)  # fast, balanced, best: more steps each


@pytest.mark.parametrize("quality", list(QUALITY_PRESETS))
def test_a_preset_weighs_the_style_more_on_larger_pictures_up_to_512(quality):
    # docs/performance.md, "At 512 px": style x4 at 256 px left the style short at 512 px.
    options = options_for_quality(quality, precision="float32")
    at = options.style_weight_at
    assert at(64) == at(256) == options.effective_style_weight
    assert at(256) < at(384) < at(512) == at(1024)
    assert at(512) == pytest.approx(options.style_emphasis_per_doubling * at(256))
    assert options.style_emphasis_per_doubling > 1
    plain = StyleOptions()
    assert plain.style_weight_at(512) == plain.style_weight_at(256)


def test_a_preset_sets_only_options_and_leaves_the_rest_at_their_defaults():
    option_names = {f.name for f in fields(StyleOptions)}
    assert {f.name for f in fields(Preset)} <= option_names
    preset = QUALITY_PRESETS["fast"]
    options = preset.options(strength=7)
    assert options.strength == 7 and options.steps == preset.steps
    assert options.tv_weight == StyleOptions().tv_weight  # not a preset's field: the default
    with pytest.raises(ValueError, match="steps must be between 1 and 10000"):
        replace(preset, steps=0).options()


def test_the_bots_call_works_and_a_step_cap_keeps_steps_the_planned_total():
    options = options_for_quality(
        "best", strength=7, max_size=256, preserve_colors=True, seed=3, precision="float32"
    )
    capped = options.replace(steps=min(options.steps, 40))
    assert capped.steps == 40 and sum(capped.level_steps()) == 40
    assert capped.level_steps()[-1] >= 1  # full size always gets steps
    with pytest.raises(ValueError, match="precision must be auto, float32, bfloat16 or float16"):
        options_for_quality("fast", precision="int8")


def test_presets_need_no_tensorflow():
    code = (
        "import sys; from nst_engine.options import options_for_quality as q; "
        "from nst_engine.model import cpu_has_fast_bfloat16 as bf16; bf16(); "
        "[q(n, precision=p) for n in ('fast', 'balanced', 'best') for p in ('auto', 'float32')]; "
        "assert 'tensorflow' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"steps": 300}, (300,)),
        ({"steps": 240, "coarse_fraction": 0.75}, (180, 60)),
        ({"steps": 240, "coarse_fraction": 0.75, "levels": 3}, (135, 45, 60)),
        ({"steps": 100, "coarse_fraction": 0.5, "levels": 1}, (100,)),
        ({"steps": 1, "coarse_fraction": 0.9, "levels": 3}, (0, 0, 1)),
        ({"steps": 2, "coarse_fraction": 0.5, "levels": 4}, (0, 0, 1, 1)),
    ],
)
def test_steps_split_over_levels_coarsest_first(changes, expected):
    per_level = StyleOptions(**changes).level_steps()
    assert per_level == expected and sum(per_level) == changes["steps"]


def test_the_learning_rate_decays_geometrically_within_a_level():
    options = StyleOptions(learning_rate=0.08, final_learning_rate=0.01)
    rates = [options.learning_rate_at(i, 4) for i in range(4)]
    assert rates == pytest.approx([0.08, 0.04, 0.02, 0.01])
    assert StyleOptions().learning_rate_at(7, 10) == 0.02  # no schedule: constant
    assert options.learning_rate_at(0, 1) == 0.08


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"levels": 5}, "levels must be between 1 and 4"),
        ({"final_learning_rate": 0.0}, "final_learning_rate must be above 0"),
        ({"lbfgs_first_step": 0.0}, "lbfgs_first_step must be above 0 and at most 1"),
        ({"coarse_optimizer": "sgd"}, "coarse_optimizer must be adam or lbfgs"),
        ({"init": "zeros"}, "init must be content, noise or matched"),
        ({"style_emphasis_per_doubling": 0.5}, "style_emphasis_per_doubling must be between 1"),
    ],
)
def test_bad_schedule_options_raise_a_clear_value_error(changes, message):
    with pytest.raises(ValueError, match=message):
        StyleOptions(**changes)
