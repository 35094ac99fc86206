"""Reproducible pictures: the seed picks a variation, and every PNG says how it was made."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from nst_engine import stylize
from nst_engine.cli import main
from nst_engine.errors import ImageError
from nst_engine.images import encode_image, read_parameters
from nst_engine.options import options_for_quality
from tests.support import gradient_image, stripes_image


def test_a_seed_gives_its_own_variation_and_the_same_seed_the_same_picture(random_model):
    content, style = gradient_image(48, 40, seed=1), stripes_image(32, 32)

    def paint(seed: int) -> np.ndarray:
        options = options_for_quality("fast", max_size=48, steps=6, seed=seed, precision="float32")
        return stylize(content, style, options, model=random_model).image.astype(np.int16)

    first, again, other = paint(1), paint(1), paint(2)
    assert np.array_equal(first, again)
    assert np.abs(first - other).mean() > 1.0


def test_png_parameters_round_trip_and_a_bad_chunk_is_one_line():
    image = gradient_image(16, 12)
    png = encode_image(image, "png", parameters={"seed": 4, "styles": ["saved:Monet"]})
    assert read_parameters(png) == {"seed": 4, "styles": ["saved:Monet"]}
    assert read_parameters(encode_image(image, "png")) is None
    with pytest.raises(ImageError, match="not a PNG"):
        read_parameters(encode_image(image, "jpeg"))


def test_nst_stylize_writes_parameters_and_nst_info_prints_them(tmp_path, capsys):
    content, style, out = tmp_path / "photo.png", tmp_path / "art.png", tmp_path / "out.png"
    Image.fromarray(gradient_image(48, 36)).save(content)
    Image.fromarray(stripes_image(32, 32)).save(style)
    args = ["stylize", str(content), str(style), "-o", str(out), "--weights", "random"]
    assert main([*args, "--steps", "4", "--size", "48", "--seed", "9", "--quality", "fast"]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["seed"] == 9 and made["steps"] == 4 and made["quality"] == "fast"
    assert made["weights"] == "random" and made["size"] == 48
    assert len(made["styles"]) == 1 and made["styles"][0].startswith("sha256:")
    assert set(made) >= {"strength", "preserve_colors", "blend", "version"}


def test_nst_info_on_a_picture_without_parameters_is_one_error_line(tmp_path, capsys):
    plain = tmp_path / "plain.png"
    Image.fromarray(gradient_image(8, 8)).save(plain)
    with pytest.raises(SystemExit) as stop:
        main(["info", str(plain)])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {plain} carries no parameters (not made by nst or the bot)"
