"""Iterating on a picture from the shell: `nst stylize --from RESULT` and `nst upscale`, what the
new picture's parameters say of its parent, and the one-line refusals."""

import json
import math

import numpy as np
import pytest
from PIL import Image

from nst_engine.cli import main
from nst_engine.continuation import STRONGER, UPSCALE, parameters_hash
from nst_engine.images import encode_image, read_parameters
from tests.support import gradient_image, stripes_image


@pytest.fixture
def pictures(tmp_path):
    photo = tmp_path / "photo.png"
    artwork = tmp_path / "painting.png"
    Image.fromarray(gradient_image(48, 36)).save(photo)
    Image.fromarray(stripes_image(32, 32)).save(artwork)
    return photo, artwork


def _paint(*argv) -> None:
    assert main([*map(str, argv), "--weights", "random"]) == 0


def _made(path) -> dict:
    return read_parameters(path.read_bytes())


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture
def first(pictures, tmp_path):
    """A first picture: strength 3, seed 4, at the photo's own 48 px."""
    photo, artwork = pictures
    out = tmp_path / "first.png"
    _paint("stylize", photo, artwork, "-o", out, "--strength", "3", "--seed", "4", "--size", "48")
    return out


def test_a_continuation_takes_the_parents_options_and_names_its_parent(pictures, first, tmp_path):
    photo, artwork = pictures
    out = tmp_path / "stronger.png"
    _paint("stylize", photo, artwork, "-o", out, "--from", first, "--strength", "4")

    made, parent = _made(out), _made(first)
    assert made["strength"] == 4.0  # typed, one strength step above the parent's
    assert made["seed"] == 4 and made["size"] == 48 and made["quality"] == parent["quality"]
    schedule = STRONGER[parent["quality"]]
    assert made["steps"] == schedule.steps < parent["steps"]
    assert made["parent"] == {"job": None, "parameters": parameters_hash(parent)}
    assert _pixels(out).shape == _pixels(first).shape
    assert not np.array_equal(_pixels(out), _pixels(first))


def test_the_same_continuation_of_the_same_parent_gives_the_same_picture(pictures, first, tmp_path):
    photo, artwork = pictures
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    for out in (a, b):
        _paint("stylize", photo, artwork, "-o", out, "--from", first, "--strength", "7")
    assert np.array_equal(_pixels(a), _pixels(b))


def test_nst_info_shows_the_chain(pictures, first, tmp_path, capsys):
    photo, artwork = pictures
    second, third = tmp_path / "second.png", tmp_path / "third.png"
    _paint("stylize", photo, artwork, "-o", second, "--from", first, "--strength", "7")
    _paint("stylize", photo, artwork, "-o", third, "--from", second, "--strength", "9")
    capsys.readouterr()

    assert main(["info", str(third)]) == 0
    out, err = capsys.readouterr()
    made = json.loads(out)
    assert made["parent"]["parameters"] == parameters_hash(_made(second))
    assert made["parent"]["parent"]["parameters"] == parameters_hash(_made(first))
    assert err.strip() == (
        f"continues a file (parameters {parameters_hash(_made(second))}), "
        f"which continues a file (parameters {parameters_hash(_made(first))})"
    )


def test_upscale_doubles_the_size_even_past_the_photos_own(pictures, first, tmp_path):
    photo, artwork = pictures
    out = tmp_path / "big.png"
    _paint("upscale", first, photo, artwork, "-o", out)

    assert _pixels(first).shape == (36, 48, 3)
    assert _pixels(out).shape == (72, 96, 3)  # the 48×36 photo is enlarged for it
    made = _made(out)
    assert made["size"] == 96 and made["steps"] == UPSCALE[made["quality"]].steps
    assert made["parent"]["parameters"] == parameters_hash(_made(first))
    # The enlarged picture, not a new one: close to the first picture enlarged.
    enlarged = np.asarray(Image.open(first).resize((96, 72), Image.Resampling.LANCZOS), np.float32)
    assert np.abs(_pixels(out).astype(np.float32) - enlarged).mean() < 20


def _error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*map(str, argv), "--weights", "random"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err.strip()


def test_what_cannot_be_continued_is_one_line(pictures, first, tmp_path, capsys):
    photo, artwork = pictures
    out = tmp_path / "out.png"
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    bare = tmp_path / "bare.png"
    Image.fromarray(gradient_image(40, 30)).save(bare)
    forged = tmp_path / "forged.png"
    forged.write_bytes(encode_image(gradient_image(40, 30), parameters={"strength": "strong"}))
    other = tmp_path / "other.png"
    Image.fromarray(gradient_image(32, 32, seed=9)).save(other)

    def refusal(parent, art=artwork):
        return _error(capsys, ["stylize", photo, art, "-o", out, "--from", parent])

    assert refusal(text) == (
        "error: --from notes.png: not a PNG; a continuation goes on from a PNG nst or the bot made"
    )
    assert refusal(bare) == (
        "error: --from bare.png: it carries no parameters (not made by nst or the bot)"
    )
    assert refusal(forged) == (
        "error: --from forged.png: its parameters give strength as 'strong', which is not allowed"
    )
    assert refusal(first, other) == (
        "error: first.png was made with other artworks; give the ones it was made with"
    )
    assert not out.exists()


def test_upscale_at_the_largest_size_is_refused_before_painting(pictures, tmp_path, capsys):
    photo, artwork = pictures
    huge = tmp_path / "huge.png"
    huge.write_bytes(encode_image(np.zeros((1024, 4096, 3), np.uint8), parameters={"size": 4096}))
    err = _error(capsys, ["upscale", huge, photo, artwork, "-o", tmp_path / "out.png"])
    assert err == "error: huge.png is 4096 px already, the largest nst paints"


def test_help_offers_both(capsys):
    for argv, wanted in ((["--help"], "upscale"), (["stylize", "--help"], "--from RESULT")):
        with pytest.raises(SystemExit):
            main(argv)
        assert wanted in capsys.readouterr().out


def test_upscale_of_a_file_that_is_no_picture_is_one_line(pictures, tmp_path, capsys):
    photo, artwork = pictures
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    err = _error(capsys, ["upscale", notes, photo, artwork, "-o", tmp_path / "out.png"])
    assert err == "error: notes.png: not an image Pillow can read: it looks like text"
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize(
    ("side", "strength", "aimed"),
    [
        (256, 9.0, 0.7),  # Stronger: 0.7 strength steps past 9 at 256 px ...
        (512, 9.0, 1.0),  # ... 1.0 from 512 px (more pixels move more slowly) ...
        (1024, 9.0, 1.0),
        (384, 9.0, 0.7 + 0.3 * math.log2(384 / 256)),  # ... and between, per doubling
        (512, 7.0, 0.0),  # Weaker and a repaint at the same strength aim at the strength asked
        (512, 8.0, 0.0),
    ],
)
def test_a_stronger_aims_past_the_strength_asked_and_keeps_it(side, strength, aimed):
    from dataclasses import replace

    from nst_engine.continuation import plan
    from nst_engine.options import options_for_quality

    last = np.zeros((side, side, 3), np.uint8)
    asked = options_for_quality("balanced", max_size=side, strength=strength)
    step = plan(last, last, asked, "balanced", parent=(8.0, side))
    assert step.options.strength == strength  # what the picture's parameters will say
    aimed_at = replace(asked, strength=strength + aimed)
    assert step.options.style_weight_at(side) == pytest.approx(aimed_at.style_weight_at(side))


def test_a_weakers_first_step_is_not_spent_backtracking(random_model, monkeypatch):
    """Unscaled, L-BFGS-B's first step of a Weaker went to the box's corners and came back in
    4 evaluations of the objective here; scaled by `FIRST_STEP` it takes 2-3, and each later
    step one."""
    from dataclasses import replace

    import nst_engine.solvers as solvers
    from nst_engine import stylize
    from nst_engine.continuation import plan
    from nst_engine.options import options_for_quality

    photo, artwork = gradient_image(48, 36), stripes_image(32, 32)
    first = options_for_quality("balanced", max_size=48, strength=3, precision="float32")
    parent = stylize(photo, artwork, first, model=random_model).image
    step = plan(parent, photo, replace(first, strength=2.0), "balanced", parent=(3.0, 48))

    driven = solvers.lbfgsb_in_unit_box
    evaluations_by_step: list[int] = []

    def counting(fun, x0, maxiter, iterated):
        evaluations = [0]

        def counted(x):
            evaluations[0] += 1
            return fun(x)

        def stepped(x):
            evaluations_by_step.append(evaluations[0])
            return iterated(x)

        return driven(counted, x0, maxiter, stepped)

    monkeypatch.setattr(solvers, "lbfgsb_in_unit_box", counting)
    result = stylize(step.photo, artwork, step.options, model=random_model, init_image=step.start)
    assert result.steps == step.options.steps == len(evaluations_by_step)
    assert evaluations_by_step[0] <= 3, evaluations_by_step
    assert np.diff(evaluations_by_step).max() == 1, evaluations_by_step
