"""An animated GIF or WebP as the photo gives an animated picture (issue 13), through the
emulator: frame-by-frame progress, the same timing back, the upload limit, the frame cap."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from nst_engine.clips import Clip, decode_clip, encode_clip, read_clip_parameters
from nst_engine.continuation import STRENGTH_STEP
from tests.bot.harness import World, finished
from tests.support import gradient_image

pytestmark = pytest.mark.asyncio(loop_scope="module")


def panning_clip(frames: int = 4, fmt: str = "gif") -> bytes:
    """A textured picture sliding 3 px a frame, 80 ms a frame, looping forever."""
    wide = gradient_image(80, 36, seed=5)
    starts = [3 * (i % 10) for i in range(frames)]
    shots = tuple(np.ascontiguousarray(wide[:, x : x + 48]) for x in starts)
    return encode_clip(Clip(shots, (80,) * frames, 0, fmt), fmt)


def add_clip(world: World, data: bytes, fmt: str = "gif") -> dict:
    return world.emu.add_attachment(f"clip.{fmt}", data, f"image/{fmt}", width=48, height=36)


def sent_clip(message) -> tuple[Clip, bytes]:
    sent = next(f for f in message.files if f.filename.startswith("stylized."))
    return decode_clip(sent.data), sent.data


def lines(inter) -> list[str]:
    return [m.content for m in inter.messages if m.ephemeral]


@pytest.mark.parametrize("fmt", ["gif", "webp"])
async def test_an_animated_photo_gives_an_animation_with_the_same_timing(world, fmt) -> None:
    inter = await world.stylize(content=add_clip(world, panning_clip(4, fmt), fmt), quality="fast")
    result = await finished(inter, timeout=180)
    clip, data = sent_clip(result)
    assert result.files[0].filename == f"stylized.{fmt}"
    assert len(clip.frames) == 4 and clip.durations == (80,) * 4 and clip.loop == 0
    assert clip.size == (48, 36)
    made = read_clip_parameters(data)
    assert made["frames"] == 4 and made["weights"] == "random"
    assert f"/stylized.{fmt}?" in result.embeds[0]["image"]["url"]  # the attachment, shown
    painting = [v.content for v in inter.original.history if "painting frame" in v.content]
    assert painting and all("/4…" in text for text in painting)


async def test_an_animation_over_the_upload_limit_is_shortened_and_says_so(world) -> None:
    emu = world.emu
    before = emu.upload_limit
    emu.upload_limit = 12_000  # a small server: the 6-frame result won't fit as it is
    try:
        inter = await world.stylize(content=add_clip(world, panning_clip(6)), quality="fast")
        result = await finished(inter, timeout=180)
    finally:
        emu.upload_limit = before
    clip, data = sent_clip(result)
    assert len(data) <= 12_000
    assert len(clip.frames) < 6
    assert sum(clip.durations) == 6 * 80  # the same length, fewer frames
    assert "shortened to" in result.content and "upload limit" in result.content


async def test_a_clip_with_too_many_frames_is_refused_in_one_line(world: World) -> None:
    frames = world.settings.nst_max_frames + 1
    inter = await world.stylize(content=add_clip(world, panning_clip(frames)))
    await inter.wait_for(lambda rec: lines(rec), timeout=15)
    assert lines(inter) == [
        f"The content attachment won't do: the animation has {frames} frames; "
        f"the limit is {frames - 1}."
    ]


async def test_a_still_gif_stays_a_still_picture(world: World) -> None:
    still = io.BytesIO()
    Image.fromarray(gradient_image(48, 36)).save(still, "GIF")
    inter = await world.stylize(content=add_clip(world, still.getvalue()), quality="fast")
    result = await finished(inter)
    assert result.files[0].filename == "stylized.png"


async def test_stronger_on_an_animation_gives_another_animation(world: World) -> None:
    emu = world.emu
    first = await finished(await world.stylize(content=add_clip(world, panning_clip(3))))
    stronger = next(b for b in first.buttons() if b["label"] == "Stronger")
    press = await emu.press_button(first, stronger["custom_id"], user=emu.member)
    again = await finished(press, timeout=180)
    clip, data = sent_clip(again)
    assert len(clip.frames) == 3 and clip.durations == (80,) * 3
    made = read_clip_parameters(data)
    assert made["strength"] == 5.0 + STRENGTH_STEP
    assert "parent" not in made  # an animation's re-run is a fresh run, not a continuation


async def test_cancel_stops_an_animation_between_frames(world: World) -> None:
    emu = world.emu
    inter = await world.stylize(content=add_clip(world, panning_clip(12)), quality="best")
    await inter.wait_for_original(lambda m: "painting frame" in m.content, timeout=120)
    cancel = next(b for b in inter.original.buttons() if b["label"] == "Cancel")
    await emu.press_button(inter.original, cancel["custom_id"], user=inter.user)
    await inter.wait_for_original(lambda m: "Cancelled at frame" in m.content, timeout=120)
    assert not any(m.files for m in inter.followups if m is not inter.original)
